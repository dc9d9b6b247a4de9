"""What answers in the chat: loading, reloading and rolling back the model (local or
remote), choosing a server's model or a repo's GGUF, and the settings pane's edits.

``ModelController`` owns the ``ModelState``; each change is published to the screen's
``model`` reactive, which the status bar and the settings pane watch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from vicuna_tui.engine.events import LoadFailed, ModelReady
from vicuna_tui.engine.hub import GGUFChoiceError
from vicuna_tui.engine.settings import RemoteSettings
from vicuna_tui.errors import ModelChoiceError
from vicuna_tui.tui.chat.host import ChatHost
from vicuna_tui.tui.chat.view import ChatView
from vicuna_tui.tui.messages import LoadChoice, SettingEdit
from vicuna_tui.tui.model_state import ModelState
from vicuna_tui.tui.screens.dialogs import ErrorScreen, PickScreen


class ModelController:
    def __init__(
        self, view: ChatView, host: ChatHost, publish: Callable[[ModelState], None]
    ) -> None:
        self.view = view
        self._host = host
        self._publish = publish  # to the screen's ``model``, which widgets watch
        self._started = False  # the first load was asked for
        self._state = ModelState(view.session.load, host.resolved.remote)

    @property
    def state(self) -> ModelState:
        return self._state

    @state.setter
    def state(self, state: ModelState) -> None:
        self._state = state
        self.view.session.load = state.load  # the conversation records what it was made with
        self._publish(state)

    @property
    def ready(self) -> bool:
        return self._state.ready

    @property
    def remote(self) -> RemoteSettings | None:
        return self._state.remote

    def start(self) -> None:
        """Load the model, unless that has begun (a prompt sent before the first frame)."""
        if not self._started:
            self._started = True
            self._host.load_model(self.view.session.load, self.remote)

    def probe_memory(self) -> None:
        """Ask the engine thread how much memory the model holds (a MemoryMeasured
        answers, shown by ``memory_measured``)."""
        self._host.measure_memory()

    def memory_measured(self, value: int | None) -> None:
        self.view.status.gpu_memory = value
        self.view.status.refresh_text()

    def loading_text(self) -> str:
        if self.remote is not None:
            return f"Connecting to {self.remote.endpoint}…"
        from vicuna_tui.engine.backends import describe_plan

        return f"Loading {describe_plan(self.view.session.load)}…"

    def lost(self, message: str) -> None:
        """The model's process is gone: nothing is loaded any more."""
        self.state = self._state.failed(message)

    def model_ready(self, event: ModelReady) -> None:
        info = event.info
        self.view.session.set_model(info)
        self.state = self._state.loaded(info)
        self.probe_memory()
        self.view.transcript.set_welcome(f"{info.describe()} is ready.\nFrom: {info.source}")
        self.view.ui.notify(
            f"{info.describe()} is ready; template {self.view.session.resolved_template}",
            title="Model loaded",
            timeout=4,
        )
        for notice in info.notices:
            self.view.ui.notify(notice, severity="warning", timeout=8)

    def load_failed(self, event: LoadFailed) -> None:
        self.view.transcript.set_welcome(f"No model is loaded: {event.error.message}")
        if event.kept is not None:  # refused before the current model was unloaded
            self.state = self._state.kept(event.kept)
            title = f"The model was not changed: still using {event.kept.name}"
        else:
            self.state = self._state.failed(event.error.message)
            title = "The model did not load"
            if isinstance(event.error, ModelChoiceError) and self.remote is not None:
                self._choose_server_model(self.remote, event.error.models)
                return
            if isinstance(event.error, GGUFChoiceError) and self.remote is None:
                self._choose_gguf_file(event.error.repo_id, event.error.names)
                return
        hint = event.error.hint
        hint = f"{hint} (F3 opens the settings)" if hint else "F3 opens the settings"
        self.view.ui.app.push_screen(ErrorScreen(title, event.error.message, hint))

    def _choose_server_model(self, remote: RemoteSettings, models: list[str]) -> None:
        """The server has several models and none was named: ask which one."""

        def chosen(index: int | None) -> None:
            if index is None:
                self.view.status.failed("no server model chosen (F3 to pick one)")
                return
            self.state = ModelState(
                self._state.load, dataclasses.replace(remote, model=models[index])
            )
            self.view.status.set_state("connecting…")
            self._host.load_model(self._state.load, self._state.remote)

        self.view.ui.app.push_screen(
            PickScreen(f"{remote.endpoint} serves several models: which one?", models), chosen
        )

    def _choose_gguf_file(self, repo_id: str, names: list[str]) -> None:
        """A Hub repo of several GGUFs and no --gguf-file: ask which one to run."""

        def chosen(index: int | None) -> None:
            if index is None:
                self.view.status.failed(f"no file of {repo_id} chosen (F3, or --gguf-file)")
                return
            load = dataclasses.replace(self._state.load, gguf_file=names[index])
            self.state = ModelState(load)
            self.view.status.set_state("loading…")
            self.view.transcript.set_welcome(self.loading_text())
            self._host.load_model(load, None)

        self.view.ui.app.push_screen(
            PickScreen(f"{repo_id} holds several GGUFs: which one?", names), chosen
        )

    def reload(self, choice: LoadChoice) -> None:
        """Reload (or reconnect) as the settings pane chose; what the pane changed is
        remembered in config.toml, a value it shows unchanged (a flag's) is not."""
        remote = None
        if choice.endpoint:
            base = self.remote or self._host.resolved.remote or RemoteSettings(choice.endpoint)
            remote = dataclasses.replace(base, endpoint=choice.endpoint, model=choice.remote_model)
        before, before_remote = self._state.load, self._state.remote
        self.state = self._state.reloading(choice.load, remote)
        self.view.status.set_state("reloading…")
        self._started = True
        self._host.load_model(choice.load, remote)
        saved: dict[str, object] = {
            name: getattr(choice.load, name)
            for name in choice.shown
            if getattr(choice.load, name) != getattr(before, name)
        }
        for name in saved:
            self.view.settings.unflag(name)
        was = (before_remote.endpoint, before_remote.model) if before_remote else (None, None)
        now = (choice.endpoint, choice.remote_model if remote is not None else None)
        if now != was:
            saved["endpoint"], saved["remote_model"] = now
        if saved:
            self._host.save_settings(saved)

    def generation_edited(self, edit: SettingEdit) -> None:
        """Sampling, template or system message edited in the pane: the chat uses it
        from the next reply, and config.toml remembers it."""
        self.view.session.unpin(edit.name)  # an edit here outlives the run's flag
        self.view.settings.unflag(edit.name)
        if edit.name == "template":
            self.view.session.update_settings(template=str(edit.value))
        elif edit.name == "system_message":
            self.view.session.update_settings(
                system_message=edit.value if isinstance(edit.value, str) else None
            )
        else:
            field: dict[str, Any] = {edit.name: edit.value}  # a sampling field, checked
            changed = dataclasses.replace(self.view.session.generation, **field)
            self.view.session.update_settings(generation=changed)
        self._host.save_settings({edit.name: edit.value})

    def keep_flags(self, values: dict[str, object]) -> None:
        """The pane's "keep" button: this run's flags go into config.toml."""
        for name in values:
            self.view.session.unpin(name)
        self._host.save_settings(dict(values))
        self.view.ui.notify(f"Kept in config.toml: {', '.join(values)}", timeout=4)
