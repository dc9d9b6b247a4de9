"""Speculative decoding on llama.cpp: something cheap drafts the next tokens and the
model checks them all in one batch, keeping those it would have written itself.

- ``ngram``: llama.cpp's draftless n-gram mode (``NGRAM_SIMPLE``): the draft is the
  text that followed the same tokens earlier in the chat.  No extra model, no extra
  memory, and it drafts nothing when nothing repeats.  (``NGRAM_MOD``, which also
  learns across replies, was exact alone; the two together were not: BENCHMARKS.md.)
- ``draft``: a small GGUF with the same vocabulary (``--draft-model``), checked first.
- ``auto``: the first reply of a chat is written without speculation (the baseline
  rate), the next with it; when it accepts too few drafted tokens, or decodes slower
  than the baseline, it is off for the rest of the chat, said once.

llama.cpp sets speculation when its server starts, not per request, so switching it
rebuilds the server's context (the model file stays mapped): once per chat at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicuna_tui.engine import gguf_file
from vicuna_tui.engine.drafting import MIN_TOKENS
from vicuna_tui.engine.events import ReplyStats
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.errors import SettingsError

# auto's rule, judged on the first reply written with speculation that has MIN_TOKENS
# new tokens: a draft model is off when fewer than MIN_USEFUL of the reply's tokens came
# from its drafts (a draft that guesses nothing still runs at every step, and is often
# too unsure to draft at all); either mode is off when, over MIN_DRAFTED drafted tokens,
# fewer than MIN_ACCEPTED were kept, or when it decoded slower than PAYS of the baseline
# (the reply before, written without it: ReplyStats.baseline_rate).
MIN_USEFUL = 0.2
MIN_DRAFTED = 16
MIN_ACCEPTED = 0.3
PAYS = 0.95
VOCAB_SLACK = 128  # llama.cpp's own: the vocabularies may differ in size by this much


def check_vocabulary(target: gguf_file.GGUFInfo, draft: gguf_file.GGUFInfo) -> None:
    """Refuse a draft model whose vocabulary is not the model's: its tokens would mean
    other text, and every draft would be rejected (or worse, llama.cpp refuses late)."""
    if not len(draft.tokens):
        raise SettingsError(
            f"the draft model {draft.path.name} has no vocabulary in its GGUF header",
            "use a GGUF converted with its tokenizer (llama.cpp's convert_hf_to_gguf.py)",
        )
    size = abs(len(target.tokens) - len(draft.tokens))
    differ = []
    for index in range(min(len(target.tokens), len(draft.tokens))):
        if target.tokens[index] != draft.tokens[index]:
            differ.append(index)
            if len(differ) == 3:
                break
    if size <= VOCAB_SLACK and not differ:
        return
    if differ:
        shown = ", ".join(f"#{i} {target.tokens[i]!r} against {draft.tokens[i]!r}" for i in differ)
        what = f"their tokens differ ({shown})"
    else:
        what = f"it has {len(draft.tokens)} tokens, the model {len(target.tokens)}"
    raise SettingsError(
        f"the draft model {draft.path.name} does not share {target.path.name}'s vocabulary: {what}",
        "pick a draft from the same family (the same tokenizer), or use --speculate "
        "ngram, which needs no draft model",
    )


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


def described(kind: str, draft: Path | None) -> str | None:
    """How the status bar and the saved replies name it."""
    if kind == "ngram":
        return "ngram"
    if kind == "draft" and draft is not None:
        return f"draft {draft.name}"
    return None


@dataclass
class AutoSwitch:
    """auto's decision for one chat: a reply without speculation (the baseline),
    then one with it, then whether speculation stays (``decided``)."""

    kind: str  # what speculates when on: ngram or draft
    decided: bool = False
    on: bool = False

    def after_reply(self, stats: ReplyStats) -> tuple[bool | None, str]:
        """After a reply: (turn speculation on/off for the next reply, or None to keep
        it as it is; why, for the user, when it goes off)."""
        if self.decided or stats.new_tokens < MIN_TOKENS:
            return None, ""  # decided, or too short to tell anything
        rate = stats.tokens_per_second
        if not self.on:
            if not rate:
                return None, ""
            self.on = True
            return True, ""
        drafted, accepted = stats.drafted or 0, stats.accepted or 0
        why = ""
        if self.kind == "draft" and accepted < MIN_USEFUL * stats.new_tokens:
            why = (
                f"{accepted} of the reply's {stats.new_tokens} tokens came from the draft "
                f"model's guesses (it pays from about {MIN_USEFUL:.0%})"
            )
        elif drafted < MIN_DRAFTED:
            return None, ""  # n-gram: nothing repeated yet, and it costs nothing idle
        elif accepted < MIN_ACCEPTED * drafted:
            why = (
                f"it kept {accepted} of {drafted} drafted tokens ({accepted / drafted:.0%}; "
                f"it pays from about {MIN_ACCEPTED:.0%})"
            )
        elif rate and stats.baseline_rate and rate < PAYS * stats.baseline_rate:
            why = (
                f"it decoded {rate:.1f} tok/s against {stats.baseline_rate:.1f} without it (it "
                f"kept {accepted / drafted:.0%} of its drafts, but drafting cost more than "
                "it saved)"
            )
        self.decided = True
        if not why:
            return None, ""
        self.on = False
        return False, f"speculation is off for this chat: {why}"
