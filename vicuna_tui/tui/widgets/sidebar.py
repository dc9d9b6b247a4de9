"""The conversations pane: saved chats, newest first, filtered as you type.

Typing filters by title, and also searches message text (FTS) once the filter has
two or more characters.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from vicuna_tui.store import Store, StoreError
from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.messages import ConversationChosen, StoreFailed
from vicuna_tui.tui.plain import plain


class Sidebar(Vertical):
    def __init__(
        self, store: Store | None, *, not_saving: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.store = store
        self.not_saving = not_saving
        self.current_id: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(plain("Chats"), classes="pane-title")
        yield Input(placeholder="Filter or search…", id="chat-filter")
        yield OptionList(id="chat-list")
        if self.store is None:
            why = terminal_safe(self.not_saving) if self.not_saving else "--no-save"
            yield Static(plain(f"Not saving ({why})"), classes="dim", id="not-saving")

    @property
    def filter_text(self) -> str:
        return self.query_one("#chat-filter", Input).value.strip()

    def reload(self) -> None:
        """Re-read the store (after a change) keeping the filter and the highlight."""
        option_list = self.query_one("#chat-list", OptionList)
        option_list.clear_options()
        if self.store is None:
            return
        query = self.filter_text
        try:
            conversations = self.store.conversations(limit=500, title_filter=query)
            hits = self.store.search(query) if len(query) >= 2 else []
        except StoreError as exc:
            self.post_message(StoreFailed(exc))
            return
        seen = {c.id for c in conversations}
        options = [Option(plain(c.title), id=c.id) for c in conversations]
        for hit in hits:
            if hit.conversation_id not in seen:
                seen.add(hit.conversation_id)
                snippet = " ".join(hit.snippet.split())
                options.append(Option(plain(f"{hit.title}\n  {snippet}"), id=hit.conversation_id))
        option_list.add_options(options)
        if self.current_id is not None and self.current_id in seen:
            option_list.highlighted = next(
                (i for i, o in enumerate(options) if o.id == self.current_id), None
            )

    def on_mount(self) -> None:
        self.reload()

    @on(Input.Changed, "#chat-filter")
    def _filter(self) -> None:
        self.reload()

    @on(Input.Submitted, "#chat-filter")
    def _pick_first(self) -> None:
        option_list = self.query_one("#chat-list", OptionList)
        if option_list.option_count:
            option = option_list.get_option_at_index(option_list.highlighted or 0)
            if option.id:
                self.post_message(ConversationChosen(option.id))

    @on(OptionList.OptionSelected, "#chat-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(ConversationChosen(event.option.id))

    def focus_filter(self) -> None:
        self.query_one("#chat-filter", Input).focus()
