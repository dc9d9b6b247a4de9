"""Reply text on its way from an engine thread to the UI thread.

The engine thread hands each ``ReplyDelta`` to ``put`` and does nothing more: a message
posted per token would flood the UI thread with a fast model.  The UI thread names the
reply it is drawing (``expect``) and takes that reply's text a frame at a time
(``take``); text of any other reply (one cancelled, one from before) is dropped.

One inbox for each stream of replies: the chat has one (the app fills it), and each
arena side has its own.  The inbox owns the text in transit and which reply it belongs
to; the view that draws it belongs to the screen.
"""

from __future__ import annotations

import threading

from vicuna_tui.engine.events import ReplyDelta


class ReplyInbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deltas: list[ReplyDelta] = []
        self._expected: int | None = None

    def put(self, delta: ReplyDelta) -> None:
        """Engine thread: one more piece of a reply."""
        with self._lock:
            self._deltas.append(delta)

    def expect(self, request_id: int | None) -> None:
        """UI thread, before a reply is asked for: from now on only its text is taken;
        anything that came before is dropped."""
        with self._lock:
            self._deltas = []
            self._expected = request_id

    def take_deltas(self) -> list[ReplyDelta]:
        """UI thread: the expected reply's pieces that came since the last take."""
        with self._lock:
            deltas, self._deltas = self._deltas, []
            expected = self._expected
        return [d for d in deltas if d.request_id == expected]

    def take(self) -> str:
        """UI thread: the expected reply's text that came since the last take."""
        return "".join(d.text for d in self.take_deltas())
