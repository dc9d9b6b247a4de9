"""From flags, config, profile and a saved conversation to the settings a run uses.

Precedence: command-line flag > saved conversation (with --resume) > profile >
config > built-in default.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vicuna_tui import config as config_mod
from vicuna_tui.engine.backend import Backend
from vicuna_tui.engine.settings import (
    GENERATION_FIELDS,
    LOAD_FIELDS,
    GenerationSettings,
    LoadSettings,
    RemoteSettings,
)
from vicuna_tui.engine.templates import TEMPLATE_CHOICES
from vicuna_tui.errors import SettingsError
from vicuna_tui.session import ChatSession
from vicuna_tui.session_writes import Writer
from vicuna_tui.store import Conversation, Store, StoreError


@dataclass
class Resolved:
    load: LoadSettings
    generation: GenerationSettings
    template: str
    system_message: str | None
    remote: RemoteSettings | None
    config: config_mod.Config
    theme: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Where each setting came from: "flag", "conversation", "profile" or "config" (a
    # setting not named here is the built-in default).  Only the settings pane's edits
    # and ``config set`` write config.toml: a flag lasts for its run.
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def flags(self) -> dict[str, Any]:
        """The settings this run's command line gave, by name, as resolved."""
        values: dict[str, Any] = {}
        for name, source in self.sources.items():
            if source != "flag":
                continue
            if name in LOAD_FIELDS:
                values[name] = getattr(self.load, name)
            elif name in GENERATION_FIELDS:
                values[name] = getattr(self.generation, name)
            elif name == "template":
                values[name] = self.template
            elif name == "system_message":
                values[name] = self.system_message
        return values


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, validated by the same specs as config."""
    values: dict[str, Any] = {}
    for name, value in vars(args).items():
        if value is None or name not in config_mod.SETTING_FIELDS:
            continue
        spec = config_mod.SETTING_FIELDS[name]
        try:
            values[name] = spec.parse(value)
        except SettingsError as exc:
            flag = "--" + name.replace("_", "-")
            raise SettingsError(exc.message.replace(name, flag, 1), exc.hint) from None
    return values


def conversation_values(conv: Conversation) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in conv.load.items():
        if key in LOAD_FIELDS and value is not None:
            values[key] = value
    for key, value in conv.generation.items():
        if key in GENERATION_FIELDS and value is not None:
            values[key] = value
    if conv.template in TEMPLATE_CHOICES:  # a remote chat records "server": not a template
        values["template"] = conv.template

    if conv.system_message is not None:
        values["system_message"] = conv.system_message
    if conv.endpoint:
        values["endpoint"] = conv.endpoint
    if conv.backend == "remote" and conv.model_name:
        values["remote_model"] = conv.model_name
    return values


def resolve(
    args: argparse.Namespace,
    conversation: Conversation | None = None,
    cfg: config_mod.Config | None = None,
) -> Resolved:
    cfg = cfg or config_mod.load()
    warnings: list[str] = []
    base: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if cfg.error is not None:
        warnings.append(str(cfg.error))
    else:
        base = cfg.settings(getattr(args, "profile", None))
        profile = cfg.profiles.get(getattr(args, "profile", None) or "", {})
        sources.update({k: "profile" if k in profile else "config" for k in base})
    if conversation is not None:
        saved = conversation_values(conversation)
        base.update(saved)
        sources.update(dict.fromkeys(saved, "conversation"))
    flags = flag_values(args)
    sources.update(dict.fromkeys(flags, "flag"))
    merged = {**base, **flags}
    load = LoadSettings(**{k: merged[k] for k in LOAD_FIELDS if k in merged})
    gen_values = {k: merged[k] for k in GENERATION_FIELDS if k in merged}
    if "stop" in gen_values:
        gen_values["stop"] = tuple(gen_values["stop"])
    generation = GenerationSettings(**gen_values)
    template = merged.get("template", "auto")
    if template not in TEMPLATE_CHOICES:
        raise SettingsError(
            f"unknown template {template!r}", "choose one of: " + ", ".join(TEMPLATE_CHOICES)
        )
    load.check()
    generation.check()
    remote = None
    if merged.get("endpoint") and load.speculation != "off":
        raise SettingsError(
            "speculative decoding (--speculate, --draft-model) is for models run here; a "
            "server speculates on its own",
            "start the server with it (vLLM: --speculative-config; llama-server: "
            "--model-draft, or --spec-type ngram), or leave the flags out",
        )
    if merged.get("endpoint"):
        remote = RemoteSettings(
            endpoint=merged["endpoint"],
            model=merged.get("remote_model"),
            api_key_env=merged.get("api_key_env", "OPENAI_API_KEY"),
            api_key=merged.get("api_key"),
            request_timeout=merged.get("request_timeout", 600.0),
            verify_tls=merged.get("verify_tls", True),
        )
    return Resolved(
        load=load,
        generation=generation,
        template=template,
        system_message=merged.get("system_message"),
        remote=remote,
        config=cfg,
        theme=merged.get("theme"),
        warnings=warnings,
        sources=sources,
    )


def make_backend(resolved: Resolved, *, debug: bool = False) -> Backend:
    """The backend for a line front end, in this process (``debug``: llama.cpp's own
    log on stderr)."""
    from vicuna_tui.engine.factory import make_backend as build

    return build(resolved.load, resolved.remote, debug=debug)


def apply_gpus(load: LoadSettings) -> None:
    """--gpus must reach CUDA before torch initialises it."""
    if load.gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = load.gpus.replace(" ", "")


def open_store(no_save: bool) -> tuple[Store | None, StoreError | None]:
    """The store for a chat, and why there is none when it cannot be opened (a damaged
    database, a read-only folder, a full disk): the chat then runs without saving.
    A daily backup is taken on the way (best effort)."""
    if no_save:
        return None, None
    try:
        store = Store()
    except StoreError as exc:
        return None, exc
    from vicuna_tui.store import backups

    backups.take_daily(store)
    return store, None


def new_session(
    resolved: Resolved,
    store: Store | None,
    *,
    warn: Callable[[str], None] | None = None,
    not_saving: str | None = None,
    writer: Writer | None = None,
) -> ChatSession:
    """A chat with the resolved settings: the one way every front end starts one."""
    return ChatSession(
        store,
        generation=resolved.generation,
        template=resolved.template,
        system_message=resolved.system_message,
        load=resolved.load,
        endpoint=resolved.remote.endpoint if resolved.remote else None,
        warn=warn,
        not_saving=not_saving,
        writer=writer,
        pinned=resolved.flags,
    )
