"""Import boundaries: no import loops; light commands never load torch."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def import_cycles() -> list[list[str]]:
    """Groups of package modules that import each other, directly or around a loop."""
    import grimp

    graph = grimp.build_graph("vicuna_tui")
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_no_module_imports_itself_around_a_loop() -> None:
    # The layers themselves (every module, both ways) are import-linter's contracts in
    # pyproject.toml, checked by `make lint`; this catches loops inside one layer.
    assert import_cycles() == []


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
