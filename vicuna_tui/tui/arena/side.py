"""One side of the arena: its model's engine thread (and model process), its settings,
and the reply it is streaming (its ``ReplyStream``, as the chat's).  Events come back
to the screen as ``SideMessage``; reply text goes through the side's ``ReplyInbox`` and
its stream draws it a frame at a time."""

from __future__ import annotations

from collections.abc import Callable

from textual.message_pump import MessagePump

from vicuna_tui import runtime
from vicuna_tui.engine.backend import Backend
from vicuna_tui.engine.events import EngineEvent, ModelInfo, ReplyDelta
from vicuna_tui.engine.worker import EngineThread
from vicuna_tui.tui.messages import SideMessage
from vicuna_tui.tui.reply_inbox import ReplyInbox
from vicuna_tui.tui.reply_stream import ReplyStream

SideFactory = Callable[[runtime.Resolved], Backend]


def side_backend(debug: bool = False) -> SideFactory:
    """Each side's model in its own process (a server needs none)."""

    def build(resolved: runtime.Resolved) -> Backend:
        from vicuna_tui.engine.factory import make_backend

        return make_backend(resolved.load, resolved.remote, own_process=True, debug=debug)

    return build


LOADING, READY, FAILED, UNLOADED = "loading", "ready", "failed", "unloaded"


class ArenaSide:
    """``index``: 0 for the first model given, 1 for the second (which pane shows it
    is the battle's choice)."""

    def __init__(
        self,
        index: int,
        resolved: runtime.Resolved,
        factory: SideFactory,
        target: MessagePump,
        *,
        debug: bool = False,
    ) -> None:
        self.index = index
        self.resolved = resolved
        self.factory = factory
        self.target = target
        self.engine = EngineThread(self._emit, debug=debug)
        self.state = UNLOADED
        self.error = ""
        self.info: ModelInfo | None = None
        self.replies = ReplyInbox()  # this side's reply text, engine thread to UI thread
        self.stream = ReplyStream(self.replies, target.set_timer)  # and on the UI thread

    @property
    def is_remote(self) -> bool:
        return self.resolved.remote is not None

    def _emit(self, event: EngineEvent) -> None:
        """On the engine thread: hand the event on, and nothing more."""
        if isinstance(event, ReplyDelta):
            self.replies.put(event)
            return
        self.target.post_message(SideMessage(self.index, event))

    def load(self) -> None:
        self.state = LOADING
        self.error = ""
        self.engine.start()
        self.engine.load(self.factory(self.resolved))

    def unload(self) -> None:
        """Free the model's memory (one-after-the-other mode); ``load`` brings it back."""

        def drop(backend: Backend | None) -> None:
            if backend is not None:
                backend.unload()

        self.engine.call(drop, lambda _: None)
        self.state = UNLOADED

    def shutdown(self) -> None:
        self.engine.shutdown(timeout=5)
