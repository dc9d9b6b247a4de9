"""A draft model on the transformers engine: a small model with the model's vocabulary
guesses the next tokens greedily, and the model checks the whole guess in one forward
(the same loop as n-gram lookup: ``LocalBackend._speculate_decode``).

The draft keeps its own KV cache for the load: each guess first brings the cache to
the chat so far (keeping the prefix it shares, reading in the rest), so a chat's
earlier turns are read by the draft once, as by the model.  A guess stops at
``draft_max`` tokens, or at a token the draft is less than ``draft_p_min`` sure of
(llama.cpp's rule); one shorter than ``draft_min`` is not checked.
"""

from __future__ import annotations

import inspect
from typing import Any

from vicuna_tui.engine.drafting import AutoSwitch, DraftTally
from vicuna_tui.engine.prompting import common_prefix
from vicuna_tui.engine.settings import LoadSettings


class ModelDraft:
    kind = "draft"

    def __init__(self, loaded: Any, settings: LoadSettings) -> None:
        self.loaded = loaded  # the draft's loader.LoadedModel
        self.most = settings.draft_max
        self.fewest = settings.draft_min
        self.sure = settings.draft_p_min
        self._cache: Any = None  # the draft's KV cache, and the ids it holds
        self._cached: list[int] = []
        self.context: list[int] = []
        self.tally = DraftTally()
        self.from_draft = False
        self.guard: AutoSwitch | None = None  # auto's, set for each reply
        from vicuna_tui.engine.transformers.fastpath import cache_argument

        model = loaded.model
        self._extra = {"logits_to_keep": 1} if _takes(model, "logits_to_keep") else {}
        self._cache_key = cache_argument(model)

    @property
    def name(self) -> str:
        return str(self.loaded.source.name)

    def begin(self, ids: list[int]) -> ModelDraft:
        """A new reply after the prompt ``ids``: fresh counts, the cache kept."""
        self.context = list(ids)
        self.tally = DraftTally()
        self.from_draft = False
        return self

    def add(self, token: int) -> None:
        self.context.append(token)

    def reset(self) -> None:
        """Forget the cache (the model's own was reset: a failure, a new chat)."""
        self._cache, self._cached = None, []

    def propose(self, room: int) -> list[int]:
        """Up to ``room`` (and draft_max) tokens the draft would write next."""
        import torch

        from vicuna_tui.engine.transformers.fastpath import output_cache

        wanted = min(self.most, room)
        if wanted <= 0 or not self.context:
            return []
        model = self.loaded.model
        kept = min(common_prefix(self._cached, self.context), len(self.context) - 1)
        if self._cache is not None and kept < len(self._cached):
            self._cache.crop(kept - len(self._cached))  # what it holds past the chat
            del self._cached[kept:]
        if self._cache is None:
            kept = 0
            self._cached = []
        feed = self.context[kept:]
        draft: list[int] = []
        device = self.loaded.input_device
        with torch.inference_mode():
            while len(draft) < wanted:
                out = model(
                    input_ids=torch.tensor([feed], device=device),
                    **{self._cache_key: self._cache},
                    use_cache=True,
                    **self._extra,
                )
                self._cache = output_cache(out)
                self._cached.extend(feed)
                probs = torch.softmax(out.logits[0, -1].float(), dim=-1)
                sure, token = torch.max(probs, dim=-1)
                if float(sure) < self.sure:
                    break
                draft.append(int(token))
                feed = [int(token)]
        return draft if len(draft) >= max(self.fewest, 1) else []


def _takes(model: Any, argument: str) -> bool:
    return argument in inspect.signature(model.forward).parameters
