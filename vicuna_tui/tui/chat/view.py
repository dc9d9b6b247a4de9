"""What every part of the chat screen works on: the conversation, the store's calls
(None: not saving), the screen (to notify and to open dialogs) and its widgets.  The
screen makes one and gives it to each part it is composed of; no part reaches the
screen any other way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.screen import Screen

from vicuna_tui.session import ChatSession
from vicuna_tui.tui.store_calls import StoreCalls
from vicuna_tui.tui.widgets.composer import PromptInput
from vicuna_tui.tui.widgets.settings import SettingsPane
from vicuna_tui.tui.widgets.sidebar import Sidebar
from vicuna_tui.tui.widgets.status import StatusBar
from vicuna_tui.tui.widgets.transcript import Transcript


@dataclass(frozen=True)
class ChatView:
    session: ChatSession
    store: StoreCalls | None
    ui: Screen[Any]
    transcript: Transcript
    prompt: PromptInput
    status: StatusBar
    sidebar: Sidebar
    settings: SettingsPane

    async def redraw(self) -> None:
        """Draw the branch the session shows, from the top."""
        conv = self.session.conversation
        info = self.session.model_info
        name = (info.name if info else None) or (conv.model_name if conv else None)
        await self.transcript.show(
            self.session.messages, model_label=f"Assistant · {name}" if name else "Assistant"
        )
