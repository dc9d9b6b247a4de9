"""A separate, git-ignored virtual environment with FastChat's serving stack.

fschat 0.2.36 needs transformers 4.x and pydantic 1, so it never shares the project's
environment.  ``make test`` calls this first so the suite finds it ready; it is kept
between runs and rebuilt only when the pins below change.

    python tests/fastchat_env.py          # create or check; prints the interpreter path
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".fastchat-venv"
PINS = [
    "torch==2.13.0",
    "fschat[model_worker]==0.2.36",
    "transformers==4.46.3",
    "pydantic<2",
    "fastapi<0.100",
    "pandas==3.1.1",  # for llm_judge's show_result.py
]
STAMP = VENV / ".pins"


def python() -> Path:
    return VENV / "bin" / "python"


def ready() -> bool:
    return python().exists() and STAMP.exists() and STAMP.read_text() == "\n".join(PINS)


def ensure(quiet: bool = True) -> Path:
    if ready():
        return python()
    if not python().exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(python()), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, *PINS], check=True)
    STAMP.write_text("\n".join(PINS))
    return python()


if __name__ == "__main__":
    print(ensure(quiet="--verbose" not in sys.argv))
