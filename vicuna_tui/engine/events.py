"""What flows between a front end and the engine thread.

Requests go in; events come out through one callback, from the engine thread.
All are plain dataclasses, so front ends can pass them on as thread-safe messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vicuna_tui.engine.constraints import OutputConstraint
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.errors import VicunaError

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CANCELLED = "cancelled"
FINISH_ERROR = "error"


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded, for status bars and saved conversations."""

    name: str
    path: str
    source: str
    backend: str = "local"
    device: str = "cpu"
    dtype: str = "float32"
    quantization: str | None = None
    context_length: int = 2048
    template: str = "vicuna_v1.1"
    notices: tuple[str, ...] = ()
    parameters: int = 0
    revision: str | None = None
    endpoint: str | None = None
    devices: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # a remote server's models
    engine: str = "transformers"  # what runs a local model: transformers or llamacpp
    threads: int | None = None
    gpu_layers: int | None = None
    kv_type: str | None = None  # llama.cpp: the KV cache's precision
    prompt_cache_mib: int | None = None  # llama.cpp: the bound on prompts set aside
    speculation: str | None = None  # llama.cpp: what drafts tokens ("ngram", "draft x.gguf")

    @property
    def placement(self) -> str:
        """Where a llama.cpp model runs: GPU layers, or CPU threads."""
        if self.gpu_layers:
            return f"{self.gpu_layers} layers on {self.device}"
        return f"{self.threads} thread{'' if self.threads == 1 else 's'} on cpu"

    def describe(self) -> str:
        if self.engine == "llamacpp":
            return f"{self.name} on llama.cpp ({self.quantization or 'gguf'}, {self.placement})"
        quant = f", {self.quantization}" if self.quantization else ""
        return f"{self.name} on {self.device} ({self.dtype}{quant})"


@dataclass(frozen=True)
class ChatRequest:
    """One reply to generate.

    ``turns`` is the history as (role, text) pairs ending with the new user message.
    """

    turns: tuple[tuple[str, str], ...]
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    system_message: str | None = None
    template: str = "auto"
    request_id: int = 0
    constraint: OutputConstraint | None = None  # the schema or grammar it must hold to
    logprobs: int = 0  # each token's log-probability and this many alternatives (0: none)
    # The reply's first tokens, given (a branch from a token): the prompt ends with them,
    # the model writes on from there, and the reply's text starts with them.  Their ids,
    # when known (the same model wrote them), go in as they are: retokenizing the text can
    # give other tokens than the model wrote, which the KV cache does not hold.
    reply_prefix: str = ""
    reply_prefix_ids: tuple[int, ...] = ()
    # The reply this one replaces, when there is one (a regenerate, an edited message
    # sent again, a replayed turn): it is likely to repeat much of it, so n-gram
    # speculation drafts from it too (on transformers, also when speculation is unset).
    earlier_reply: str = ""


MAX_LOGPROBS = 20  # as OpenAI's top_logprobs


@dataclass(frozen=True)
class TokenChoice:
    """A token the model could have written next, and its log-probability (natural log,
    before the sampler: the model's own distribution)."""

    token: str
    logprob: float
    id: int | None = field(default=None, compare=False)  # the model's own id, when known

    def record(self) -> dict[str, Any]:
        return {"token": self.token, "logprob": self.logprob, "bytes": list(self.token.encode())}


@dataclass(frozen=True)
class TokenLogprob:
    """One token of a reply: what was written, its log-probability, and the most likely
    alternatives at that point (the written one among them when it was likely enough)."""

    token: str
    logprob: float
    top: tuple[TokenChoice, ...]
    id: int | None = field(default=None, compare=False)  # the model's own id, when known

    def record(self) -> dict[str, Any]:
        """OpenAI's shape (a ``logprobs.content`` item)."""
        return {
            **TokenChoice(self.token, self.logprob).record(),
            "top_logprobs": [choice.record() for choice in self.top],
        }

    def compact(self) -> list[Any]:
        """As saved with a reply: ``[token, logprob, [[token, logprob, id], ...], id]``
        (an id is null when the backend did not give it)."""
        return [
            self.token,
            round(self.logprob, 4),
            [[c.token, round(c.logprob, 4), c.id] for c in self.top],
            self.id,
        ]

    @classmethod
    def from_compact(cls, item: Any) -> TokenLogprob:
        """From ``compact()``'s form; ValueError for anything else (a damaged record)."""
        try:
            token, logprob, top, *rest = item
            choices = tuple(TokenChoice(str(c[0]), float(c[1]), _token_id(c[2:])) for c in top)
            return cls(str(token), float(logprob), choices, _token_id(rest))
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"not a saved token: {str(item)[:40]}") from exc

    @classmethod
    def from_record(cls, item: dict[str, Any]) -> TokenLogprob:
        """From an OpenAI-shaped item (llama.cpp's and servers' streams; llama.cpp's
        carry each token's id)."""
        top = tuple(
            TokenChoice(
                str(c.get("token", "")), float(c.get("logprob", 0.0)), _token_id([c.get("id")])
            )
            for c in item.get("top_logprobs") or ()
        )
        return cls(
            str(item.get("token", "")),
            float(item.get("logprob", 0.0)),
            top,
            _token_id([item.get("id")]),
        )


