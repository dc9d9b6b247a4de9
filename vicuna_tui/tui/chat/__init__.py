"""The chat screen and the parts it is composed of (see ``screen``)."""

from vicuna_tui.tui.chat.screen import ChatScreen

__all__ = ["ChatScreen"]
