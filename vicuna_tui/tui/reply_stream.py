"""One streamed reply on the UI thread: which reply it is, the view it streams into,
and the frames that draw it.

The text comes through a ``ReplyInbox`` (filled on the engine thread).  A few times a
second (``FramePacer``) a frame takes what arrived and writes it into the view: each
update costs the same whether it carries one token or fifty, so the UI's share of the
CPU does not grow with the model's speed (a speculating reply's live counts go out
with the frame, to ``drafts``).  ``end`` stops the frames and keeps any text
not drawn yet in the view, so a reply cut short (stopped, quit, failed) loses nothing.

The chat has one; each arena side has its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from textual.timer import Timer

from vicuna_tui.tui.pacing import FramePacer
from vicuna_tui.tui.reply_inbox import ReplyInbox
from vicuna_tui.tui.widgets.transcript import MessageView

Schedule = Callable[[float, Callable[[], Awaitable[None]]], Timer]


@dataclass
class Streaming:
    """The reply being written: its request and the view it streams into."""

    request_id: int
    view: MessageView
    reading: bool = False  # the prompt is being read in (a long prefill), no text yet


class ReplyStream:
    def __init__(
        self,
        inbox: ReplyInbox,
        schedule: Schedule,
        *,
        text_began: Callable[[], None] = lambda: None,
        drafts: Callable[[int, int], None] | None = None,
    ) -> None:
        self.inbox = inbox
        self._schedule = schedule
        self._text_began = text_began  # the first text after reading the prompt in
        self._drafts = drafts  # while speculating: the tokens drafted and kept so far
        self._pacer = FramePacer()
        self._timer: Timer | None = None
        self.current: Streaming | None = None

    @property
    def active(self) -> bool:
        return self.current is not None

    def is_for(self, request_id: int) -> bool:
        """Whether ``request_id`` names the reply streaming now."""
        return self.current is not None and self.current.request_id == request_id

    def begin(self, request_id: int, view: MessageView) -> None:
        """A reply is about to be asked for: it streams into ``view`` (text of any
        earlier reply still in transit is dropped)."""
        self.inbox.expect(request_id)
        self.current = Streaming(request_id, view)
        self._stop_timer()
        self._timer = self._schedule(self._pacer.start(), self._frame)

    async def _frame(self) -> None:
        self._timer = None
        current = self.current
        if current is None:
            return
        deltas = self.inbox.take_deltas()
        text = "".join(d.text for d in deltas)
        if self._drafts is not None:
            counted = [d for d in deltas if d.drafted is not None]
            if counted:
                self._drafts(counted[-1].drafted or 0, counted[-1].accepted or 0)
        if text:
            if current.reading:  # the prompt is in: the reply has begun
                current.reading = False
                current.view.set_meta("")
                self._text_began()
            await current.view.write(text)
        wait = self._pacer.next()
        if self.current is not None:
            self._timer = self._schedule(wait, self._frame)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def end(self) -> Streaming | None:
        """The reply ends (done, failed, stopped): no more frames, and the text not
        drawn yet goes into its view.  Returns what was streaming (None: nothing)."""
        self._stop_timer()
        current, self.current = self.current, None
        if current is not None:
            rest = self.inbox.take()
            if rest:
                current.view.add_text(rest)
        return current
