"""Reading the verdict out of a judge's reply.

Two rules (``--verdict-rule``):

* ``fastchat`` (the default), FastChat's own, so that a judgment reads the same with
  either tool: the first ``[[8]]`` (else the first ``[8]``); for pairs ``[[A]]`` if
  the reply holds it anywhere, else ``[[B]]``, else ``[[C]]``; the first
  ``[[8,3]]`` (else ``[8,3]``).
* ``last``: judges, small ones above all, drift from the form (single brackets,
  "Rating: 8/10", "Assistant B is better") and repeat the instructions before
  answering.  The strict form wins, and of several the last; then each fallback in
  turn; a score must lie in 1..10, and "not a tie" is not a tie.

None means no verdict could be read.
"""

from __future__ import annotations

import re

TIE_DELTA = 0.1  # FastChat's: two scores this close are a tie

_NUMBER = r"(\d+(?:\.\d+)?)"
_SCORE_PATTERNS = (
    re.compile(r"\[\[\s*" + _NUMBER + r"\s*\]\]"),
    re.compile(r"\[\s*" + _NUMBER + r"\s*\]"),
    re.compile(r"\b(?:rating|score|grade)\s*(?:is|of|:|=)?\s*" + _NUMBER, re.IGNORECASE),
    re.compile(_NUMBER + r"\s*(?:/|out of)\s*10\b", re.IGNORECASE),
)
_TWO_SCORE_PATTERNS = (
    re.compile(r"\[\[\s*" + _NUMBER + r"\s*,\s*" + _NUMBER + r"\s*\]\]"),
    re.compile(r"\[\s*" + _NUMBER + r"\s*,\s*" + _NUMBER + r"\s*\]"),
)
# The letters are matched in capitals only: "a tie" must not read as A.
_WINNER_PATTERNS = (
    re.compile(r"\[\[\s*(A|B|C|[Tt]ie)\s*\]\]"),
    re.compile(r"\[\s*(A|B|C|[Tt]ie)\s*\]"),
    re.compile(r"(?i:\bverdict)\s*(?i:is|:)?\s*\"?(?:(?i:assistant)\s+)?(A|B|C)\b"),
    re.compile(r"(?i:\bassistant)\s+(A|B)\s+(?i:is|was)\s+(?i:clearly\s+)?(?i:better)\b"),
    re.compile(r"\b(tie)\b", re.IGNORECASE),
)
_WINNERS = {"a": "A", "b": "B", "c": "tie", "tie": "tie"}
_NEGATED = re.compile(r"\b(?:not|no|isn't|is not)\s+(?:a\s+|an\s+)?$", re.IGNORECASE)
RULES = ("fastchat", "last")


def read_score(text: str) -> float | None:
    """A score from 1 to 10 (``[[8]]``, ``[8]``, "Rating: 8", "8/10"), else None."""
    for pattern in _SCORE_PATTERNS:
        for match in reversed(list(pattern.finditer(text))):
            value = float(match.group(1))
            if 1 <= value <= 10:
                return int(value) if value.is_integer() else value
    return None


def read_two_scores(text: str) -> str | None:
    """``[[rating_a, rating_b]]`` as a winner (A, B or tie), else None."""
    for pattern in _TWO_SCORE_PATTERNS:
        matches = list(pattern.finditer(text))
        if matches:
            a, b = (float(g) for g in matches[-1].groups())
            if abs(a - b) <= TIE_DELTA:
                return "tie"
            return "A" if a > b else "B"
    return None


def read_winner(text: str) -> str | None:
    """``[[A]]``, ``[[B]]`` or ``[[C]]`` (a tie) with fallbacks, as A, B or tie; a
    negated one ("this is not a tie") does not count."""
    for pattern in _WINNER_PATTERNS:
        matches = [m for m in pattern.finditer(text) if not _negated(text, m.start())]
        if matches:
            return _WINNERS[matches[-1].group(1).lower()]
    return None


def _negated(text: str, start: int) -> bool:
    """Whether the words just before ``start`` negate it ("not a", "no", "isn't")."""
    return _NEGATED.search(text[max(0, start - 16) : start]) is not None


_FASTCHAT_ONE = (re.compile(r"\[\[(\d+\.?\d*)\]\]"), re.compile(r"\[(\d+\.?\d*)\]"))
_FASTCHAT_TWO = (
    re.compile(r"\[\[(\d+\.?\d*),\s?(\d+\.?\d*)\]\]"),
    re.compile(r"\[(\d+\.?\d*),\s?(\d+\.?\d*)\]"),
)


def fastchat_verdict(output_format: str, text: str) -> float | str | None:
    """FastChat 0.2.36's reading (``llm_judge/common.py``), exactly."""
    if output_format == "[[A]]":
        for mark, winner in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
            if mark in text:
                return winner
        return None
    patterns = _FASTCHAT_ONE if output_format == "[[rating]]" else _FASTCHAT_TWO
    match = patterns[0].search(text) or patterns[1].search(text)
    if match is None:
        return None
    values = [float(g) for g in match.groups()]
    if output_format == "[[rating]]":
        return int(values[0]) if values[0].is_integer() else values[0]
    a, b = values
    return "tie" if abs(a - b) <= TIE_DELTA else ("A" if a > b else "B")


def read_verdict(output_format: str, text: str, rule: str = "fastchat") -> float | str | None:
    """The verdict in ``text``, for a prompt of ``output_format``, by ``rule``."""
    if rule == "fastchat":
        return fastchat_verdict(output_format, text)
    if output_format == "[[rating]]":
        return read_score(text)
    if output_format == "[[rating_a,rating_b]]":
        return read_two_scores(text)
    return read_winner(text)


def format_reminder(output_format: str) -> str:
    """What the judge is told when its verdict could not be read."""
    example = {
        "[[rating]]": '"[[5]]" (a rating from 1 to 10)',
        "[[rating_a,rating_b]]": '"[[5,7]]" (a rating from 1 to 10 for each assistant)',
    }.get(output_format, '"[[A]]", "[[B]]" or "[[C]]" for a tie')
    return (
        "I could not find your verdict. Reply with the verdict alone, in exactly this "
        f"form: {example}."
    )


_SCORE_GBNF = '"10" | [1-9]'
_GRAMMARS = {
    "[[rating]]": f'root ::= "[[" ({_SCORE_GBNF}) "]]"\n',
    "[[rating_a,rating_b]]": f'root ::= "[[" ({_SCORE_GBNF}) "," ({_SCORE_GBNF}) "]]"\n',
}
_WINNER_GBNF = 'root ::= "[[" [ABC] "]]"\n'


def verdict_grammar(output_format: str) -> str:
    """A GBNF grammar whose every sentence is a verdict of ``output_format`` that
    ``read_verdict`` reads: ``[[1]]``…``[[10]]``, ``[[3,7]]``, or ``[[A]]``/``[[B]]``/``[[C]]``."""
    return _GRAMMARS.get(output_format, _WINNER_GBNF)
