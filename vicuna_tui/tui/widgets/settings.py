"""The settings pane: model and device, prompt, and sampling.

The pane is hidden at start, and its forty-odd fields are built the first time it is
shown (``reveal``): building them cost the first frame about a fifth of a second.  Until
then the pane keeps what it is told (the loaded model, the chat's sampling) and the
fields are composed from it.

Every field is checked by the same specs as the command line and config.toml; a bad
value is refused at the field, with the allowed range.  Sampling, template and system
prompt apply to the next reply.  Model and device changes wait for "Reload model",
which reloads in the background and keeps the conversation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, RadioButton, RadioSet, Select, Static

from vicuna_tui.config import REMOTE_FIELDS
from vicuna_tui.engine.settings import (
    DTYPES,
    GENERATION_FIELDS,
    LOAD_FIELDS,
    FieldSpec,
    GenerationSettings,
    LoadSettings,
    RemoteSettings,
)
from vicuna_tui.engine.templates import TEMPLATE_CHOICES
from vicuna_tui.errors import SettingsError
from vicuna_tui.tui.messages import (
    GenerationChanged,
    KeepFlags,
    LoadChoice,
    ReloadRequested,
    SettingEdit,
)
from vicuna_tui.tui.model_state import ModelState
from vicuna_tui.tui.plain import plain

SAMPLING = tuple(name for name, spec in GENERATION_FIELDS.items() if spec.label)
LOAD_INPUTS = (
    "model_path",
    "num_gpus",
    "max_gpu_memory",
    "context",
    "gpu_layers",
    "draft_model",
)
SPECULATION = (
    ("off", "off"),
    ("ngram: from the chat's own text", "ngram"),
    ("draft: the draft model", "draft"),
    ("auto: on while it pays", "auto"),
)
PLACEHOLDERS = {
    "endpoint": "http://host:8000/v1",
    "max_gpu_memory": "e.g. 13GiB",
    "context": "(the model's, at most 4096)",
    "gpu_layers": "(all, where there is a GPU)",
}
ENGINES = (
    ("auto: llama.cpp for .gguf", "auto"),
    ("transformers", "transformers"),
    ("llama.cpp", "llamacpp"),
)
LOCAL_ONLY = (
    "#set-model_path",
    "#set-engine",
    "#set-context",
    "#set-gpu_layers",
    "#set-device",
    "#set-num_gpus",
    "#set-max_gpu_memory",
    "#set-dtype",
    "#set-speculate",
    "#set-draft_model",
    "#set-quant",
)
# The pane's names for the settings it shows, from each setting's declaration.
LABELS = {
    name: spec.label
    for name, spec in {**LOAD_FIELDS, **GENERATION_FIELDS, **REMOTE_FIELDS}.items()
    if spec.label
}


class SpecValidator(Validator):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__()
        self.spec = spec

    def validate(self, value: str) -> ValidationResult:
        try:
            self.spec.parse(value)
        except SettingsError as exc:
            return self.failure(exc.hint or exc.message)
        return self.success()


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class SettingsPane(Vertical):
    def __init__(
        self,
        load: LoadSettings,
        generation: GenerationSettings,
        template: str,
        system_message: str | None,
        *,
        remote: RemoteSettings | None = None,
        flags: dict[str, Any] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        # This run's command-line settings still in force: marked at their fields, and
        # written to config.toml only when "Keep these flags" is pressed.
        self.flags = dict(flags or {})
        self.load = load
        self.nothing_loaded = False
        self.remote = remote
        self.generation = generation
        self.template = template
        self.system_message = system_message
        self.devices: tuple[str, ...] = ()
        self.models: tuple[str, ...] = ()  # the server's models, once known

    @property
    def built(self) -> bool:
        """Whether the fields exist yet (they are built the first time the pane shows)."""
        return bool(self.query(SettingsFields))

    async def reveal(self) -> None:
        """Show the pane, building its fields the first time."""
        if not self.built:
            await self.mount(SettingsFields(self), before="#reload")
            self._show_backend()
            self._show_flags()
            self.set_devices(self.devices)
            self._update_reload()
        self.display = True

    # -- building ----------------------------------------------------------------------

    def _label(self, name: str) -> str:
        label = LABELS.get(name, name)
        return f"{label} · flag, this run only" if name in self.flags else label

    def _field(self, name: str, spec: FieldSpec, value: Any) -> ComposeResult:
        yield Static(plain(self._label(name)), classes="field-label", id=f"label-{name}")
        yield Input(
            _text(value),
            id=f"set-{name}",
            validators=[SpecValidator(spec)],
            validate_on=["changed", "submitted", "blur"],
            placeholder=PLACEHOLDERS.get(name, "(default)" if spec.optional else ""),
        )
        yield Static(plain(""), id=f"err-{name}", classes="field-error")

    def compose(self) -> ComposeResult:
        yield Static(plain("Settings"), classes="pane-title")
        with Vertical(id="flags-box"):
            yield Static(plain(self._flags_text()), id="flags-text")
            yield Button("Keep these flags", id="keep-flags")
        # The fields (SettingsFields) are mounted here by reveal().
        # Outside the scrolling fields, so it is always in view.
        yield Button("Reload model", id="reload", disabled=True, variant="primary")

    def _fields(self) -> ComposeResult:
        yield Static(plain("Backend"), classes="section")
        with RadioSet(id="set-backend"):
            yield RadioButton("local", value=self.remote is None, id="backend-local")
            yield RadioButton("server", value=self.remote is not None, id="backend-remote")
        yield from self._field(
            "endpoint", REMOTE_FIELDS["endpoint"], self.remote.endpoint if self.remote else None
        )
        yield Static(plain("Server model"), classes="field-label")
        current = self.remote.model if self.remote and self.remote.model else None
        models = self.models if self.remote is not None and self.models else ()
        options = [(m, m) for m in models] or ([(current, current)] if current else [])
        yield Select(
            options,
            value=current if current and any(current == v for _, v in options) else Select.NULL,
            allow_blank=True,
            prompt="(the server's only model)",
            id="set-remote_model",
        )
        yield Static(plain("Model"), classes="section")
        yield from self._field("model_path", LOAD_FIELDS["model_path"], self.load.model_path)
        yield Static(plain("Runs on"), classes="field-label")
        yield Select(ENGINES, value=self.load.backend, allow_blank=False, id="set-engine")
        yield from self._field("context", LOAD_FIELDS["context"], self.load.context)
        yield from self._field("gpu_layers", LOAD_FIELDS["gpu_layers"], self.load.gpu_layers)
        yield Static(plain(LOAD_FIELDS["speculate"].label), classes="field-label")
        yield Select(
            SPECULATION,
            value=self.load.speculate_mode,
            allow_blank=False,
            id="set-speculate",
        )
        yield from self._field("draft_model", LOAD_FIELDS["draft_model"], self.load.draft_model)
        yield Static(plain("Device"), classes="field-label")
        with RadioSet(id="set-device", classes="vertical"):
            for device in ("auto", "cuda", "mps", "cpu"):
                yield RadioButton(device, value=self.load.device == device, id=f"device-{device}")
        yield from self._field("num_gpus", LOAD_FIELDS["num_gpus"], self.load.num_gpus)
        yield from self._field(
            "max_gpu_memory", LOAD_FIELDS["max_gpu_memory"], self.load.max_gpu_memory
        )
        yield Static(plain("Precision"), classes="field-label")
        yield Select(
            [(d, d) for d in DTYPES], value=self.load.dtype, allow_blank=False, id="set-dtype"
        )
        yield Static(plain("Quantization"), classes="field-label")
        quant = self.load.quantization or "none"
        with RadioSet(id="set-quant"):
            for value, label in (("none", "none"), ("8bit", "8-bit"), ("4bit", "4-bit")):
                yield RadioButton(label, value=quant == value, id=f"quant-{value}")
        yield Static(plain("Prompt"), classes="section")
        yield Static(plain("Template"), classes="field-label")
        yield Select(
            [(t, t) for t in TEMPLATE_CHOICES],
            value=self.template,
            allow_blank=False,
            id="set-template",
        )
        yield Static(
            plain("System prompt (Enter applies; empty = template's)"), classes="field-label"
        )
        yield Input(
            _text(self.system_message), id="set-system_message", placeholder="(template default)"
        )
        yield Static(plain("Sampling"), classes="section")
        values = dataclasses.asdict(self.generation)
        for name in SAMPLING:
            yield from self._field(name, GENERATION_FIELDS[name], values[name])

    def _flags_text(self) -> str:
        names = ", ".join(LABELS.get(n, n).lower() for n in self.flags)
        return f"From this run's flags (not saved): {names}"

    def _show_flags(self) -> None:
        box = self.query_one("#flags-box")
        box.display = bool(self.flags)
        self.query_one("#flags-text", Static).update(plain(self._flags_text()))
        if not self.built:
            return
        for name in (*SAMPLING, *LOAD_INPUTS):
            for label in self.query(f"#label-{name}").results(Static):
                label.update(plain(self._label(name)))

    def unflag(self, name: str) -> None:
        """``name`` was edited here: it is no longer this run's flag."""
        if name in self.flags:
            del self.flags[name]
            self._show_flags()

    @on(Button.Pressed, "#keep-flags")
    def _keep_flags(self) -> None:
        values, self.flags = dict(self.flags), {}
        self._show_flags()
        self.post_message(KeepFlags(values))

    # -- state from the app ------------------------------------------------------------

    def model_changed(self, state: ModelState) -> None:
        """The chat screen's ``model`` changed (watched from on_mount)."""
        if state.info is not None and state.ready:
            self.set_devices(state.info.devices)
            self.set_loaded(state.load, state.remote, state.info.models)
        elif state.phase == "failed":
            self.set_unloaded()

    def set_devices(self, devices: tuple[str, ...]) -> None:
        """Enable only the devices this machine has."""
        self.devices = devices
        if not self.built:
            return
        for device in ("cuda", "mps", "cpu"):
            button = self.query_one(f"#device-{device}", RadioButton)
            button.disabled = bool(devices) and device not in devices

    def set_loaded(
        self, load: LoadSettings, remote: RemoteSettings | None = None, models: tuple[str, ...] = ()
    ) -> None:
        """What is loaded now (after a load or reload)."""
        self.load = load
        self.remote = remote
        self.nothing_loaded = False
        self.models = models
        if not self.built:
            self._update_reload()
            return
        if remote is not None and models:
            select = self.query_one("#set-remote_model", Select)
            with self.prevent(Select.Changed):
                select.set_options([(m, m) for m in models])
                select.value = remote.model if remote.model in models else Select.NULL
        self._show_backend()
        self._update_reload()

    def set_unloaded(self) -> None:
        """No model is loaded (its load failed, or its process died): Reload may retry
        the same settings."""
        self.nothing_loaded = True
        self._update_reload()

    def on_mount(self) -> None:
        self.display = False
        self._show_flags()
        self.watch(self.screen, "model", self.model_changed, init=False)

    def _chosen_backend(self) -> str:
        pressed = self.query_one("#set-backend", RadioSet).pressed_button
        return "remote" if pressed is not None and pressed.id == "backend-remote" else "local"

    def _show_backend(self) -> None:
        """Local-only settings are off while a server answers, and the reverse."""
        remote = self._chosen_backend() == "remote"
        for selector in LOCAL_ONLY:
            for widget in self.query(selector):
                widget.disabled = remote
        for selector in ("#set-endpoint", "#set-remote_model"):
            self.query_one(selector).disabled = not remote

    def set_generation(
        self, generation: GenerationSettings, template: str, system_message: str | None
    ) -> None:
        self.generation = generation
        self.template = template
        self.system_message = system_message
        if not self.built:
            return
        values = dataclasses.asdict(generation)
        with self.prevent(Input.Changed, Select.Changed):
            for name in SAMPLING:
                self.query_one(f"#set-{name}", Input).value = _text(values[name])
            self.query_one("#set-template", Select).value = template
            self.query_one("#set-system_message", Input).value = _text(system_message)

    # -- reading fields -----------------------------------------------------------------

    def _pending_load(self) -> dict[str, Any] | None:
        """The load settings in the fields, or None while one of them is invalid."""
        values: dict[str, Any] = {"backend": self._chosen_backend()}
        if values["backend"] == "remote":
            try:
                values["endpoint"] = REMOTE_FIELDS["endpoint"].parse(
                    self.query_one("#set-endpoint", Input).value
                )
            except SettingsError:
                return None
            if not values["endpoint"]:
                return None
            model = self.query_one("#set-remote_model", Select).value
            values["remote_model"] = None if model is Select.NULL else str(model)
        for name in LOAD_INPUTS:
            field = self.query_one(f"#set-{name}", Input)
            try:
                values[name] = LOAD_FIELDS[name].parse(field.value)
            except SettingsError:
                return None
        device = self.query_one("#set-device", RadioSet).pressed_button
        values["device"] = (
            (device.id or "device-auto").removeprefix("device-") if device else self.load.device
        )
        values["dtype"] = self.query_one("#set-dtype", Select).value
        values["engine"] = self.query_one("#set-engine", Select).value
        values["speculate"] = self.query_one("#set-speculate", Select).value
        quant_button = self.query_one("#set-quant", RadioSet).pressed_button
        quant = (quant_button.id or "quant-none").removeprefix("quant-") if quant_button else "none"
        values["load_8bit"] = quant == "8bit"
        values["load_4bit"] = quant == "4bit"
        return values

    def _update_reload(self) -> None:
        if not self.built:  # nothing edited yet: Reload retries only a failed load
            self.query_one("#reload", Button).disabled = not self.nothing_loaded
            return
        pending = self._pending_load()
        current: dict[str, Any] = dataclasses.asdict(self.load)
        current["engine"] = self.load.backend
        current["speculate"] = self.load.speculate_mode  # unset reads as what it means
        current["backend"] = "remote" if self.remote is not None else "local"
        if self.remote is not None:
            current["endpoint"] = self.remote.endpoint
            current["remote_model"] = self.remote.model
        changed = pending is not None and (
            self.nothing_loaded or any(current.get(k) != v for k, v in pending.items())
        )
        self.query_one("#reload", Button).disabled = not changed

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        name = (event.input.id or "").removeprefix("set-")
        error = self.query(f"#err-{name}")
        if event.validation_result is not None and error:
            message = (
                ""
                if event.validation_result.is_valid
                else "; ".join(event.validation_result.failure_descriptions)
            )
            error.first(Static).update(plain(message))
        if name in LOAD_INPUTS or name == "endpoint":
            self._update_reload()
        elif (
            name in SAMPLING
            and event.validation_result is not None
            and event.validation_result.is_valid
        ):
            value = GENERATION_FIELDS[name].parse(event.value)
            if value == getattr(self.generation, name):
                return  # the field was filled in (at mount, or from a chat): no edit
            self.generation = dataclasses.replace(self.generation, **{name: value})
            self.post_message(GenerationChanged(SettingEdit(name, value)))

    @on(Input.Submitted, "#set-system_message")
    def _system(self, event: Input.Submitted) -> None:
        self.post_message(GenerationChanged(SettingEdit("system_message", event.value or None)))

    @on(Select.Changed, "#set-template")
    def _template(self, event: Select.Changed) -> None:
        if event.value != self.template:
            self.template = str(event.value)
            self.post_message(GenerationChanged(SettingEdit("template", self.template)))

    @on(Select.Changed, "#set-dtype")
    @on(Select.Changed, "#set-speculate")
    @on(Select.Changed, "#set-engine")
    @on(Select.Changed, "#set-remote_model")
    @on(RadioSet.Changed)
    def _load_choice(self) -> None:
        self._show_backend()
        self._update_reload()

    @on(Button.Pressed, "#reload")
    def _reload(self) -> None:
        pending = self._pending_load()
        if pending is None:
            return
        remote = pending.pop("backend") == "remote"
        endpoint, remote_model = pending.pop("endpoint", None), pending.pop("remote_model", None)
        pending["backend"] = pending.pop("engine")  # what runs a local model
        try:
            load = dataclasses.replace(self.load, **pending)
            load.check()
        except (SettingsError, TypeError) as exc:
            self.notify(str(exc), severity="error")
            return
        choice = LoadChoice(load, endpoint if remote else None, remote_model, tuple(pending))
        self.post_message(ReloadRequested(choice))


class SettingsFields(VerticalScroll):
    """The pane's fields, composed from what the pane holds when it is first shown."""

    def __init__(self, pane: SettingsPane) -> None:
        super().__init__(id="settings-fields")
        self.pane = pane

    def compose(self) -> ComposeResult:
        yield from self.pane._fields()
