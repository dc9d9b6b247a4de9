"""What every local backend does with a request before and after its model runs: fit
the rendered prompt into the context by dropping whole oldest turns, and turn the
timings of a reply into its statistics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from vicuna_tui.engine import templates
from vicuna_tui.engine.events import (
    FINISH_LENGTH,
    FINISH_STOP,
    ChatRequest,
    Notice,
    ReplyDelta,
    ReplyStats,
)
from vicuna_tui.engine.textstream import LeadingSpace, StopMatcher
from vicuna_tui.errors import PromptTooLongError


@dataclass(frozen=True)
class PreparedPrompt:
    text: str
    ids: list[int]
    dropped_turns: int
    max_new_tokens: int
    renderer: templates.PromptRenderer


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def switch_cache(prompt: int, kept_here: int, cached_here: int, kept_there: int) -> bool:
    """Whether a prompt of ``prompt`` tokens should go to another KV cache (keeping
    ``kept_there`` of it) rather than to the one it shares most with (keeping
    ``kept_here`` of its ``cached_here``): yes when that costs less once switching back
    to the branch the first holds is counted (a new branch, or a switch)."""
    here = (prompt - kept_here) + (cached_here - kept_here)
    return prompt - kept_there < here


def fit_prompt(
    request: ChatRequest,
    renderer: templates.PromptRenderer,
    context: int,
    tokenize: Callable[[str, templates.PromptRenderer], list[int]],
    hint: str = "shorten the message, or split it into several",
) -> PreparedPrompt:
    """Render the prompt, dropping whole oldest turns until it and the reply fit the
    context; a single turn that still does not fit gets a shorter reply, or an error."""
    max_new = request.generation.max_new_tokens
    turns: list[templates.Turn] = list(request.turns)
    dropped = 0
    while True:
        text = renderer.render([*turns, (templates.ASSISTANT, None)], request.system_message)
        ids = given_ids(request, text, renderer, tokenize)
        text += request.reply_prefix  # a branch from a token: the reply's start, given
        if len(ids) + max_new <= context:
            break
        if len(turns) > 1:
            turns = turns[2:]
            dropped += 1
            continue
        if len(ids) >= context:
            raise PromptTooLongError(
                f"the prompt is {len(ids)} tokens; this model's context holds {context}", hint
            )
        max_new = context - len(ids)
        break
    return PreparedPrompt(text, ids, dropped, max_new, renderer)


def given_ids(
    request: ChatRequest,
    prompt: str,
    renderer: templates.PromptRenderer,
    tokenize: Callable[[str, templates.PromptRenderer], list[int]],
) -> list[int]:
    """The prompt's ids, then the reply's given start (a branch from a token): its own
    ids where they are known, else its text tokenized with the prompt."""
    if request.reply_prefix_ids:
        return [*tokenize(prompt, renderer), *request.reply_prefix_ids]
    return tokenize(prompt + request.reply_prefix, renderer)


def reply_stats(
    prepared: PreparedPrompt,
    *,
    cached: int,
    count: int,
    started: float,
    first: float | None,
    last: float,
    end: float,
    seed: int | None,
) -> ReplyStats:
    """A reply's statistics from its clock readings: ``first`` and ``last`` are when the
    first and last tokens came; the rate counts the tokens after the first."""
    rate = (
        (count - 1) / (last - first) if first is not None and count > 1 and last > first else None
    )
    return ReplyStats(
        prompt_tokens=len(prepared.ids),
        cached_tokens=cached,
        new_tokens=count,
        time_to_first_token=(first - started) if first is not None else None,
        tokens_per_second=rate,
        total_time=end - started,
        seed=seed,
        dropped_turns=prepared.dropped_turns,
    )


@dataclass
class ReplyTally:
    """A reply as a local backend produces it: its text so far (through the stop
    strings and the leading-space rule), its token count and clock readings."""

    matcher: StopMatcher
    started: float
    last: float = 0.0
    leading: LeadingSpace = field(default_factory=LeadingSpace)
    parts: list[str] = field(default_factory=list)
    first: float | None = None
    count: int = 0
    finish: str = FINISH_LENGTH

    def tick(self) -> None:
        """One more token came."""
        self.count += 1
        self.last = time.perf_counter()
        if self.first is None:
            self.first = self.last

    def push(self, text: str) -> str:
        """Decoded text in; the part of it to show now out (held back across a stop)."""
        delta = self.leading.push(self.matcher.push(text))
        if delta:
            self.parts.append(delta)
        return delta

    def flush(self, text: str = "") -> str:
        """The text held back at the end (when no stop string ended the reply)."""
        tail = self.leading.push(self.matcher.push(text) + self.matcher.flush())
        if tail:
            self.parts.append(tail)
        return tail

    @property
    def text(self) -> str:
        return "".join(self.parts).rstrip()

    def stats(self, prepared: PreparedPrompt, cached: int, seed: int | None) -> ReplyStats:
        return reply_stats(
            prepared,
            cached=cached,
            count=self.count,
            started=self.started,
            first=self.first,
            last=self.last,
            end=time.perf_counter(),
            seed=seed,
        )


def given_start(request: ChatRequest, reply: ReplyTally) -> Iterator[ReplyDelta]:
    """A branch from a token: the reply's given start (``reply_prefix``), as the first
    text of the reply (the model writes on after it; it is not counted as new tokens)."""
    if request.reply_prefix:
        delta = reply.push(request.reply_prefix)
        if delta:
            yield ReplyDelta(request.request_id, delta)


def nothing_said(text: str, finish: str) -> Notice | None:
    """A notice for a reply the model ended before writing anything: an empty reply
    with exit 0 and no word would look like a hang or a bug."""
    if finish != FINISH_STOP or text.strip():
        return None
    return Notice(
        "the model stopped at once: its first token was end-of-text (try another "
        "template with --conv-template, a temperature above 0, or check the model file)"
    )
