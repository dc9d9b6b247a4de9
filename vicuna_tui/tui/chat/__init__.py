"""The chat screen, in parts by responsibility (see ``base``)."""

from vicuna_tui.tui.chat.screen import ChatScreen

__all__ = ["ChatScreen"]
