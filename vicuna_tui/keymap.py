"""Every TUI action with its default key; ``[keys]`` in config.toml overrides them.

Kept free of Textual so the config module can validate key overrides cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyAction:
    action: str
    key: str
    description: str
    show: bool = True


ACTIONS: tuple[KeyAction, ...] = (
    KeyAction("send", "enter", "Send"),
    KeyAction("newline", "ctrl+j", "Newline", show=False),
    KeyAction("cancel", "escape", "Stop reply"),
    KeyAction("regenerate", "ctrl+r", "Regenerate"),
    KeyAction("edit_last", "ctrl+e", "Edit last"),
    KeyAction("delete_turn", "ctrl+d", "Delete turn", show=False),
    KeyAction("new_chat", "ctrl+n", "New chat"),
    KeyAction("rename_chat", "f2", "Rename", show=False),
    KeyAction("delete_chat", "ctrl+delete", "Delete chat", show=False),
    KeyAction("search", "ctrl+f", "Search", show=False),
    KeyAction("toggle_settings", "f3", "Settings"),
    KeyAction("toggle_sidebar", "ctrl+b", "Sidebar", show=False),
    KeyAction("show_prompt", "f4", "Prompt", show=False),
    KeyAction("copy_last", "ctrl+y", "Copy reply", show=False),
    KeyAction("copy_message", "ctrl+k", "Copy message", show=False),
    KeyAction("copy_code", "ctrl+o", "Copy code", show=False),
    KeyAction("focus_next", "tab", "Next pane", show=False),
    KeyAction("focus_previous", "shift+tab", "Previous pane", show=False),
    KeyAction("export_chat", "ctrl+s", "Export", show=False),
    KeyAction("replay_chat", "f5", "Replay", show=False),
    KeyAction("help", "f1", "Help"),
    KeyAction("quit", "ctrl+q", "Quit"),
)

DEFAULT_KEYS: dict[str, str] = {a.action: a.key for a in ACTIONS}
