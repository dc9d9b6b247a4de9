"""What crosses the pipe between a front end and its model's process: each request and
each answer is a dataclass, pickled as ``(sequence, message)``.

The front end asks (``ProcessBackend``); the child answers each request under its
sequence number (``process._Child``): a stream of ``Streamed`` events for a reply,
``Progress`` while loading, then ``Answer`` or ``Failure``.  ``Cancel`` answers
nothing: it stops the request it names within a token.  Both sides run the same code,
so the classes never differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vicuna_tui.engine.events import ChatRequest, EngineEvent
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.errors import VicunaError

# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SetPath:
    """Import from the front end's ``sys.path`` (a checkout, a test's folder)."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class SetDebug:
    on: bool


@dataclass(frozen=True)
class LoadModel:
    settings: LoadSettings


@dataclass(frozen=True)
class Generate:
    request: ChatRequest


@dataclass(frozen=True)
class Preview:
    request: ChatRequest


@dataclass(frozen=True)
class MeasureMemory:
    pass


@dataclass(frozen=True)
class ResetCache:
    pass


@dataclass(frozen=True)
class RunFunction:
    """``function(backend, *args)`` in the child: an importable function (tests and
    benchmarks reach into the model this way)."""

    function: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Cancel:
    """Stop the request with this message's sequence number (sent under the number of
    the request it stops)."""


@dataclass(frozen=True)
class Quit:
    pass


Request = (
    SetPath
    | SetDebug
    | LoadModel
    | Generate
    | Preview
    | MeasureMemory
    | ResetCache
    | RunFunction
    | Cancel
    | Quit
)

# -- answers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """The request is done; ``value`` is what it returns."""

    value: Any = None


@dataclass(frozen=True)
class Failure:
    error: VicunaError


@dataclass(frozen=True)
class Progress:
    """Loading: (stage, done, total)."""

    value: tuple[Any, ...]


@dataclass(frozen=True)
class Streamed:
    """One event of a reply (the last is its ReplyDone)."""

    event: EngineEvent


Reply = Answer | Failure | Progress | Streamed
