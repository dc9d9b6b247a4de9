"""Before sending: will the next turn drop old turns to fit the context, and how many?

When the last reply's context use, the draft and the reply's budget come near the
model's context, the engine is asked for its preview of the prompt that sending the
draft would make (the same ``fit_prompt`` that sending runs), a moment after typing
stops; the status bar shows what it says.  ``DropForecast`` owns the question in flight,
the timer and the last answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from textual.timer import Timer

from vicuna_tui.engine.events import ChatRequest, PromptPreview
from vicuna_tui.session import ChatSession

FORECAST_ID = -1  # the request id of a forecast's preview: never a reply's
DELAY = 0.4  # seconds after the last key before asking
NEAR = 0.75  # ask once the estimate reaches this share of the context


def worth_asking(used: int | None, draft: str, max_new: int, context: int) -> bool:
    """A cheap estimate that errs high (two characters a token): is the context near?"""
    return (used or 0) + len(draft) // 2 + max_new >= context * NEAR


class DropForecast:
    def __init__(
        self,
        session: ChatSession,
        ask: Callable[[ChatRequest], None],
        show: Callable[[int], None],
        schedule: Callable[[float, Callable[[], None]], Timer],
    ) -> None:
        self._session = session
        self._ask = ask
        self._show = show
        self._schedule = schedule
        self._timer: Timer | None = None
        self._draft = ""
        self.dropped = 0

    def draft_changed(self, draft: str) -> None:
        """The input changed (or a reply ended): ask again once typing pauses."""
        self._stop()
        self._draft = draft
        self._timer = self._schedule(DELAY, self._check)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        info = self._session.model_info
        if info is None or not info.context_length:
            return
        used, max_new = self._session.context_used(), self._session.generation.max_new_tokens
        if not worth_asking(used, self._draft, max_new, info.context_length):
            self._set(0)
            return
        request = self._session.preview_request(self._draft)
        self._ask(dataclasses.replace(request, request_id=FORECAST_ID))

    def answered(self, preview: PromptPreview) -> bool:
        """Take the engine's answer; False when the preview was not a forecast's."""
        if preview.request_id != FORECAST_ID:
            return False
        self._set(preview.dropped_turns)
        return True

    def clear(self) -> None:
        """Nothing to forecast (no model, a reply under way): no question, no warning."""
        self._stop()
        self._set(0)

    def _set(self, dropped: int) -> None:
        if dropped != self.dropped:
            self.dropped = dropped
            self._show(dropped)
