"""Loading, reloading and switching the model (local or remote), and the settings pane."""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on

from vicuna_tui.engine.events import LoadFailed, ModelReady
from vicuna_tui.engine.hub import GGUFChoiceError
from vicuna_tui.engine.remote import ModelChoiceError
from vicuna_tui.engine.settings import RemoteSettings
from vicuna_tui.tui.chat.branches import ChatBranches
from vicuna_tui.tui.messages import (
    EngineCallResult,
    GenerationChanged,
    KeepFlags,
    ReloadRequested,
)
from vicuna_tui.tui.model_state import ModelState
from vicuna_tui.tui.screens.dialogs import ErrorScreen, PickScreen


class ModelControl(ChatBranches):
    def _model_ready(self, event: ModelReady) -> None:
        self.session.set_model(event.info)
        self.model = self.model.loaded(event.info)
        self._probe_memory()
        self.transcript.set_welcome(f"{event.info.describe()} is ready.\nFrom: {event.info.source}")
        self.notify(
            f"{event.info.describe()} is ready; template {self.session.resolved_template}",
            title="Model loaded",
            timeout=4,
        )
        for notice in event.info.notices:
            self.notify(notice, severity="warning", timeout=8)
        if self.streaming is not None:  # sent while loading: now we know who answers
            self.streaming.view.set_label(f"Assistant · {event.info.name}")
            self.status.set_state("writing…")

    def _load_failed(self, event: LoadFailed) -> None:
        self.transcript.set_welcome(f"No model is loaded: {event.error.message}")
        if event.kept is not None:  # refused before the current model was unloaded
            self.model = self.model.kept(event.kept)
            title = f"The model was not changed: still using {event.kept.name}"
        else:
            self.model = self.model.failed(event.error.message)
            title = "The model did not load"
            if isinstance(event.error, ModelChoiceError) and self.remote is not None:
                self._choose_server_model(event.error.models)
                return
            if isinstance(event.error, GGUFChoiceError) and self.remote is None:
                self._choose_gguf_file(event.error.repo_id, event.error.names)
                return
        hint = event.error.hint
        hint = f"{hint} (F3 opens the settings)" if hint else "F3 opens the settings"
        self.app.push_screen(ErrorScreen(title, event.error.message, hint))

    def _loading_text(self) -> str:
        if self.remote is not None:
            return f"Connecting to {self.remote.endpoint}…"
        from vicuna_tui.engine.backends import describe_plan

        return f"Loading {describe_plan(self.session.load)}…"

    def on_engine_call_result(self, message: EngineCallResult) -> None:
        if message.tag == "memory":
            self.status.gpu_memory = message.value
            self.status.refresh_text()

    @on(GenerationChanged)
    def _generation(self, message: GenerationChanged) -> None:
        edit = message.edit
        self.session.unpin(edit.name)  # an edit here outlives the run's flag
        self.settings.unflag(edit.name)
        if edit.name == "template":
            self.session.update_settings(template=str(edit.value))
        elif edit.name == "system_message":
            self.session.update_settings(
                system_message=edit.value if isinstance(edit.value, str) else None
            )
        else:
            field: dict[str, Any] = {edit.name: edit.value}  # a sampling field, checked
            changed = dataclasses.replace(self.session.generation, **field)
            self.session.update_settings(generation=changed)
        self.host.save_settings({edit.name: edit.value})

    def _choose_server_model(self, models: list[str]) -> None:
        """The server has several models and none was named: ask which one."""
        remote = self.remote
        assert remote is not None

        def chosen(index: int | None) -> None:
            if index is None:
                self.status.failed("no server model chosen (F3 to pick one)")
                return
            self.model = ModelState(
                self.model.load, dataclasses.replace(remote, model=models[index])
            )
            self.status.set_state("connecting…")
            self.host.load_model(self.model.load, self.model.remote)

        self.app.push_screen(
            PickScreen(f"{remote.endpoint} serves several models: which one?", models), chosen
        )

    def _choose_gguf_file(self, repo_id: str, names: list[str]) -> None:
        """A Hub repo of several GGUFs and no --gguf-file: ask which one to run."""

        def chosen(index: int | None) -> None:
            if index is None:
                self.status.failed(f"no file of {repo_id} chosen (F3, or --gguf-file)")
                return
            load = dataclasses.replace(self.model.load, gguf_file=names[index])
            self.model = ModelState(load)
            self.status.set_state("loading…")
            self.transcript.set_welcome(self._loading_text())
            self.host.load_model(load, None)

        self.app.push_screen(
            PickScreen(f"{repo_id} holds several GGUFs: which one?", names), chosen
        )

    @on(ReloadRequested)
    async def _reload(self, message: ReloadRequested) -> None:
        choice = message.choice
        remote = None
        if choice.endpoint:
            base = self.remote or self.host.resolved.remote or RemoteSettings(choice.endpoint)
            remote = dataclasses.replace(base, endpoint=choice.endpoint, model=choice.remote_model)
        await self.stop_reply("Stopped the reply (it is kept) to reload the model.")
        before, before_remote = self.model.load, self.model.remote
        self.model = self.model.reloading(choice.load, remote)
        self.status.set_state("reloading…")
        self._engine_started = True
        self.host.load_model(choice.load, remote)
        # What the pane changed is remembered; a value it shows unchanged (a flag's) is not.
        saved: dict[str, object] = {
            name: getattr(choice.load, name)
            for name in choice.shown
            if getattr(choice.load, name) != getattr(before, name)
        }
        for name in saved:
            self.settings.unflag(name)
        was = (before_remote.endpoint, before_remote.model) if before_remote else (None, None)
        now = (choice.endpoint, choice.remote_model if remote is not None else None)
        if now != was:
            saved["endpoint"], saved["remote_model"] = now
        if saved:
            self.host.save_settings(saved)

    @on(KeepFlags)
    def _keep_flags(self, message: KeepFlags) -> None:
        for name in message.values:
            self.session.unpin(name)
        self.host.save_settings(dict(message.values))
        names = ", ".join(message.values)
        self.notify(f"Kept in config.toml: {names}", timeout=4)

    def action_show_prompt(self) -> None:
        if not self.model_ready:
            self.notify("The prompt view needs the model's tokenizer: wait for it to load.")
            return
        self.host.engine.preview(self.session.preview_request(self.prompt.text))
