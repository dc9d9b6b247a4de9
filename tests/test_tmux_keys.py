"""The real TUI in tmux, driven by the bytes a terminal sends (CSI and SS3 for F-keys and
arrows, control bytes for Ctrl, ESC-prefixed letters for Alt), read off the screen with
its colours (``capture-pane -e``).  A Pilot test presses keys by name and never sees a
key that a terminal cannot deliver, nor a focus that cannot be seen."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_tmux import app_env

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

# What a terminal sends (xterm and tmux's own TERM agree on these).
F1, F3, F4 = "1b4f50", "1b4f52", "1b4f53"
F8 = "1b5b31397e"
ESC, ENTER = "1b", "0d"
CTRL = {letter: f"{ord(letter) - 96:02x}" for letter in "bgpqruy"}
ALT_LEFT, ALT_RIGHT = "1b5b313b3344", "1b5b313b3343"  # CSI 1;3 D / C
LEFT, RIGHT, SHIFT_TAB = "1b5b44", "1b5b43", "1b5b5a"
F9, CTRL_RIGHT = "1b5b32307e", "1b5b313b3543"  # CSI 20 ~, CSI 1;5 C
REVERSE = re.compile(r"\x1b\[(?:[0-9;]*;)?7(?:;[0-9;]*)?m")  # SGR 7: the token cursor
WIDTH, HEIGHT = 120, 40


class Terminal:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        return result.stdout

    def send(self, *hex_bytes: str) -> None:
        """Raw bytes, as the terminal would write them to the program."""
        for chunk in hex_bytes:
            pairs = [chunk[i : i + 2] for i in range(0, len(chunk), 2)]
            self.tmux("send-keys", "-t", "chat", "-H", *pairs)
            time.sleep(0.15)  # one key at a time, as typed (an ESC alone waits for more)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "chat", "-l", text)

    def screen(self, colours: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", "chat")

    def until(self, check: str | re.Pattern[str], timeout: float = 120, gone: bool = False) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen()
            found = check.search(shown) if isinstance(check, re.Pattern) else check in shown
            if bool(found) != gone:
                return shown
            time.sleep(0.2)
        state = "never went away" if gone else "never appeared"
        raise AssertionError(f"{check!r} {state} on screen:\n{shown}")


@pytest.fixture
def terminal(smollm_gguf: Path, home: Path) -> Iterator[Terminal]:
    socket = f"vicuna-keys-{uuid.uuid4().hex[:8]}"
    env = app_env(home)
    command = (
        f"env -u COLUMNS -u LINES {env} {sys.executable} -m vicuna_tui --temperature 0 "
        "--max-new-tokens 40; echo VICUNA_EXIT=$?; sleep 30"
    )
    term = Terminal(socket)
    term.tmux("new-session", "-d", "-s", "chat", "-x", str(WIDTH), "-y", str(HEIGHT), command)
    try:
        yield term
    finally:
        term.tmux("kill-server")


def _row(screen: str, text: str) -> int:
    return next(i for i, line in enumerate(screen.splitlines()) if text in line)


def _foreground(coloured: str, marker: str) -> str:
    """The last foreground colour set before ``marker`` on its line of a ``-e`` capture."""
    line = next(ln for ln in coloured.splitlines() if marker in ln)
    before = line[: line.index(marker)]
    colours = re.findall(r"\x1b\[([0-9;]*)m", before)
    for sgr in reversed(colours):
        fg = re.search(r"(?:^|;)(38;(?:5;\d+|2;\d+;\d+;\d+)|3[0-7])(?:;|$)", sgr)
        if fg:
            return fg.group(1)
    return ""


def test_every_key_works_as_terminal_bytes(terminal: Terminal, home: Path) -> None:
    t = terminal
    t.until("Message the model")
    shown = t.until("RAM ")  # loaded
    # The "Model loaded" notice sits at the top, clear of the input and the status bar.
    if "Model loaded" in shown:
        assert _row(shown, "Model loaded") < _row(shown, "Message the model") - 5
    status = shown.splitlines()[_row(shown, "RAM ")]
    assert "▌" not in status

    t.type("Which city is the capital of France?")
    t.send(ENTER)
    t.until("Paris")
    t.until("tok/s")

    t.send(F1)  # SS3 P
    t.until("Regenerate the last reply")
    t.send(ESC)
    t.until("Regenerate the last reply", gone=True)

    t.send(F3)  # the settings pane: this run's flags are marked, not saved
    shown = t.until("Keep these flags")
    assert "From this run" in shown and "flags (not saved)" in shown
    t.send(F3)
    t.until("Keep these flags", gone=True)

    t.send(CTRL["b"])  # the sidebar goes, and comes back
    t.until("Filter or search", gone=True)
    t.send(CTRL["b"])
    t.until("Filter or search")

    t.send(CTRL["r"])  # regenerate: a second branch
    t.until("‹ 2/2 ›")
    t.until(re.compile(r"tok/s(?s:.*)tok/s"))  # both replies' stats (the old one stays)
    t.send(ALT_LEFT)  # CSI 1;3 D
    t.until("‹ 1/2 ›")
    t.send(ALT_RIGHT)
    t.until("‹ 2/2 ›")

    # Focus you can see: Esc back to the input, then Shift+Tab boxes the last message,
    # in a colour that is not a user message's.
    t.send(ESC)
    t.until("focused · ←/→ branch", gone=True)
    t.send(SHIFT_TAB)
    t.until("focused · ←/→ branch")
    coloured = t.screen(colours=True)
    focus_colour = _foreground(coloured, "╭─ focused")
    user_colour = _foreground(coloured, "█ You") if "█ You" in coloured else ""
    assert focus_colour and focus_colour != user_colour, (focus_colour, user_colour)
    t.send(LEFT)  # plain Left on a focused message: its previous branch
    t.until("‹ 1/2 ›")
    t.type("hello")  # typed on a focused message: it goes to the input
    shown = t.until(re.compile(r"▊ hello"))
    t.send(ESC, CTRL["u"])  # back to the input; clear the line

    t.send(CTRL["g"])  # edit mode is marked on the prompt until it ends
    t.until("✎ editing message 1")
    t.send(ESC)
    t.until("✎ editing message", gone=True)

    t.send(F4)  # the next prompt and its token count
    t.until(re.compile(r"Next prompt · template \S+ · \d+ tokens"))
    t.send(ESC)
    t.until("Next prompt ·", gone=True)

    t.send(CTRL["y"])  # copy the last reply (OSC 52)
    t.until("Copied the last reply")

    t.send(F8)  # delete a turn: asks first; Esc keeps it
    t.until("Delete")
    t.send(ESC)
    t.until("message(s)", gone=True)
    assert "Paris" in t.screen()

    t.send(F9)  # the token view: the replies so far were written without it
    shown = t.until("No token probabilities were recorded")
    assert "token view" in shown.splitlines()[_row(shown, "RAM ")]
    t.send(CTRL["r"])  # written again, with its tokens: marked by probability
    t.until("‹ 3/3 ›")
    t.until("No token probabilities were recorded", gone=True)
    t.send(SHIFT_TAB)  # on the reply, drawn as its tokens (→ before that: a branch)
    t.until("←/→ move along them")
    t.send(RIGHT)  # its first token and its alternatives
    shown = t.until("token 1/")
    assert "tokens · ←/→ move" in shown and "◀ written" in shown
    lines = [ln for ln in t.screen(colours=True).splitlines() if "Paris" in ln]
    assert any(REVERSE.search(ln) for ln in lines), "the focused token is not shown"
    t.send(RIGHT)
    t.until("token 2/")
    t.type("2")  # branch from it with the second alternative
    t.until("‹ 4/4 ›")
    t.until("branched at token 2")
    t.send(F9)
    t.until("token view", gone=True)
    t.send(ESC)

    t.send(CTRL["p"])  # the palette speaks words
    t.type("Delete the focused")
    shown = t.until("Key: F8")
    assert "delete_turn" not in shown
    t.send(ESC)
    t.until("Key: F8", gone=True)

    t.type("an unsent draft")  # Ctrl+Q over a draft asks first; Esc keeps it
    t.until(re.compile(r"▊ an unsent draft"))
    t.send(CTRL["q"])
    t.until("unsent message in the input")
    t.send(ESC)
    t.until("unsent message in the input", gone=True)
    assert "an unsent draft" in t.screen()
    t.send(CTRL["u"])

    t.send(CTRL["q"])
    t.until("VICUNA_EXIT=0")
    assert not (home / "config" / "config.toml").exists()
    assert not list(home.rglob("config.toml"))  # the flags were not kept
