"""Load and generation settings, with one table of what each accepts.

The same specs validate command-line flags, the TOML config file and the TUI's
settings fields, so every place refuses a bad value with the same message.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vicuna_tui.errors import SettingsError

DEVICES = ("auto", "cuda", "mps", "cpu")
BACKENDS = ("auto", "transformers", "llamacpp")
DTYPES = ("auto", "float16", "bfloat16", "float32")
KV_TYPES = ("f16", "q8_0", "q4_0")
SPECULATE = ("off", "ngram", "draft", "auto")
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(GiB|GB|MiB|MB|TiB|TB)\s*$", re.IGNORECASE)
_GPUS_RE = re.compile(r"^\s*\d+(\s*,\s*\d+)*\s*$")


@dataclass(frozen=True)
class FieldSpec:
    """What one setting accepts."""

    name: str
    kind: type
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    pattern: re.Pattern[str] | None = None
    pattern_help: str = ""
    reload: bool = False
    label: str = ""  # its name in the settings pane ("": the pane does not show it)
    # Its command-line spellings, the first shown in errors (FastChat's first, as in
    # ``--conv-template``); () spells it from its name.
    flags: tuple[str, ...] = ()
    # A secret is never a flag (command lines are visible to every user of the machine)
    # and is masked wherever settings are shown.
    secret: bool = False
    switch: bool = True  # the value a bool's flag sets (False: ``--insecure``)
    switch_help: str = ""  # that flag's help where it says the opposite of ``help``

    @property
    def flag(self) -> str:
        """Its command-line flag (FastChat's spelling: ``--max-new-tokens``)."""
        return self.flags[0] if self.flags else "--" + self.name.replace("_", "-")

    def flag_help(self, default: Any) -> str:
        """Its help line, with the default taken from where the default lives."""
        if default is None or default == () or self.optional:
            return self.help
        shown = _num(default) if isinstance(default, float) else default
        return f"{self.help} (default {shown})"

    def allowed(self) -> str:
        """The allowed values, in words."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.pattern is not None:
            return self.pattern_help
        if self.kind in (int, float):
            kind = "an integer" if self.kind is int else "a number"
            low = self.minimum
            high = self.maximum
            if low is not None and high is not None:
                left = "(" if self.exclusive_minimum else "["
                return f"{kind} in {left}{_num(low)}, {_num(high)}]"
            if low is not None:
                op = ">" if self.exclusive_minimum else ">="
                return f"{kind} {op} {_num(low)}"
            return kind
        if self.kind is list:
            return "a list of strings"
        return "a string"

    def parse(self, value: Any) -> Any:
        """Convert ``value`` (a string from a flag or field, or a TOML value) or refuse it."""
        if value is None or (isinstance(value, str) and value.strip() == "" and self.optional):
            if self.optional:
                return None
            raise SettingsError(f"{self.name} needs a value", f"allowed: {self.allowed()}")
        try:
            result = self._convert(value)
        except (TypeError, ValueError):
            raise SettingsError(
                f"{self.name} = {value!r} is not valid", f"allowed: {self.allowed()}"
            ) from None
        self._check(result, value)
        return result

    def _convert(self, value: Any) -> Any:
        convert: Callable[[Any], Any] = _CONVERTERS.get(self.kind, _to_text)
        return convert(value)

    def _check(self, result: Any, raw: Any) -> None:
        bad = False
        if self.choices and result not in self.choices:
            bad = True
        if self.pattern is not None and not self.pattern.match(result):
            bad = True
        if self.kind in (int, float):
            if result != result:  # NaN
                bad = True
            if self.minimum is not None and (
                result < self.minimum or (self.exclusive_minimum and result == self.minimum)
            ):
                bad = True
            if self.maximum is not None and result > self.maximum:
                bad = True
        if bad:
            raise SettingsError(
                f"{self.name} = {raw!r} is out of range", f"allowed: {self.allowed()}"
            )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


LOAD_FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec(
            "model_path",
            str,
            "model folder, .gguf file or Hub repo id (default: SmolLM2-135M-Instruct)",
            optional=True,
            reload=True,
            label="Model path",
        ),
        FieldSpec(
            "revision", str, "Hub revision (branch, tag or commit)", optional=True, reload=True
        ),
        FieldSpec(
            "device",
            str,
            "where the model runs; auto: cuda, then mps, then cpu",
            choices=DEVICES,
            reload=True,
        ),
        FieldSpec(
            "gpus",
            str,
            "GPU ids to use, e.g. 0,1 (sets CUDA_VISIBLE_DEVICES)",
            optional=True,
            pattern=_GPUS_RE,
            pattern_help="comma-separated GPU ids, e.g. 0,1",
            reload=True,
        ),
        FieldSpec(
            "num_gpus",
            int,
            "spread the model over N GPUs",
            minimum=1,
            maximum=64,
            reload=True,
            label="GPUs",
        ),
        FieldSpec(
            "max_gpu_memory",
            str,
            "memory cap per GPU, e.g. 13GiB",
            optional=True,
            pattern=_MEMORY_RE,
            pattern_help="a size such as 13GiB or 8000MiB",
            reload=True,
            label="Max GPU memory",
        ),
        FieldSpec(
            "dtype",
            str,
            "weight precision; auto: float16 on GPUs, float32 on CPU",
            choices=DTYPES,
            reload=True,
        ),
        FieldSpec("load_8bit", bool, "8-bit weights (bitsandbytes; cuda and cpu)", reload=True),
        FieldSpec("load_4bit", bool, "4-bit weights (bitsandbytes; cuda and cpu)", reload=True),
        FieldSpec(
            "cpu_offloading", bool, "put what does not fit on the GPU(s) in CPU RAM", reload=True
        ),
        FieldSpec(
            "threads",
            int,
            "CPU threads (default: every core for large GGUFs; else the cores other "
            "processes leave free, measured before each reply)",
            optional=True,
            minimum=1,
            maximum=1024,
            reload=True,
        ),
        FieldSpec(
            "compile",
            bool,
            "torch.compile the decode step (slow to start, faster after)",
            reload=True,
        ),
        FieldSpec(
            "backend",
            str,
            "auto: llama.cpp for a .gguf, transformers for everything else",
            choices=BACKENDS,
            reload=True,
        ),
        FieldSpec(
            "gguf_file",
            str,
            "which .gguf of a Hub repo to fetch and run",
            optional=True,
            reload=True,
        ),
        FieldSpec(
            "gpu_layers",
            int,
            "llama.cpp: layers to put on the GPU (default: all, where there is one)",
            optional=True,
            minimum=0,
            maximum=100_000,
            reload=True,
            label="GPU layers (llama.cpp)",
        ),
        FieldSpec(
            "context",
            int,
            "llama.cpp: context size in tokens (default: the model's, at most 4096)",
            optional=True,
            minimum=64,
            maximum=10_000_000,
            reload=True,
            label="Context (llama.cpp, tokens)",
        ),
        FieldSpec(
            "kv_type",
            str,
            "llama.cpp: KV cache precision (q8_0 halves its memory)",
            choices=KV_TYPES,
            reload=True,
        ),
        FieldSpec(
            "prompt_cache_mib",
            int,
            "llama.cpp: MiB of RAM for prompts set aside, answered again from there "
            "(default: sized to the model and the free memory; 0 = off)",
            optional=True,
            minimum=0,
            maximum=1_048_576,
            reload=True,
        ),
        FieldSpec(
            "speculate",
            str,
            "speculative decoding. ngram: drafts from "
            "text already in the chat (no extra model); draft: a --draft-model drafts; "
            "auto: the draft model when one is given, else ngram, and off for the chat when "
            "it does not pay (default: auto with a --draft-model, else off)",
            choices=SPECULATE,
            optional=True,
            reload=True,
            label="Speculation",
        ),
        FieldSpec(
            "draft_model",
            str,
            "a small model with the same vocabulary that drafts tokens for the model to "
            "check (--speculate draft or auto): a GGUF on llama.cpp; a folder, Hub id or "
            "GGUF on transformers",
            optional=True,
            reload=True,
            label="Draft model",
        ),
        FieldSpec(
            "draft_gguf_file",
            str,
            "which .gguf of the draft model's Hub repo to fetch",
            optional=True,
            reload=True,
        ),
        FieldSpec(
            "draft_gpu_layers",
            int,
            "llama.cpp: the draft model's layers on the GPU (default: all where the model "
            "has some there, else none)",
            optional=True,
            minimum=0,
            maximum=100_000,
            reload=True,
        ),
        FieldSpec(
            "draft_max",
            int,
            "most tokens drafted at a time",
            minimum=1,
            maximum=64,
            reload=True,
        ),
        FieldSpec(
            "draft_min",
            int,
            "fewest tokens a draft must have to be checked",
            minimum=0,
            maximum=64,
            reload=True,
        ),
        FieldSpec(
            "draft_p_min",
            float,
            "the draft stops at a token it is less sure of than this",
            minimum=0.0,
            maximum=1.0,
            reload=True,
        ),
    )
}

GENERATION_FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec(
            "temperature", float, "0 = greedy", minimum=0.0, maximum=2.0, label="Temperature"
        ),
        FieldSpec(
            "top_p",
            float,
            "nucleus sampling",
            minimum=0.0,
            maximum=1.0,
            exclusive_minimum=True,
            label="Top-p",
        ),
        FieldSpec("top_k", int, "0 = off", minimum=0, maximum=1_000_000, label="Top-k"),
        FieldSpec(
            "repetition_penalty",
            float,
            "1.0 = off",
            minimum=0.0,
            maximum=10.0,
            exclusive_minimum=True,
            label="Repetition penalty",
        ),
        FieldSpec(
            "max_new_tokens",
            int,
            "longest reply, in tokens",
            minimum=1,
            maximum=1_000_000,
            label="Max new tokens",
        ),
        FieldSpec(
            "seed",
            int,
            "same seed, same reply",
            optional=True,
            minimum=0,
            maximum=2**63 - 1,
            label="Seed",
        ),
        FieldSpec("stop", list, "extra stop strings"),
    )
}

CHAT_FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec(
            "template",
            str,
            "prompt template name, or auto",
            flags=("--conv-template", "--template"),
        ),
        FieldSpec(
            "system_message",
            str,
            "replaces the template's system message",
            optional=True,
            flags=("--conv-system-msg", "--system-message"),
        ),
    )
}


@dataclass(frozen=True)
class LoadSettings:
    """How to load a model.  A change to any of these needs a reload."""

    model_path: str | None = None
    revision: str | None = None
    device: str = "auto"
    gpus: str | None = None
    num_gpus: int = 1
    max_gpu_memory: str | None = None
    dtype: str = "auto"
    load_8bit: bool = False
    load_4bit: bool = False
    cpu_offloading: bool = False
    threads: int | None = None
    compile: bool = False
    backend: str = "auto"
    gguf_file: str | None = None
    gpu_layers: int | None = None
    context: int | None = None
    kv_type: str = "f16"
    prompt_cache_mib: int | None = None
    speculate: str | None = None  # None: auto with a draft model, else off
    draft_model: str | None = None
    draft_gguf_file: str | None = None
    draft_gpu_layers: int | None = None
    # llama-server's own defaults (draft up to 16, stop below 75% sure); BENCHMARKS.md
    # ("Speculative decoding") measures them on this machine.
    draft_max: int = 16
    draft_min: int = 0
    draft_p_min: float = 0.75

    def check(self) -> None:
        """Refuse combinations that cannot work, before anything is loaded."""
        _check_fields(LOAD_FIELDS, dataclasses.asdict(self))
        if self.load_8bit and self.load_4bit:
            raise SettingsError(
                "--load-8bit and --load-4bit cannot be used together",
                "pick one: --load-8bit (better quality) or --load-4bit (less memory)",
            )
        if self.speculate_mode == "draft" and not self.draft_model:
            raise SettingsError(
                "--speculate draft needs a draft model",
                "give one with --draft-model PATH (a small GGUF with the same vocabulary), "
                "or use --speculate ngram, which needs none",
            )
        if self.draft_min > self.draft_max:
            raise SettingsError(
                f"--draft-min {self.draft_min} is above --draft-max {self.draft_max}",
                "make --draft-min at most --draft-max",
            )

    @property
    def speculate_mode(self) -> str:
        """off, ngram, draft or auto (unset: auto with a draft model, else off)."""
        if self.speculate is None:
            return "auto" if self.draft_model else "off"
        return self.speculate

    @property
    def speculation(self) -> str:
        """What speculates: off, ngram or draft (auto: the draft model when one is
        given, else ngram)."""
        mode = self.speculate_mode
        if mode == "auto":
            return "draft" if self.draft_model else "ngram"
        return mode

    @property
    def quantization(self) -> str | None:
        return "8bit" if self.load_8bit else "4bit" if self.load_4bit else None


@dataclass(frozen=True)
class GenerationSettings:
    """How to sample.  Changes apply to the next reply."""

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    def as_record(self) -> dict[str, Any]:
        """As a chat and each reply record it (JSON: the stop strings as a list)."""
        values = dataclasses.asdict(self)
        values["stop"] = list(self.stop)
        return values

    def with_record(self, data: Mapping[str, Any]) -> GenerationSettings:
        """These settings with a saved record's values over them (keys it does not know
        are left out: a record from a later version)."""
        known = {f.name for f in dataclasses.fields(GenerationSettings)}
        values = {k: v for k, v in data.items() if k in known}
        if "stop" in values:
            values["stop"] = tuple(values["stop"] or ())
        return dataclasses.replace(self, **values)

    def check(self) -> None:
        _check_fields(GENERATION_FIELDS, self.as_record())

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class RemoteSettings:
    """An OpenAI-compatible server.  The API key is never part of repr() or records."""

    endpoint: str
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    api_key: str | None = field(default=None, repr=False)
    request_timeout: float = 600.0
    verify_tls: bool = True

    def key(self) -> str | None:
        """The API key: from the environment variable, else from the config file."""
        import os

        return os.environ.get(self.api_key_env) or self.api_key


def _check_fields(specs: Mapping[str, FieldSpec], values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        spec = specs[name]
        if value is None and spec.optional:
            continue
        spec.parse(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def _to_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(value)


def _to_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value.strip()


# How a setting's raw value (a flag's text, a TOML value) becomes its kind.
_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    list: _to_list,
}


def parse_fields(
    specs: Mapping[str, FieldSpec], values: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """Validate a mapping of settings (from TOML); unknown keys are refused by name."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None:
            raise SettingsError(
                f"unknown setting {key!r} in {where}", "known: " + ", ".join(sorted(specs))
            )
        try:
            out[key] = spec.parse(value)
        except SettingsError as exc:
            raise SettingsError(f"{exc.message} (in {where})", exc.hint) from None
    return out


def memory_to_bytes(text: str) -> int:
    """'13GiB' -> 13 * 2**30."""
    match = _MEMORY_RE.match(text)
    if not match:
        raise SettingsError(f"max_gpu_memory = {text!r} is not a size", "use e.g. 13GiB")
    number = float(match.group(1))
    unit = match.group(2).lower()
    scale = {"gib": 2**30, "gb": 10**9, "mib": 2**20, "mb": 10**6, "tib": 2**40, "tb": 10**12}
    return int(number * scale[unit])
