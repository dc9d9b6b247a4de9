"""What is loaded, and with which settings: one value, owned by the chat screen
(``ModelController``), published on the chat screen's ``model`` reactive and
watched by the status bar and the settings pane."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from vicuna_tui.engine.events import ModelInfo
from vicuna_tui.engine.settings import LoadSettings, RemoteSettings

Phase = Literal["loading", "ready", "failed"]


@dataclass(frozen=True)
class ModelState:
    load: LoadSettings  # the settings of the (last) load asked for
    remote: RemoteSettings | None = None  # the server, when one answers instead
    info: ModelInfo | None = None  # what answers, once ready
    phase: Phase = "loading"
    error: str = ""  # why nothing is loaded (phase "failed")
    previous: ModelState | None = None  # what runs while a reload is under way

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    def reloading(self, load: LoadSettings, remote: RemoteSettings | None) -> ModelState:
        """A reload with new settings; the model that answers now is kept in ``previous``
        (a refused reload goes back to it)."""
        return ModelState(load, remote, previous=dataclasses.replace(self, previous=None))

    def loaded(self, info: ModelInfo) -> ModelState:
        remote = self.remote
        if remote is not None and remote.model != info.name:
            remote = dataclasses.replace(remote, model=info.name)  # the one the server runs
        return ModelState(self.load, remote, info, "ready")

    def kept(self, info: ModelInfo) -> ModelState:
        """A reload was refused before the model was unloaded: it still answers."""
        base = self.previous or self
        return ModelState(base.load, base.remote, info, "ready")

    def failed(self, error: str) -> ModelState:
        return ModelState(self.load, self.remote, None, "failed", error)
