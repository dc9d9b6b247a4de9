"""Fast start: the TUI draws its first frame without importing torch or transformers."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO

SCRIPT = r"""
import asyncio, sys, threading

from vicuna_tui import config, runtime
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.tui.app import VicunaApp

hold = threading.Event()

class NotYet:
    kind = "local"
    def check(self): pass
    def load(self, progress=None):
        hold.wait(60)  # the model "loads" until the frame has been checked
        raise RuntimeError("stop")
    def cancel(self): pass
    def unload(self): pass

resolved = runtime.Resolved(load=LoadSettings(), generation=GenerationSettings(),
                            template="auto", system_message=None, remote=None,
                            config=config.load())
app = VicunaApp(resolved, None, backend_factory=lambda load: NotYet())

async def main():
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.export_screenshot().replace("&#160;", " ")
        heavy = [m for m in ("torch", "transformers") if m in sys.modules]
        drawn = "essage the model (Enter sends" in screen and "loading the model" in screen
        print("FRAME", drawn, "HEAVY", heavy)
        hold.set()

asyncio.run(main())
"""


def test_first_frame_without_torch_or_transformers(home: object) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert "FRAME True HEAVY []" in result.stdout, result.stdout + result.stderr
