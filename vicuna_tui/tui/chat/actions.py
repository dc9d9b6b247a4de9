"""The chat's own actions: chats (new, open, rename, delete, export), the clipboard,
the panes, help and quit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.widgets import Input

from vicuna_tui.store import Conversation, Store, StoreError
from vicuna_tui.tui.chat.replay_control import ReplayControl
from vicuna_tui.tui.messages import ConversationChosen, StoreFailed
from vicuna_tui.tui.screens.dialogs import ConfirmScreen, PickScreen, TextInputScreen
from vicuna_tui.tui.screens.help import HelpScreen
from vicuna_tui.tui.widgets.transcript import MessageView, code_blocks

if TYPE_CHECKING:
    from textual.widgets import Markdown


class ChatActions(ReplayControl):
    @on(StoreFailed)
    def _store_failed(self, message: StoreFailed) -> None:
        if message.error.kind == "damaged":
            self.session.stop_saving(message.error)
            self._show_saving()
        else:
            self.notify(message.error.message, severity="error")

    async def action_new_chat(self) -> None:
        await self.stop_reply("Stopped the reply (it is kept) to start a new chat.")
        self.session.new_chat()
        self.end_edit()
        await self.transcript.show([])
        self.status.set_context(None)
        self.sidebar.current_id = None
        self.sidebar.reload()
        self.prompt.focus()

    @on(ConversationChosen)
    async def _chosen(self, message: ConversationChosen) -> None:
        await self.open_conversation(message.conversation_id, message.message_uid)

    async def open_conversation(self, conversation_id: str, message_uid: str | None = None) -> None:
        """Read the conversation on the store's thread, then show it (on the branch that
        holds ``message_uid``, a search hit, if given)."""
        if self.session.conversation and self.session.conversation.id == conversation_id:
            if message_uid and self.session.show_branch_of(message_uid):
                await self.show_path()
            self.prompt.focus()
            return
        calls = self.host.store_calls
        if calls is None:
            self.notify(
                "Conversations are not being saved (--no-save): run without it to open them.",
                severity="error",
            )
            return
        calls.call(
            self,
            lambda store: store.get(conversation_id),
            lambda conv: self._show_conversation(conv, message_uid),
        )

    async def _show_conversation(self, conv: Conversation, message_uid: str | None = None) -> None:
        await self.stop_reply("Stopped the reply (it is kept) to open another chat.")
        self.session.show(conv)
        if message_uid:
            self.session.show_branch_of(message_uid)
        # Each reply as stored: its own model, else the chat's, else not known (an
        # imported chat) -- never the model loaded now.
        label = f"Assistant · {conv.model_name or 'unknown model'}"
        await self.transcript.show(self.session.messages, model_label=label)
        self.mark_branches()
        self.status.set_context(self.session.context_used())
        self.settings.set_generation(
            self.session.generation, self.session.template, self.session.system_message
        )
        self.prompt.prompt_history = [m.content for m in self.session.messages if m.role == "user"]
        self.sidebar.current_id = conv.id
        self.sidebar.reload()
        self.prompt.focus()

    def _failed_to(self, what: str) -> Callable[[StoreError], None]:
        def tell(exc: StoreError) -> None:
            self.notify(f"{what}: {exc.message}", severity="error")

        return tell

    def action_rename_chat(self) -> None:
        conv = self.session.conversation
        calls = self.host.store_calls
        if conv is None or calls is None:
            self.notify("Send a message first: new chats are named after it.")
            return

        def renamed(title: str) -> None:
            conv.title = title
            self.sidebar.reload()

        def rename(store: Store, title: str) -> str:
            store.rename(conv.id, title)
            return store.get(conv.id).title

        def done(title: str | None) -> None:
            if title is not None:
                calls.call(
                    self,
                    lambda store: rename(store, title),
                    renamed,
                    self._failed_to("Cannot rename the chat"),
                )

        self.app.push_screen(TextInputScreen("Rename the chat", conv.title), done)

    def action_delete_chat(self) -> None:
        conv = self.session.conversation
        calls = self.host.store_calls
        if conv is None or calls is None:
            self.notify("This chat is not saved yet.")
            return

        async def deleted(_: object) -> None:
            await self.action_new_chat()
            self.notify(f"Deleted “{conv.title}”.")

        async def done(yes: bool | None) -> None:
            if not yes:
                return
            await self.stop_reply()
            calls.call(
                self,
                lambda store: store.delete(conv.id),
                deleted,
                self._failed_to("Cannot delete the chat"),
            )

        self.app.push_screen(
            ConfirmScreen(f"Delete “{conv.title}” and its {len(self.session.messages)} messages?"),
            done,
        )

    async def action_search(self) -> None:
        self.sidebar.display = True
        await self.sidebar.focus_filter()

    async def action_toggle_settings(self) -> None:
        pane = self.settings
        if pane.display:
            pane.display = False
        else:
            await pane.reveal()
        if pane.display:
            enabled = [field for field in pane.query(Input) if not field.disabled]
            if enabled:
                # Scrolled into view once laid out: fields built just now have no place
                # yet, and focus's own scroll would then move the pane by chance.
                enabled[0].focus(scroll_visible=False)
                self.call_after_refresh(enabled[0].scroll_visible, animate=False)

        else:
            self.prompt.focus()

    def action_toggle_sidebar(self) -> None:
        self.sidebar.display = not self.sidebar.display

    def _copy(self, text: str, what: str) -> None:
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {what} ({len(text)} characters).")

    def action_copy_last(self) -> None:
        reply = self.session.last_reply()
        if reply is None:
            self.notify("There is no reply to copy yet.")
            return
        self._copy(reply.content, "the last reply")

    def action_copy_message(self) -> None:
        focused = self.app.focused
        if isinstance(focused, MessageView):
            self._copy(focused.text, "the message")
            return
        views = self.transcript.views
        if not views:
            self.notify("There is no message to copy yet.")
            return
        texts = [v.text for v in views]

        def picked(index: int | None) -> None:
            if index is not None:
                self._copy(texts[index], f"message {index + 1}")

        self.app.push_screen(PickScreen("Copy which message?", texts), picked)

    def action_copy_code(self) -> None:
        focused = self.app.focused
        if isinstance(focused, MessageView):
            source = focused.text
        else:
            reply = self.session.last_reply()
            source = reply.content if reply else ""
        blocks = code_blocks(source)
        if not blocks:
            self.notify("No code block in that message.")
            return
        if len(blocks) == 1:
            self._copy(blocks[0], "the code block")
            return

        def picked(index: int | None) -> None:
            if index is not None:
                self._copy(blocks[index], f"code block {index + 1}")

        self.app.push_screen(PickScreen("Copy which code block?", blocks), picked)

    def action_export_chat(self) -> None:
        conv = self.session.conversation
        calls = self.host.store_calls
        if conv is None or calls is None:
            self.notify("There is nothing saved to export yet.")
            return
        default = str(Path.home() / f"vicuna-chat-{conv.short_id}.md")

        def export(store: Store, path: Path) -> str:
            """On the store's thread, the file too; returns what to tell."""
            from vicuna_tui import formats

            try:
                formats.write_private(path, formats.export(store.get(conv.id), "md"))
            except OSError as exc:
                return f"Cannot write {path}: {exc.strerror or exc}"
            return f"Exported to {path}"

        def done(path_text: str | None) -> None:
            if path_text:
                path = Path(path_text).expanduser()
                calls.call(self, lambda store: export(store, path), self.notify)

        self.app.push_screen(TextInputScreen("Export the chat as Markdown to", default), done)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.keys))

    async def action_quit(self) -> None:
        await self.app.action_quit()

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        event.stop()
        self.notify(f"Link: {event.href}", title="Not opened", timeout=8)
