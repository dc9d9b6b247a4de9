"""Toasts as literal text, for every app: messages quote model names, file names and
errors, which must never become markup or reach the terminal as controls."""

from __future__ import annotations

from textual.notifications import SeverityLevel

from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.terminal import TerminalApp


class LiteralNotifications(TerminalApp):
    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        del markup  # widgets pass Textual's default (True): never honoured here
        super().notify(
            terminal_safe(message),
            title=terminal_safe(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )
