"""The TUI's cost per streamed token on a long Markdown answer.

    python benchmarks/render.py [--runs 5] [--tokens 2000]

A scripted backend floods the TUI (headless) with a 2,000-token Markdown answer with
headings, lists and code fences, as fast as the UI takes it; the UI's cost per token is
the time it takes to take in the first 10% and the last 10% of the tokens.  Target: the
last 10% at most 5 ms per token (it must not grow with the length of the answer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

from _common import fmt, table, write_section


def answer(tokens: int) -> list[str]:
    words: list[str] = []
    for i in range(tokens):
        if i % 200 == 0:
            words.append(f"\n\n## Part {i // 200}\n\n")
        elif i % 200 == 60:
            words.append("\n\n```python\n")
        elif 60 < i % 200 < 120 and i % 8 == 0:
            words.append(f"\nvalue_{i} = compute({i})")
        elif i % 200 == 120:
            words.append("\n```\n\n")
        elif i % 25 == 0:
            words.append("\n- item ")
        else:
            words.append(f" word{i}")
    return words


def one_run(tokens: int, rate: float) -> tuple[float, float]:
    from helpers import ScriptedBackend
    from tui_helpers import make_app, ready, run_test, send

    from vicuna_tui.tui.widgets.transcript import MessageView

    class Paced(ScriptedBackend):
        def generate(self, request: Any, cancel: Any) -> Any:
            for event in super().generate(request, cancel):
                time.sleep(1 / rate)
                yield event

    marks: list[tuple[float, int]] = []  # (UI thread CPU seconds, tokens drawn so far)
    taken = [0]  # tokens the reply's frames took from the inbox so far
    original = MessageView.write

    async def timed(self: Any, delta: str) -> None:
        await original(self, delta)
        marks.append((time.thread_time(), taken[0]))

    async def run() -> None:
        app = make_app(lambda load: Paced([answer(tokens)]), save=False)
        take = app.replies.take_deltas

        def counting() -> Any:
            deltas = take()
            taken[0] += len(deltas)
            return deltas

        app.replies.take_deltas = counting  # type: ignore[method-assign]
        async with run_test(app, size=(120, 40)) as pilot:
            await ready(pilot)
            await send(pilot, "Write a long document.")
            while app.chat.replies.streaming is not None:
                await asyncio.sleep(0.05)

    MessageView.write = timed  # type: ignore[method-assign]
    try:
        asyncio.run(run())
    finally:
        MessageView.write = original  # type: ignore[method-assign]
    # The UI thread's CPU time per token over the first and the last tenth of the tokens.
    k = max(1, tokens // 10)
    start = marks[0]
    early = next(m for m in marks if m[1] >= start[1] + k)
    late_start = next(m for m in reversed(marks) if m[1] <= marks[-1][1] - k)
    end = marks[-1]
    first = (early[0] - start[0]) / (early[1] - start[1])
    last = (end[0] - late_start[0]) / (end[1] - late_start[1])
    return first * 1000, last * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0, help="tokens per second")
    opts = parser.parse_args()
    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="render-bench-")
    one_run(200, opts.rate)  # warm-up
    results = [one_run(opts.tokens, opts.rate) for _ in range(opts.runs)]
    firsts = [r[0] for r in results]
    lasts = [r[1] for r in results]
    rows = [["first 10%", fmt(firsts, 2, " ms")], ["last 10%", fmt(lasts, 2, " ms")]]
    body = (
        f"A {opts.tokens}-token Markdown answer with headings, lists and code fences, "
        f"streamed into the headless TUI at {opts.rate:g} tokens/s (scripted backend); the "
        "figure is the UI thread's CPU time per token; median (min–max) of "
        f"{opts.runs}. The transcript redraws the reply a few times a second with everything "
        "that arrived since (through MarkdownStream), so the cost per token does not grow "
        "with the token rate. Target: the last 10% at most 5 ms per token; "
        f"last ÷ first = {statistics.median(lasts) / statistics.median(firsts):.2f}.\n\n"
        + table(["tokens", "UI time per token"], rows)
    )
    print(body)
    write_section("render", "TUI cost per token", body)


if __name__ == "__main__":
    main()
