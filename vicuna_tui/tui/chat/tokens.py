"""The token view (F9, or the palette): replies shown as their tokens, marked by how
sure the model was, with each token's alternatives and a branch from any of them.

``TokenView`` turns it on and off; it holds no state.  The transcript owns whether
replies are drawn as tokens (``token_mode``); while they are, the session asks for
every reply's token probabilities (its ``logprobs``, saved with the reply: they cost
some 4% of decode speed on llama.cpp, BENCHMARKS.md, so they are asked for only then).
"""

from __future__ import annotations

from dataclasses import dataclass

from vicuna_tui.tui.chat.replies import ChatReplies
from vicuna_tui.tui.chat.view import ChatView
from vicuna_tui.tui.widgets.transcript import MessageView

ALTERNATIVES = 5  # asked with each token: the five the view offers to branch from


@dataclass(eq=False)
class TokenView:
    view: ChatView
    _replies: ChatReplies

    async def toggle(self) -> None:
        on = not self.view.transcript.token_mode
        self.view.session.logprobs = ALTERNATIVES if on else 0
        await self.view.transcript.set_token_mode(on)
        if on:
            self.view.ui.notify(
                "Token view on: replies are shown as tokens, marked by how sure the model "
                "was (under 10% underlined). Focus a reply (Shift+Tab), move with ←/→, "
                "press 1-5 to branch from a token. F9 turns it off."
            )
        else:
            self.view.ui.notify("Token view off.")
        self.view.status.set_token_view(on)

    async def branch(self, message: MessageView.BranchFromToken) -> None:
        views = self.view.transcript.views
        if message.view not in views:
            return
        await self._replies.branch_from_token(views.index(message.view), message.at, message.token)
