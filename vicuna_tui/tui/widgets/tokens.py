"""A reply as its tokens (the token view): each token marked by how sure the model was,
a cursor that moves along them, and the focused token's alternatives with what the
sampler made of them.

The marks read in every theme and without colour: the least likely tokens (under 10%)
are underlined, the unsure ones (10-50%) italic, and each level has its own tint from
the theme's own colours.  Token text is model text: it is made terminal-safe and never
read as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static

from vicuna_tui.engine.events import TokenLogprob
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.engine.tokens import (
    LIKELY,
    SURE,
    UNLIKELY,
    UNSURE,
    level,
    probability,
    sampler_effect,
)
from vicuna_tui.textsafe import terminal_safe

STYLES = {
    SURE: "",
    LIKELY: "on $success 15%",
    UNSURE: "italic on $warning 30%",
    UNLIKELY: "underline on $error 40%",
}
CURSOR = "reverse bold"
LEGEND = "≥90% plain · 50-90% tinted · 10-50% italic · under 10% underlined"
SHOWN_ALTERNATIVES = 5
NOT_RECORDED = (
    "No token probabilities were recorded with this reply: the token view was off when "
    "it was written (or a server sent none). Ctrl+R writes it again with them."
)


def shown_tokens(tokens: Sequence[TokenLogprob], text: str) -> list[TokenLogprob]:
    """The tokens that make up ``text`` (the reply as saved, its leading white space
    stripped): those past its end (a stop string cut from the reply) are left out."""
    budget = len(text.rstrip())
    shown: list[TokenLogprob] = []
    length = 0
    for token in tokens:
        if length >= budget and shown:
            break
        shown.append(token)
        length += len(token.token if length else token.token.lstrip())
    return shown


def percent(p: float) -> str:
    if p >= 0.995:
        return "100%"
    if p >= 0.01:
        return f"{p:.0%}"
    return "<1%" if p > 0 else "0%"


@dataclass
class TokenCursor:
    """Which token of a reply is focused (-1: none yet)."""

    count: int
    at: int = -1

    def move(self, step: int) -> int:
        if self.count:
            self.at = min(max(self.at + step if self.at >= 0 else 0, 0), self.count - 1)
        return self.at


class TokenText(Static):
    """The reply's tokens, marked, with a cursor; the focused token's alternatives in
    ``detail()``."""

    def __init__(self, tokens: Sequence[TokenLogprob], settings: GenerationSettings) -> None:
        super().__init__(classes="tokens")
        self.tokens = list(tokens)
        self.settings = settings
        self.cursor = TokenCursor(len(self.tokens))

    def on_mount(self) -> None:
        self.draw()

    def draw(self) -> None:
        self.update(self.marked())

    def marked(self) -> Content:
        parts: list[tuple[str, str] | str] = []
        for index, token in enumerate(self.tokens):
            text = terminal_safe(token.token.lstrip() if index == 0 else token.token)
            style = CURSOR if index == self.cursor.at else STYLES[level(token.logprob)]
            if index == self.cursor.at and not text.strip():
                text = "␣" if "\n" not in text else "⏎\n"  # a cursor on white space shows
            parts.append((text, style) if style else text)
        return Content.assemble(*parts)

    def move(self, step: int) -> None:
        self.cursor.move(step)
        self.draw()

    def jump(self, step: int) -> bool:
        """To the next (``step`` 1) or previous (-1) token written at under 10%; False
        when there is none that way."""
        at = self.cursor.at
        index = at + step if at >= 0 else (0 if step > 0 else len(self.tokens) - 1)
        while 0 <= index < len(self.tokens):
            if level(self.tokens[index].logprob) == UNLIKELY:
                self.cursor.at = index
                self.draw()
                return True
            index += step
        return False

    @property
    def focused_token(self) -> TokenLogprob | None:
        at = self.cursor.at
        return self.tokens[at] if 0 <= at < len(self.tokens) else None

    def alternatives(self) -> list[str]:
        """The focused token's alternatives as 1-5 would pick them: the most likely
        first (the written one among them when it was likely enough)."""
        token = self.focused_token
        if token is None:
            return []
        top = sorted(token.top, key=lambda c: -c.logprob)[:SHOWN_ALTERNATIVES]
        return [c.token for c in top]

    def detail(self) -> str:
        token = self.focused_token
        if token is None:
            return f"{len(self.tokens)} tokens · {LEGEND} · ←/→ move along them"
        effect = sampler_effect(token, self.settings)
        picks = self.alternatives()
        lines = [
            f"token {self.cursor.at + 1}/{len(self.tokens)}: {token.token!r} "
            f"{percent(probability(token.logprob))}"
            f"  · model → after the sampler{' (≈)' if effect.approximate else ''}"
        ]
        for alternative in effect.alternatives:
            if alternative.token in picks:
                key = f"{picks.index(alternative.token) + 1}"
            elif alternative.written:
                key = " "
            else:
                continue
            mark = "◀ written" if alternative.written else ""
            cut = {"": "", "greedy": "(greedy: the likeliest only)"}.get(
                alternative.cut, f"(cut by {alternative.cut})"
            )
            lines.append(
                f" {key}  {alternative.token!r:<16} {percent(alternative.before):>4} → "
                f"{percent(alternative.after):>4} {cut} {mark}".rstrip()
            )
        lines.extend(f"    {note}" for note in effect.notes)
        lines.append("1-5 branch from here with that token · Ctrl+←/→ the next token under 10%")
        return terminal_safe("\n".join(lines))
