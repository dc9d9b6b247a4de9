"""Every TUI action with its default key; ``[keys]`` in config.toml overrides them.

Kept free of Textual so the config module can validate key overrides cheaply.  The
defaults avoid the input box's own editing keys (Ctrl+A/E/D/K/U/W/X/C/V/Z); the two
that take one over (Ctrl+Y redo, F6 select-line) are marked ``priority``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyAction:
    action: str
    key: str
    description: str
    short: str = ""  # the footer's label, when it differs from the description
    show: bool = True
    priority: bool = False
    binding: bool = True  # False: handled by a widget (the input) or built in


ACTIONS: tuple[KeyAction, ...] = (
    KeyAction("send", "enter", "Send", binding=False),
    KeyAction("newline", "ctrl+j", "Newline in the input", binding=False),
    KeyAction("cancel", "escape", "Stop the reply (keeps it)", "Stop"),
    KeyAction("regenerate", "ctrl+r", "Regenerate the last reply", "Regenerate"),
    KeyAction("edit_last", "ctrl+g", "Edit and resend the last message", "Edit last"),
    KeyAction(
        "edit_message", "f7", "Edit and resend the focused message (a new branch)", show=False
    ),
    KeyAction("branch_previous", "alt+left", "Previous branch of a message", show=False),
    KeyAction("branch_next", "alt+right", "Next branch of a message", show=False),
    KeyAction(
        "delete_turn", "f8", "Delete the focused turn, else the last (and its branches)", show=False
    ),
    KeyAction("new_chat", "ctrl+n", "New chat"),
    KeyAction("rename_chat", "f2", "Rename the chat", show=False),
    KeyAction("delete_chat", "ctrl+delete,f12", "Delete the chat", show=False),
    KeyAction("search", "ctrl+f", "Search chats", show=False, priority=True),
    KeyAction("toggle_settings", "f3", "Settings"),
    KeyAction("toggle_sidebar", "ctrl+b", "Sidebar", show=False),
    KeyAction("show_prompt", "f4", "Prompt view", show=False),
    KeyAction("replay_chat", "f5", "Replay the chat", show=False),
    KeyAction(
        "token_view",
        "f9",
        "Token view: replies as tokens by probability, alternatives, branch from a token",
        "Tokens",
        show=False,
    ),
    KeyAction("copy_last", "ctrl+y", "Copy the last reply", show=False, priority=True),
    KeyAction("copy_message", "f6", "Copy a message", show=False, priority=True),
    KeyAction("copy_code", "ctrl+o", "Copy a code block", show=False),
    KeyAction("export_chat", "ctrl+s", "Export the chat to Markdown", show=False),
    KeyAction(
        "focus_next", "tab", "Move focus on: the input, the messages, the panes", binding=False
    ),
    KeyAction(
        "focus_previous",
        "shift+tab",
        "Move focus back (from the input: the last message)",
        binding=False,
    ),
    KeyAction("help", "f1,question_mark", "Help"),
    KeyAction(
        "quit",
        "ctrl+q",
        "Quit (keeps a reply in progress; asks first over an unsent message)",
        "Quit",
    ),
)

DEFAULT_KEYS: dict[str, str] = {a.action: a.key for a in ACTIONS}


_KEY_NAMES = {
    "question_mark": "?",
    "escape": "Esc",
    "delete": "Del",
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "pageup": "PgUp",
    "pagedown": "PgDn",
}


def human_key(keys: str) -> str:
    """A binding as a person writes it: ``f1,question_mark`` -> ``F1 or ?``,
    ``ctrl+delete,f12`` -> ``Ctrl+Del or F12``."""

    def one(key: str) -> str:
        parts = []
        for part in key.split("+"):
            name = _KEY_NAMES.get(part)
            if name is None:
                name = part.upper() if len(part) == 1 or part[0] == "f" else part.capitalize()
            parts.append(name)
        return "+".join(parts)

    return " or ".join(one(k.strip()) for k in keys.split(",") if k.strip())
