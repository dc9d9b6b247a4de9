"""The token view (F9, or the palette): replies shown as their tokens, marked by how
sure the model was, with each token's alternatives and a branch from any of them.

``TokenView`` owns whether the view is on.  While it is, every reply asks for its
tokens' probabilities (the session's ``logprobs``, saved with the reply: they cost
some 4% of decode speed on llama.cpp, BENCHMARKS.md, so they are asked for only then),
and the transcript draws replies as tokens.
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
    on: bool = False

    async def toggle(self) -> None:
        self.on = not self.on
        self.view.session.logprobs = ALTERNATIVES if self.on else 0
        await self.view.transcript.set_token_mode(self.on)
        if self.on:
            self.view.ui.notify(
                "Token view on: replies are shown as tokens, marked by how sure the model "
                "was (under 10% underlined). Focus a reply (Shift+Tab), move with ←/→, "
                "press 1-5 to branch from a token. F9 turns it off."
            )
        else:
            self.view.ui.notify("Token view off.")
        self.view.status.set_token_view(self.on)

    async def branch(self, message: MessageView.BranchFromToken) -> None:
        views = self.view.transcript.views
        if message.view not in views:
            return
        await self._replies.branch_from_token(views.index(message.view), message.at, message.token)
