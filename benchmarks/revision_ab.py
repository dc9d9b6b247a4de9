"""Decode speed through the TUI, this tree against an earlier revision, side by side.

    python benchmarks/revision_ab.py [--base aa0f85c] [--rounds 2] [--tokens 200]

For a change that must not cost speed (a refactor): the earlier revision is checked
out in a temporary git worktree, and this tree's ``benchmarks/stream.py`` runs in
each tree in turn, base then this one, ``--rounds`` times, on both local engines.
Each run loads the demo model itself and reports, among its paths, the TUI with the model in its own
process (the default) and the raw engine in the same process; the figure compared is
each run's TUI rate over its own raw engine's (which cancels the machine's spells),
and the TUI's rate itself.  The base tree's own BENCHMARKS.md takes its writes.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, table, write_section

TUI = "TUI, model in its own process (default)"
RAW = "raw engine (backend.generate)"


def run_stream(tree: Path, backend: str, tokens: int) -> tuple[float, float]:
    """(the TUI's tokens/s, TUI ÷ raw engine) from one run of stream.py in ``tree``."""
    out = subprocess.run(
        [
            sys.executable,
            str(tree / "benchmarks" / "stream.py"),
            "--runs",
            "2",
            "--lengths",
            str(tokens),
            "--backend",
            backend,
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    ).stdout
    rows = {}
    for line in out.splitlines():
        if line.startswith("['"):
            row = ast.literal_eval(line)
            rows[row[1]] = row
    tui = float(rows[TUI][2].split()[0])
    ratio = float(rows[TUI][3])
    return tui, ratio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="aa0f85c")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=200)
    opts = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="revision-ab-")) / "base"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(base), opts.base], cwd=ROOT, check=True
    )
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    # This tree's stream.py runs in both (an earlier one's may not run any more).
    script = (ROOT / "benchmarks" / "stream.py").read_text()
    (base / "benchmarks" / "stream.py").write_text(script)
    rows = []
    try:
        for backend in ("llamacpp", "transformers"):
            got: dict[str, list[tuple[float, float]]] = {"base": [], "head": []}
            for _ in range(opts.rounds):
                for name, tree in (("base", base), ("head", ROOT)):
                    got[name].append(run_stream(tree, backend, opts.tokens))
                    print(backend, name, got[name][-1], flush=True)
            tui = {k: statistics.median(t for t, _ in v) for k, v in got.items()}
            ratio = {k: statistics.median(r for _, r in v) for k, v in got.items()}
            rows.append(
                [
                    backend,
                    f"{tui['base']:.1f}",
                    f"{tui['head']:.1f}",
                    f"{tui['head'] / tui['base']:.3f}",
                    f"{ratio['base']:.3f}",
                    f"{ratio['head']:.3f}",
                ]
            )
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    body = (
        f"The demo model (SmolLM2-135M-Instruct; its Q4_1 GGUF on llama.cpp), greedy, "
        f"{opts.tokens} new tokens, the TUI with the model in its own process. Base "
        f"{opts.base}, this tree {head}; {opts.rounds} runs of `benchmarks/stream.py "
        '--runs 2` in each tree, alternating, medians. "÷ raw" is each run\'s TUI rate '
        "over the raw engine's in the same run.\n\n"
        + table(
            [
                "engine",
                "TUI tok/s, base",
                "TUI tok/s, this tree",
                "this ÷ base",
                "TUI ÷ raw, base",
                "TUI ÷ raw, this tree",
            ],
            rows,
        )
    )
    print(body)
    write_section("revision-ab", "Decode through the TUI against an earlier revision", body)


if __name__ == "__main__":
    main()
