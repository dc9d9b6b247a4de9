"""What crosses the pipe between a front end and its model's process: each request and
each answer is a dataclass, pickled as ``(sequence, message)``.

The front end asks (``ProcessBackend``); the child answers each request under its
sequence number (``process._Child``): a stream of ``Streamed`` events for a reply,
``Progress`` while loading, then ``Answer`` or ``Failure``.  ``Signal.CANCEL``
answers nothing: it stops the request it names within a token.  Both sides run the same code,
so the classes never differ.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vicuna_tui.engine.events import ChatRequest, EngineEvent
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.errors import VicunaError

# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadModel:
    """Load the model; ``paths`` is the front end's ``sys.path`` (a checkout, a test's
    folder), ``debug`` whether to print tracebacks into engine.log."""

    settings: LoadSettings
    debug: bool
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Generate:
    request: ChatRequest


@dataclass(frozen=True)
class Preview:
    request: ChatRequest


@dataclass(frozen=True)
class RunFunction:
    """``function(backend, *args)`` in the child: an importable function (tests and
    benchmarks reach into the model this way)."""

    function: Callable[..., Any]
    args: tuple[Any, ...]


class Signal(enum.Enum):
    """The requests that carry nothing.  CANCEL answers nothing: it stops the request
    whose sequence number it is sent under, within a token."""

    MEASURE_MEMORY = "measure memory"
    RESET_CACHE = "reset cache"
    CANCEL = "cancel"
    QUIT = "quit"


Request = LoadModel | Generate | Preview | RunFunction | Signal

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
