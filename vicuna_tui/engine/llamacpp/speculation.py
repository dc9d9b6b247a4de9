"""Speculative decoding on llama.cpp: something cheap drafts the next tokens and the
model checks them all in one batch, keeping those it would have written itself.

- ``ngram``: llama.cpp's draftless n-gram mode (``NGRAM_SIMPLE``): the draft is the
  text that followed the same tokens earlier in the chat.  No extra model, no extra
  memory, and it drafts nothing when nothing repeats.  (``NGRAM_MOD``, which also
  learns across replies, was exact alone; the two together were not: BENCHMARKS.md.)
- ``draft``: a small GGUF with the same vocabulary (``--draft-model``), checked first.
- ``auto``: the first reply of a chat is written without speculation (the baseline
  rate), the next with it; when it accepts too few drafted tokens, or decodes slower
  than the baseline, it is off for the rest of the chat, said once (``drafting``).

llama.cpp sets speculation when its server starts, not per request, so switching it
rebuilds the server's context (the model file stays mapped): once per chat at most.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vicuna_tui.engine import gguf_file
from vicuna_tui.engine.drafting import check_vocabulary
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.errors import SettingsError


def check_gguf_vocabulary(target: gguf_file.GGUFInfo, draft: gguf_file.GGUFInfo) -> None:
    """Refuse a draft GGUF whose vocabulary is not the model's (``drafting``)."""
    if not len(draft.tokens):
        raise SettingsError(
            f"the draft model {draft.path.name} has no vocabulary in its GGUF header",
            "use a GGUF converted with its tokenizer (llama.cpp's convert_hf_to_gguf.py)",
        )
    check_vocabulary(target.path.name, target.tokens, draft.path.name, draft.tokens)


def configure(
    params: Any,
    xllamacpp: Any,
    kind: str,
    settings: LoadSettings,
    draft: Path | None,
    *,
    threads: int,
    gpu_layers: int,
) -> None:
    """Set llama.cpp's speculation (``kind``: off, ngram or draft) on ``params``."""
    types = xllamacpp.common_speculative_type
    spec = params.speculative
    if kind == "ngram":
        spec.types = [types.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
    elif kind == "draft" and draft is not None:
        spec.types = [types.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
        spec.draft.mparams.path = str(draft)
        spec.draft.n_max = settings.draft_max
        spec.draft.n_min = settings.draft_min
        spec.draft.p_min = settings.draft_p_min
        own = settings.draft_gpu_layers
        spec.draft.n_gpu_layers = own if own is not None else (-1 if gpu_layers else 0)
        spec.draft.cpuparams.n_threads = threads
        spec.draft.cpuparams_batch.n_threads = threads
    else:
        spec.types = [types.COMMON_SPECULATIVE_TYPE_NONE]
