"""What flows between a front end and the engine thread.

Requests go in; events come out through one callback, from the engine thread.
All are plain dataclasses, so front ends can pass them on as thread-safe messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def rate_text(tokens_per_second: float) -> str:
    """A decode rate as every front end shows it."""
    return f"{tokens_per_second:.1f} tok/s"


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


@dataclass(frozen=True)
class ReplyDone:
    request_id: int
    text: str
    finish_reason: str
    stats: ReplyStats


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
