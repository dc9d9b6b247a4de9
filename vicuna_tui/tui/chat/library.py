"""The saved chats, from the chat screen: new, open (a search hit opens the branch that
holds it), rename, delete and export.  Every read and write runs on the store's thread
(``StoreCalls``); what follows runs when its result comes back.

``ChatLibrary`` owns no state of its own: which chat is shown is the session's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vicuna_tui.store import Conversation, Store, StoreError
from vicuna_tui.tui.chat.branches import BranchNavigator
from vicuna_tui.tui.chat.editing import EditMode
from vicuna_tui.tui.chat.replies import ChatReplies
from vicuna_tui.tui.chat.view import ChatView
from vicuna_tui.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from vicuna_tui.tui.store_calls import StoreCalls


@dataclass(eq=False)
class ChatLibrary:
    view: ChatView
    _replies: ChatReplies
    _branches: BranchNavigator
    _editing: EditMode

    def _show_current(self, conversation_id: str | None) -> None:
        self.view.sidebar.current_id = conversation_id
        self.view.sidebar.reload()
        self.view.prompt.focus()

    async def new_chat(self) -> None:
        await self._replies.stop("Stopped the reply (it is kept) to start a new chat.")
        self.view.session.new_chat()
        self._editing.end()
        await self.view.transcript.show([])
        self.view.status.set_context(None)
        self._show_current(None)

    async def open(self, conversation_id: str, message_uid: str | None = None) -> None:
        """Read the conversation on the store's thread, then show it (on the branch that
        holds ``message_uid``, a search hit, if given)."""
        current = self.view.session.conversation
        if current is not None and current.id == conversation_id:
            if message_uid and self.view.session.show_branch_of(message_uid):
                await self._branches.show_path()
            self.view.prompt.focus()
            return
        if self.view.store is None:
            self.view.ui.notify(
                "Conversations are not being saved (--no-save): run without it to open them.",
                severity="error",
            )
            return
        self.view.store.call(
            self.view.ui,
            lambda store: store.get(conversation_id),
            lambda conv: self._show(conv, message_uid),
        )

    async def _show(self, conv: Conversation, message_uid: str | None = None) -> None:
        await self._replies.stop("Stopped the reply (it is kept) to open another chat.")
        session = self.view.session
        session.show(conv)
        if message_uid:
            session.show_branch_of(message_uid)
        # Each reply as stored: its own model, else the chat's, else not known (an
        # imported chat) -- never the model loaded now.
        label = f"Assistant · {conv.model_name or 'unknown model'}"
        await self.view.transcript.show(session.messages, model_label=label)
        self._branches.mark()
        self.view.status.set_context(session.context_used())
        self.view.settings.set_generation(
            session.generation, session.template, session.system_message
        )
        self.view.prompt.prompt_history = [m.content for m in session.messages if m.role == "user"]
        self._show_current(conv.id)

    def _failed_to(self, what: str) -> Callable[[StoreError], None]:
        def tell(exc: StoreError) -> None:
            self.view.ui.notify(f"{what}: {exc.message}", severity="error")

        return tell

    def _saved(self, nothing_yet: str) -> tuple[Conversation, StoreCalls] | None:
        """The chat shown and the store, when it is saved (else says ``nothing_yet``)."""
        conv = self.view.session.conversation
        if conv is None or self.view.store is None:
            self.view.ui.notify(nothing_yet)
            return None
        return conv, self.view.store

    def rename(self) -> None:
        saved = self._saved("Send a message first: new chats are named after it.")
        if saved is None:
            return
        conv, calls = saved

        def renamed(title: str) -> None:
            conv.title = title
            self.view.sidebar.reload()

        def rename(store: Store, title: str) -> str:
            store.rename(conv.id, title)
            return store.get(conv.id).title

        def done(title: str | None) -> None:
            if title is not None:
                calls.call(
                    self.view.ui,
                    lambda store: rename(store, title),
                    renamed,
                    self._failed_to("Cannot rename the chat"),
                )

        self.view.ui.app.push_screen(TextInputScreen("Rename the chat", conv.title), done)

    def delete(self) -> None:
        saved = self._saved("This chat is not saved yet.")
        if saved is None:
            return
        conv, calls = saved

        async def deleted(_: object) -> None:
            await self.new_chat()
            self.view.ui.notify(f"Deleted “{conv.title}”.")

        async def done(yes: bool | None) -> None:
            if not yes:
                return
            await self._replies.stop()
            calls.call(
                self.view.ui,
                lambda store: store.delete(conv.id),
                deleted,
                self._failed_to("Cannot delete the chat"),
            )

        count = len(self.view.session.messages)
        self.view.ui.app.push_screen(
            ConfirmScreen(f"Delete “{conv.title}” and its {count} messages?"), done
        )

    def export(self) -> None:
        saved = self._saved("There is nothing saved to export yet.")
        if saved is None:
            return
        conv, calls = saved
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
                calls.call(self.view.ui, lambda store: export(store, path), self.view.ui.notify)

        self.view.ui.app.push_screen(
            TextInputScreen("Export the chat as Markdown to", default), done
        )
