"""Output held to a JSON schema or a GBNF grammar on the transformers engine, with
xgrammar (the ``grammar`` extra): before each token is drawn, the tokens that cannot
continue the schema or grammar are masked out of the logits.

xgrammar is optional: without it a schema or grammar is refused with the way to get
it.  Its grammar compiler is made once per loaded tokenizer (its vocabulary is read
once), and each schema or grammar is compiled once per model (xgrammar's own cache).
The mask costs about half a millisecond a token on this CPU (BENCHMARKS.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from vicuna_tui.engine.constraints import JSON_SCHEMA, OutputConstraint
from vicuna_tui.errors import SettingsError

MAX_WHITESPACE = 20  # between JSON tokens: a sampled reply cannot run on in white space
INSTALL_HINT = (
    "install xgrammar (pip install 'vicuna-tui[grammar]'), or run a GGUF of the model on "
    "llama.cpp (a .gguf path, or --gguf-file)"
)


def _xgrammar() -> Any:
    try:
        import xgrammar
    except ImportError as exc:
        raise SettingsError(
            "a JSON schema or grammar on the transformers engine needs xgrammar, which is "
            f"not installed ({exc})",
            INSTALL_HINT,
        ) from None
    return xgrammar


class GrammarCompiler:
    """xgrammar's compiler for one loaded tokenizer, made on first use."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: Iterable[int]) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._stop_ids = sorted(set(stop_ids))
        self._compiler: Any = None
        self._info: Any = None

    def held(self, constraint: OutputConstraint, stop_ids: Iterable[int]) -> HeldOutput:
        """A matcher for one reply (``stop_ids``: the tokens that may end it)."""
        xgr = _xgrammar()
        if self._compiler is None:
            self._info = xgr.TokenizerInfo.from_huggingface(
                self._tokenizer, vocab_size=self._vocab_size, stop_token_ids=self._stop_ids
            )
            self._compiler = xgr.GrammarCompiler(self._info, max_threads=1)
        try:
            if constraint.kind == JSON_SCHEMA:
                compiled = self._compiler.compile_json_schema(
                    json.dumps(constraint.schema), max_whitespace_cnt=MAX_WHITESPACE
                )
            else:
                compiled = self._compiler.compile_grammar(constraint.grammar)
        except (RuntimeError, ValueError) as exc:
            what = "JSON schema" if constraint.kind == JSON_SCHEMA else "GBNF grammar"
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "refused"
            raise SettingsError(
                f"xgrammar cannot use the {what} {constraint.source} ({first})",
                "check its syntax: llama.cpp's grammars/README.md describes both",
            ) from None
        matcher = xgr.GrammarMatcher(compiled, override_stop_tokens=sorted(set(stop_ids)))
        return HeldOutput(xgr, matcher, self._info.vocab_size)


class HeldOutput:
    """One reply held to its schema or grammar: ``mask`` the logits before each draw,
    ``accept`` the token drawn."""

    def __init__(self, xgr: Any, matcher: Any, vocab_size: int) -> None:
        self._xgr = xgr
        self._matcher = matcher
        self._bitmask = xgr.allocate_token_bitmask(1, vocab_size)

    def mask(self, logits: Any) -> Any:
        """``logits`` (a copy) with every token that cannot come next at -inf."""
        masked = logits.clone()
        self._matcher.fill_next_token_bitmask(self._bitmask)
        self._xgr.apply_token_bitmask_inplace(masked, self._bitmask.to(masked.device))
        return masked

    def accept(self, token: int) -> None:
        self._matcher.accept_token(token)

    @property
    def finished(self) -> bool:
        """The schema or grammar is complete and its stop token was drawn."""
        return bool(self._matcher.is_terminated())