def _token_id(values: Any) -> int | None:
    """The first of ``values`` when it is a token id (a non-negative int), else None."""
    value = values[0] if values else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def rate_text(tokens_per_second: float) -> str:
    """A decode rate as every front end shows it."""
    return f"{tokens_per_second:.1f} tok/s"


def drafts_text(drafted: int, accepted: int) -> str:
    """Speculative decoding's count as every front end shows it: "kept 82/96 drafted"."""
    share = f" ({accepted / drafted:.0%})" if drafted else ""
    return f"kept {accepted}/{drafted} drafted{share}"


def speedup_text(stats: ReplyStats) -> str | None:
    """A speculated reply's decode rate against the last reply written without it
    ("1.62× unspeculated"), when there was one."""
    if stats.drafted is None or not stats.tokens_per_second or not stats.baseline_rate:
        return None
    return f"{stats.tokens_per_second / stats.baseline_rate:.2f}× unspeculated"


@dataclass(frozen=True)
class ReplyStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    new_tokens: int = 0
    time_to_first_token: float | None = None
    tokens_per_second: float | None = None
    total_time: float = 0.0
    seed: int | None = None
    dropped_turns: int = 0
    threads: int | None = None  # the CPU threads that decoded it (they follow the load)
    prompt_cache_bytes: int | None = None  # llama.cpp: prompts set aside, after the reply
    # speculative decoding: what drafted for this reply ("ngram", "draft x.gguf"; None:
    # nothing), the tokens drafted, and those kept of them
    speculation: str | None = None
    drafted: int | None = None
    accepted: int | None = None
    # the decode rate of the last reply this load wrote without speculation (with at
    # least a few tokens), to say what speculation gained; None: none yet
    baseline_rate: float | None = None
    # the reply's text that kept drafts wrote, a run of consecutive kept tokens each
    # (--debug shows them)
    kept_spans: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadProgress:
    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class ModelReady:
    info: ModelInfo


@dataclass(frozen=True)
class LoadFailed:
    error: VicunaError
    kept: ModelInfo | None = None  # the model still loaded, when the new one was refused


@dataclass(frozen=True)
class Notice:
    text: str


@dataclass(frozen=True)
class ReplyStarted:
    request_id: int
    prompt_tokens: int
    cached_tokens: int
    dropped_turns: int
    max_new_tokens: int
    seed: int | None


@dataclass(frozen=True)
class PrefillProgress:
    """A long prompt being read in (prefilled) a chunk at a time: ``done`` of its
    ``total`` tokens are in the cache.  Sent after each chunk but the last; a cancel
    waits for at most one chunk."""

    request_id: int
    done: int
    total: int


@dataclass(frozen=True)
class ReplyDelta:
    request_id: int
    text: str
    # while speculating: the tokens drafted and kept so far in this reply (live counts)
    drafted: int | None = None
    accepted: int | None = None


@dataclass(frozen=True)
class ReplyDone:
    request_id: int
    text: str
    finish_reason: str
    stats: ReplyStats
    tokens: tuple[TokenLogprob, ...] | None = None  # when the request asked for logprobs


@dataclass(frozen=True)
class ReplyFailed:
    request_id: int
    error: VicunaError
    partial_text: str = ""


@dataclass(frozen=True)
class PromptPreview:
    """The rendered prompt of the next turn (the template view)."""

    request_id: int
    text: str
    tokens: int
    dropped_turns: int


@dataclass(frozen=True)
class Unloaded:
    pass


EngineEvent = (
    LoadProgress
    | ModelReady
    | LoadFailed
    | Notice
    | ReplyStarted
    | PrefillProgress
    | ReplyDelta
    | ReplyDone
    | ReplyFailed
    | PromptPreview
    | Unloaded
)
