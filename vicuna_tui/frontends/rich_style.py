"""--style rich: Markdown streamed in the normal terminal.

Finished blocks (paragraphs, lists, whole code fences) are printed once, for good;
only the block being written is live.  The live part shows the tail of that block
that fits the screen, so nothing is cropped to "…" and the screen is not redrawn
from the top on every token.  It is re-rendered at most 12 times a second.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

from vicuna_tui.engine.events import FINISH_CANCELLED, ReplyDone
from vicuna_tui.textsafe import terminal_safe


def split_finished_blocks(text: str) -> tuple[str, str]:
    """(finished blocks, the block still being written) of a Markdown text.

    A block ends at a blank line outside a code fence.
    """
    cut = 0
    fence: str | None = None
    offset = 0
    lines = text.split("\n")
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
            if index < len(lines) - 1:
                cut = offset + len(line) + 1  # a closed fence is a finished block
        elif fence is None and stripped == "" and index < len(lines) - 1 and index > 0:
            cut = offset + len(line) + 1
        offset += len(line) + 1
    return text[:cut], text[cut:]


class _Tail:
    """Renders Markdown but yields only the last lines that fit the screen."""

    def __init__(self, text: str, code_theme: str) -> None:
        self.text = text
        self.code_theme = code_theme

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        room = max(3, (options.height or console.height) - 2)
        lines = console.render_lines(
            Markdown(self.text, code_theme=self.code_theme), options.update(height=None), pad=False
        )
        for line in lines[-room:]:
            yield from line
            yield Segment.line()


class RichRenderer:
    def __init__(
        self,
        console: Console,
        stdin: TextIO,
        *,
        multiline: bool = False,
        code_theme: str = "monokai",
    ) -> None:
        self.console = console
        self.stdin = stdin
        self.multiline = multiline
        self.code_theme = code_theme
        self._live: Live | None = None
        self._pending = ""

    def read(self) -> str:
        prompt = Text("USER: ", style="bold green")
        if not self.multiline:
            return self.console.input(prompt)
        lines = [
            self.console.input(Text("USER [Ctrl-D on an empty line to send]: ", style="bold green"))
        ]
        while True:
            try:
                lines.append(input())
            except EOFError:
                break
        return "\n".join(lines)

    def reply_start(self) -> None:
        self.console.print(Text("ASSISTANT:", style="bold blue"))
        self._pending = ""
        self._live = Live(
            console=self.console,
            auto_refresh=True,
            refresh_per_second=12,
            transient=True,
            vertical_overflow="visible",
        )
        self._live.start()

    def reply_delta(self, text: str) -> None:
        self._pending += terminal_safe(text)
        done, self._pending = split_finished_blocks(self._pending)
        if done and self._live is not None:
            self._live.console.print(Markdown(done, code_theme=self.code_theme))
        if self._live is not None:
            self._live.update(_Tail(self._pending, self.code_theme))

    def reply_end(self, done: ReplyDone) -> None:
        if self._live is not None:
            self._live.update(Text(""))
            self._live.stop()
            self._live = None
        if self._pending.strip():
            self.console.print(Markdown(self._pending, code_theme=self.code_theme))
        self._pending = ""
        if done.finish_reason == FINISH_CANCELLED:
            self.console.print(Text("[cancelled]", style="dim"))

    def info(self, text: str) -> None:
        self.console.print(Text(terminal_safe(text), style="dim"))

    def show_message(self, role: str, text: str) -> None:
        label = "USER:" if role == "user" else "ASSISTANT:"
        self.console.print(Text(label, style="bold green" if role == "user" else "bold blue"))
        if role == "user":
            self.console.print(Text(terminal_safe(text)))
        else:
            self.console.print(Markdown(terminal_safe(text), code_theme=self.code_theme))
