"""Import boundaries: the engine never loads the UI; light commands never load torch."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_engine_never_imports_textual_or_rich() -> None:
    result = run_python(
        "import sys\n"
        "import vicuna_tui.engine, vicuna_tui.engine.local, vicuna_tui.engine.worker\n"
        "import vicuna_tui.engine.loader, vicuna_tui.engine.sources\n"
        "import vicuna_tui.engine.templates, vicuna_tui.engine.textstream\n"
        "bad = [m for m in ('textual', 'rich') if m in sys.modules]\n"
        "print('UI modules:', bad)\n"
        "assert not bad\n"
    )
    assert result.returncode == 0, result.stderr
    assert "UI modules: []" in result.stdout


def test_help_version_sessions_and_config_never_import_torch() -> None:
    result = run_python(
        "import sys, contextlib, io\n"
        "from vicuna_tui.cli import main\n"
        "for args in (['--help'], ['--version'], ['sessions', 'list'], ['config', 'show'],\n"
        "             ['sessions', 'list', '--json'], ['config', 'path']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(args)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'textual') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
        "assert not heavy\n"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "heavy: []" in result.stdout
