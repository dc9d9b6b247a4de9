"""The conversations pane: saved chats, newest first, filtered as you type.

Typing filters by title, and also searches message text (FTS) once the filter has
two or more characters; the query runs on the store's thread once typing pauses.
With no filter it lists people's own chats: the conversations of bench runs and arena
battles are kept apart (a line says how many), and a filter finds them too.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from vicuna_tui.store import ALL_RUNS, Conversation, SearchHit, Store
from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.messages import ConversationChosen, StoreReply
from vicuna_tui.tui.plain import plain
from vicuna_tui.tui.store_calls import StoreCalls

# The chats listed, the messages found, and how many chats of runs are kept apart.
Listing = tuple[list[Conversation], list[SearchHit], int]


def _listing(store: Store, query: str) -> Listing:
    """The chats whose title matches, and the messages that do (on the store's thread);
    with no query, people's own chats only."""
    if query:
        conversations = store.conversations(limit=500, title_filter=query, run=ALL_RUNS)
        return conversations, store.search(query) if len(query) >= 2 else [], 0
    return store.conversations(limit=500, run=None), [], sum(store.runs().values())


class Sidebar(Vertical):
    FILTER_PAUSE = 0.15  # seconds of no typing before the filter runs

    def __init__(
        self, calls: StoreCalls | None, *, not_saving: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.calls = calls
        self.not_saving = not_saving
        self.current_id: str | None = None
        self.hit_messages: dict[str, str] = {}  # a search hit's chat: the message found
        self._filter_timer: Timer | None = None
        self._asked = 0  # listings asked for; only the latest one is shown

    def compose(self) -> ComposeResult:
        yield Static(plain("Chats"), classes="pane-title")
        yield Input(placeholder="Filter or search…", id="chat-filter")
        yield OptionList(id="chat-list")
        if self.calls is None:
            why = terminal_safe(self.not_saving) if self.not_saving else "--no-save"
            yield Static(plain(f"Not saving ({why})"), classes="dim", id="not-saving")

    @property
    def filter_text(self) -> str:
        return self.query_one("#chat-filter", Input).value.strip()

    def reload(self) -> None:
        """Re-read the store (after a change) keeping the filter and the highlight."""
        self._filter_timer = None
        if self.calls is None:
            self.query_one("#chat-list", OptionList).clear_options()
            return
        self._asked += 1
        asked, query = self._asked, self.filter_text
        self.calls.call(
            self, lambda store: _listing(store, query), lambda found: self._show(asked, found)
        )

    def _show(self, asked: int, found: Listing) -> None:
        if asked != self._asked:
            return  # a newer listing is on its way
        conversations, hits, kept_apart = found
        option_list = self.query_one("#chat-list", OptionList)
        option_list.clear_options()
        seen = {c.id for c in conversations}
        self.hit_messages = {}
        options = [Option(plain(c.title), id=c.id) for c in conversations]
        for hit in hits:
            if hit.conversation_id not in seen:
                seen.add(hit.conversation_id)
                snippet = " ".join(hit.snippet.split())
                if hit.message_uid:
                    self.hit_messages[hit.conversation_id] = hit.message_uid
                options.append(Option(plain(f"{hit.title}\n  {snippet}"), id=hit.conversation_id))
        if kept_apart:
            note = f"and {kept_apart} bench and arena chat(s): type to find them"
            options.append(Option(plain(note), id=None, disabled=True))
        option_list.add_options(options)
        if self.current_id is not None and self.current_id in seen:
            option_list.highlighted = next(
                (i for i, o in enumerate(options) if o.id == self.current_id), None
            )

    def on_store_reply(self, message: StoreReply) -> None:
        message.callback()

    def on_mount(self) -> None:
        self.reload()

    @on(Input.Changed, "#chat-filter")
    def _filter(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(self.FILTER_PAUSE, self.reload)

    @on(Input.Submitted, "#chat-filter")
    def _pick_first(self) -> None:
        option_list = self.query_one("#chat-list", OptionList)
        if option_list.option_count:
            option = option_list.get_option_at_index(option_list.highlighted or 0)
            if option.id:
                self.post_message(ConversationChosen(option.id, self.hit_messages.get(option.id)))

    @on(OptionList.OptionSelected, "#chat-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            chosen = event.option.id
            self.post_message(ConversationChosen(chosen, self.hit_messages.get(chosen)))

    def focus_filter(self) -> None:
        # At once, not after a refresh as Input.focus() does: keys typed right behind
        # the search key are already queued, and belong to the filter.
        self.screen.set_focus(self.query_one("#chat-filter", Input))
