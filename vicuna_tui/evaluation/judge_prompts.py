"""The judge's prompts: a JSONL file of ``{name, type, system_prompt, prompt_template,
output_format}`` lines, the shape of FastChat's ``judge_prompts.jsonl`` (whose own file
can be passed in).  Ours ship with the package, written by us, under FastChat's names."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from vicuna_tui import bounded
from vicuna_tui.errors import SettingsError

OUTPUT_FORMATS = ("[[rating]]", "[[A]]", "[[rating_a,rating_b]]")
TYPES = ("single", "pairwise")
# The prompt for each kind of match, by FastChat's names: (type, needs a reference,
# judges the second turn).
PROMPT_NAMES: dict[tuple[str, bool, bool], str] = {
    ("single", False, False): "single-v1",
    ("single", True, False): "single-math-v1",
    ("single", False, True): "single-v1-multi-turn",
    ("single", True, True): "single-math-v1-multi-turn",
    ("pairwise", False, False): "pair-v2",
    ("pairwise", True, False): "pair-math-v1",
    ("pairwise", False, True): "pair-v2-multi-turn",
    ("pairwise", True, True): "pair-math-v1-multi-turn",
}
_FIX = (
    'each line is an object with "name", "type", "system_prompt", "prompt_template" '
    'and "output_format"'
)


class JudgePromptError(SettingsError):
    pass


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    type: str  # single | pairwise
    system_prompt: str
    prompt_template: str
    output_format: str  # one of OUTPUT_FORMATS

    def fields(self) -> set[str]:
        """The {placeholders} its template fills in."""
        return {f for _, f, _, _ in string.Formatter().parse(self.prompt_template) if f}

    def render(self, values: dict[str, str]) -> str:
        """The template with ``values`` filled in (the values are never parsed again, so
        braces in an answer stay as they are)."""
        missing = self.fields() - set(values)
        if missing:
            raise JudgePromptError(
                f"the judge prompt {self.name!r} asks for {', '.join(sorted(missing))}, "
                "which this match does not have",
                f"use only {', '.join(sorted(values))} in its template",
            )
        return self.prompt_template.format(**values)


def _prompt(record: Any, where: str) -> JudgePrompt:
    if not isinstance(record, dict):
        raise JudgePromptError(f"{where} is not an object", _FIX)
    for key in ("name", "type", "system_prompt", "prompt_template", "output_format"):
        if not isinstance(record.get(key), str):
            raise JudgePromptError(f"{where} has no {key!r} text", _FIX)
    if record["type"] not in TYPES:
        raise JudgePromptError(f"{where}: type {record['type']!r} is not single or pairwise", _FIX)
    if record["output_format"] not in OUTPUT_FORMATS:
        raise JudgePromptError(
            f"{where}: output_format {record['output_format']!r} is not one we can read",
            f"use one of {', '.join(OUTPUT_FORMATS)}",
        )
    prompt = JudgePrompt(
        record["name"],
        record["type"],
        record["system_prompt"],
        record["prompt_template"],
        record["output_format"],
    )
    try:
        prompt.fields()
    except ValueError as exc:
        raise JudgePromptError(
            f"{where}: the template of {prompt.name!r} is malformed ({exc})",
            "write a literal brace as {{ or }}",
        ) from None
    return prompt


def parse_prompts(text: str, source: str) -> dict[str, JudgePrompt]:
    prompts: dict[str, JudgePrompt] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise JudgePromptError(f"{source}:{number} is not JSON ({exc})", _FIX) from None
        except RecursionError:
            raise JudgePromptError(f"{source}:{number} nests too deeply", _FIX) from None
        prompt = _prompt(record, f"{source}:{number}")
        prompts[prompt.name] = prompt
    return prompts


def read_prompts(path: Path | None) -> dict[str, JudgePrompt]:
    """The prompts in ``path``, or ours when it is None."""
    if path is None:
        text = resources.files("vicuna_tui.evaluation").joinpath("judge_prompts.jsonl")
        return parse_prompts(text.read_text(encoding="utf-8"), "the built-in judge prompts")
    try:
        content = bounded.read_text(path, limit=bounded.LINES_LIMIT, what="judge prompt file")
    except bounded.InputError as exc:
        message = exc.message.replace("no such file:", "no such judge prompt file:")
        raise JudgePromptError(message, exc.hint) from None
    return parse_prompts(content, str(path))


def pick(
    prompts: dict[str, JudgePrompt], kind: str, *, reference: bool, second_turn: bool
) -> JudgePrompt:
    """The prompt for one kind of match, refused clearly when the file lacks it or it
    is of the wrong type."""
    name = PROMPT_NAMES[(kind, reference, second_turn)]
    prompt = prompts.get(name)
    if prompt is None:
        raise JudgePromptError(
            f"the judge prompts have no {name!r}, which {kind} judging needs",
            f"add a line named {name!r} (see FastChat's judge_prompts.jsonl)",
        )
    if prompt.type != kind:
        raise JudgePromptError(
            f"the judge prompt {name!r} is of type {prompt.type!r}, not {kind!r}",
            "fix its type",
        )
    return prompt
