"""The flag groups that the chat and ``replay`` commands share."""

from __future__ import annotations

import argparse

from vicuna_tui.engine.settings import (
    BACKENDS,
    DEVICES,
    DTYPES,
    GENERATION_FIELDS,
    KV_TYPES,
    GenerationSettings,
)


def _switch(group: argparse._ArgumentGroup, flag: str, text: str) -> None:
    """A flag that turns something on (None when absent, so config.toml decides)."""
    group.add_argument(flag, action="store_const", const=True, help=text)


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and device")
    g.add_argument(
        "--model-path",
        help="model folder, .gguf file or Hub repo id (default: SmolLM2-135M-Instruct)",
    )
    g.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    g.add_argument(
        "--backend",
        choices=BACKENDS,
        help="auto (default): llama.cpp for a .gguf, transformers for everything else",
    )
    g.add_argument("--gguf-file", help="which .gguf of a Hub repo to fetch and run")
    g.add_argument("--device", choices=DEVICES, help="default: auto (cuda, then mps, then cpu)")
    g.add_argument("--gpus", help="GPU ids to use, e.g. 0,1 (sets CUDA_VISIBLE_DEVICES)")
    g.add_argument("--num-gpus", help="spread the model over N GPUs")
    g.add_argument("--max-gpu-memory", help="memory cap per GPU, e.g. 13GiB")
    g.add_argument(
        "--dtype", choices=DTYPES, help="default: auto (float16 on GPUs, float32 on CPU)"
    )
    _switch(g, "--load-8bit", "8-bit weights (bitsandbytes; cuda and cpu)")
    _switch(g, "--load-4bit", "4-bit weights (bitsandbytes; cuda and cpu)")
    _switch(g, "--cpu-offloading", "put what does not fit on the GPU(s) in CPU RAM")
    g.add_argument(
        "--threads",
        help="CPU threads (default: every core for large GGUFs; else the cores other "
        "processes leave free, measured before each reply)",
    )
    g.add_argument(
        "--gpu-layers",
        help="llama.cpp: layers to put on the GPU (default: all, where there is one)",
    )
    g.add_argument(
        "--context", help="llama.cpp: context size in tokens (default: the model's, at most 4096)"
    )
    g.add_argument(
        "--kv-type",
        choices=KV_TYPES,
        help="llama.cpp: KV cache precision (default f16; q8_0 halves its memory)",
    )
    g.add_argument(
        "--prompt-cache-mib",
        help="llama.cpp: MiB of RAM for prompts set aside, answered again from there "
        "(default: sized to the model and the free memory; 0 = off)",
    )
    _switch(g, "--compile", "torch.compile the decode step (slow to start, faster after)")
    g.add_argument("--profile", help="a [profiles.NAME] section of config.toml")
    add_remote_flags(parser)


def add_remote_flags(parser: argparse.ArgumentParser) -> None:
    r = parser.add_argument_group("remote server (OpenAI-compatible)")
    r.add_argument("--endpoint", help="server URL, e.g. http://gpu-box:8000/v1")
    r.add_argument("--model", dest="remote_model", help="model name on the server")
    r.add_argument(
        "--api-key-env", help="environment variable with the API key (default: OPENAI_API_KEY)"
    )
    r.add_argument("--request-timeout", help="seconds to wait for the server (default 600)")
    r.add_argument(
        "--insecure",
        dest="verify_tls",
        action="store_const",
        const=False,
        help="do not check the server's TLS certificate",
    )


def add_generation_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("prompt and sampling")
    g.add_argument(
        "--conv-template",
        "--template",
        dest="template",
        help="prompt template: auto (default), tokenizer, vicuna_v1.1, one_shot, "
        "zero_shot, llama-2, chatml, alpaca",
    )
    g.add_argument(
        "--conv-system-msg",
        "--system-message",
        dest="system_message",
        help="replace the template's system message",
    )
    # Each sampling flag, its help and its default come from the setting's declaration.
    defaults = GenerationSettings()
    for spec in GENERATION_FIELDS.values():
        if spec.kind is list:
            g.add_argument(spec.flag, action="append", help=f"{spec.help} (repeatable)")
        else:
            g.add_argument(spec.flag, help=spec.flag_help(getattr(defaults, spec.name)))
