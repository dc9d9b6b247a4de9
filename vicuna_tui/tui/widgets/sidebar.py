"""The conversations pane: saved chats, newest first, filtered as you type.

Typing filters by title, and also searches message text (FTS) once the filter has
two or more characters; the query runs on the store's thread once typing pauses.
With no filter it lists people's own chats: the conversations of bench runs and arena
battles are kept apart (a line says how many), and a filter finds them too.  The title
says how many chats match; they come a page at a time, the next page when the list is
scrolled to its end or its last line is reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from vicuna_tui.store import ALL_RUNS, ARENA_RUN, Conversation, SearchHit, Store
from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.messages import ConversationChosen, StoreResult
from vicuna_tui.tui.plain import plain
from vicuna_tui.tui.store_calls import StoreCalls

PAGE = 200  # chats listed at a time; scrolling to the end, or Enter there, shows more
HIT_PAGE = 50  # messages found, at a time
MORE = "more"  # the id of the last line, when there is more to show


@dataclass(frozen=True)
class Listing:
    """One read of the store for the pane: the chats listed and whether more match,
    how many match in all, the messages found and whether more do, and how many chats
    of bench runs and battles are kept apart (with no filter)."""

    conversations: list[Conversation]
    more_chats: bool
    total: int
    hits: list[SearchHit]
    more_hits: bool
    bench_apart: int  # bench answers
    arena_apart: int  # arena chats, two to a battle


def _listing(store: Store, query: str, pages: int) -> Listing:
    """The chats whose title matches, and the messages that do (on the store's thread),
    ``pages`` pages of each; with no query, people's own chats only."""
    run = ALL_RUNS if query else None
    chats = store.listing.conversations(limit=PAGE * pages, title_filter=query, run=run)
    total = store.listing.count(title_filter=query, run=run)
    hits = store.search.messages(query, limit=HIT_PAGE * pages + 1) if len(query) >= 2 else []
    runs = {} if query else store.listing.runs()
    arena = runs.pop(ARENA_RUN, 0)
    return Listing(
        chats,
        total > len(chats),
        total,
        hits[: HIT_PAGE * pages],
        len(hits) > HIT_PAGE * pages,
        sum(runs.values()),
        arena,
    )


class ChatList(OptionList):
    """The list of chats; says when it has been scrolled to its end."""

    class ReachedEnd(Message):
        pass

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value > old_value and new_value >= self.max_scroll_y > 0:
            self.post_message(self.ReachedEnd())


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
        self._shown = 0  # the listing shown (its number)
        self.pages = 1  # pages shown of the listing (back to one when the filter changes)
        self._more = False  # the last line offers more
        self._keep_at: int | None = None  # the line to highlight once more are shown
        self.built = False  # its widgets are mounted just after the first frame

    async def build(self) -> None:
        """Mount the pane's widgets and list the chats.  Called once the first frame is
        on screen: the pane's place is kept from the start, so nothing moves."""
        if self.built:
            return
        widgets: list[Widget] = [
            Static(plain("Chats"), classes="pane-title", id="chats-title"),
            Input(placeholder="Filter or search…", id="chat-filter"),
            ChatList(id="chat-list"),
        ]
        if self.calls is None:
            why = terminal_safe(self.not_saving) if self.not_saving else "--no-save"
            widgets.append(Static(plain(f"Not saving ({why})"), classes="dim", id="not-saving"))
        await self.mount_all(widgets)
        self.built = True
        self.reload()

    @property
    def up_to_date(self) -> bool:
        """The pane is built and the listing shown is the last one asked for."""
        return self.built and (self._shown == self._asked or self.calls is None)

    @property
    def filter_text(self) -> str:
        return self.query_one("#chat-filter", Input).value.strip() if self.built else ""

    def reload(self) -> None:
        """Re-read the store (after a change) keeping the filter and the highlight."""
        self._filter_timer = None
        if not self.built:
            return  # build() lists the chats
        if self.calls is None:
            self.query_one("#chat-list", OptionList).clear_options()
            return
        self._asked += 1
        asked, query, pages = self._asked, self.filter_text, self.pages
        self.calls.call(
            self,
            lambda store: _listing(store, query, pages),
            lambda found: self._show(asked, found),
        )

    def show_more(self) -> None:
        """List the next page, the highlight staying on the line where it was."""
        if not self._more:
            return
        self._more = False  # asked once
        option_list = self.query_one("#chat-list", OptionList)
        self._keep_at = option_list.highlighted
        self.pages += 1
        self.reload()

    def _show(self, asked: int, found: Listing) -> None:
        if asked != self._asked:
            return  # a newer listing is on its way
        self._shown = asked
        option_list = self.query_one("#chat-list", OptionList)
        was = option_list.highlighted
        was_id = option_list.get_option_at_index(was).id if was is not None else None
        option_list.clear_options()
        options = self._options(found)
        option_list.add_options(options)
        heading = "Chats"
        if self.filter_text:
            heading += f" · {found.total:,} match"
        elif found.total:
            heading += f" · {found.total:,}"
        self.query_one("#chats-title", Static).update(plain(heading))
        keep_at, self._keep_at = self._keep_at, None
        ids = [o.id for o in options]
        keep_id = was_id if was_id in ids else self.current_id  # the same chat as before
        if keep_at is not None and keep_at < len(options):
            option_list.highlighted = keep_at
        elif keep_id is not None and keep_id in ids:
            option_list.highlighted = ids.index(keep_id)

    def _options(self, found: Listing) -> list[Option]:
        """The lines of the list: the chats, the chats of messages found, a line that
        offers more, and one that counts the chats kept apart."""
        seen = {c.id for c in found.conversations}
        self.hit_messages = {}
        options = [Option(plain(c.title), id=c.id) for c in found.conversations]
        for hit in found.hits:
            if hit.conversation_id not in seen:
                seen.add(hit.conversation_id)
                snippet = " ".join(hit.snippet.split())
                if hit.message_uid:
                    self.hit_messages[hit.conversation_id] = hit.message_uid
                options.append(Option(plain(f"{hit.title}\n  {snippet}"), id=hit.conversation_id))
        more = []
        if found.more_chats:
            left = found.total - len(found.conversations)
            more.append(f"{left:,} more chat{'s' if left != 1 else ''}")
        if found.more_hits:
            more.append("more messages that match")
        self._more = bool(more)
        if more:
            options.append(Option(plain(f"↓ {' and '.join(more)}: Enter shows them"), id=MORE))
        apart = [
            f"{count} {what}{'s' if count != 1 else ''}"
            for count, what in (
                (found.bench_apart, "bench answer"),
                (found.arena_apart, "arena chat"),
            )
            if count
        ]
        if apart:
            note = f"and {' and '.join(apart)}: type to find them"
            options.append(Option(plain(note), id=None, disabled=True))
        return options

    async def on_store_result(self, message: StoreResult[Any]) -> None:
        await message.handle()

    @on(ChatList.ReachedEnd)
    def _scrolled_to_end(self) -> None:
        self.show_more()

    @on(OptionList.OptionHighlighted, "#chat-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id == MORE:  # moved onto the last line with the keys
            self.show_more()

    @on(Input.Changed, "#chat-filter")
    def _filter(self) -> None:
        self.pages = 1
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(self.FILTER_PAUSE, self.reload)

    @on(Input.Submitted, "#chat-filter")
    def _pick_first(self) -> None:
        option_list = self.query_one("#chat-list", OptionList)
        if option_list.option_count:
            option = option_list.get_option_at_index(option_list.highlighted or 0)
            if option.id == MORE:
                self.show_more()
            elif option.id:
                self.post_message(ConversationChosen(option.id, self.hit_messages.get(option.id)))

    @on(OptionList.OptionSelected, "#chat-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id == MORE:
            self.show_more()
        elif event.option.id:
            chosen = event.option.id
            self.post_message(ConversationChosen(chosen, self.hit_messages.get(chosen)))

    async def focus_filter(self) -> None:
        # At once, not after a refresh as Input.focus() does: keys typed right behind
        # the search key are already queued, and belong to the filter.
        await self.build()
        self.screen.set_focus(self.query_one("#chat-filter", Input))
