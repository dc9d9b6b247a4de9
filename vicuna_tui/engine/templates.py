"""Prompt templates.

The named templates render byte for byte as FastChat's ``conversation.py`` does
(fschat 0.2.36), so Vicuna checkpoints see exactly the prompts they were trained on.
``tokenizer`` uses the tokenizer's own chat template instead.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vicuna_tui.errors import SettingsError

USER = "user"
ASSISTANT = "assistant"

Turn = tuple[str, str | None]
"""(role, text): role is "user" or "assistant"; text None is the slot for the reply."""


class SepStyle(enum.Enum):
    ADD_COLON_SINGLE = "add_colon_single"
    ADD_COLON_TWO = "add_colon_two"
    LLAMA2 = "llama2"
    CHATML = "chatml"


class PromptRenderer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def stop_strings(self) -> tuple[str, ...]: ...

    @property
    def stop_token_ids(self) -> tuple[int, ...]: ...

    def render(self, turns: Sequence[Turn], system_message: str | None = None) -> str: ...

    def default_system_message(self) -> str: ...


@dataclass(frozen=True)
class Template:
    """A FastChat-style template."""

    name: str
    style: SepStyle
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    system_template: str = "{system_message}"
    system_message: str = ""
    few_shot: tuple[tuple[str, str], ...] = ()
    sep: str = "\n"
    sep2: str = ""
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()

    def default_system_message(self) -> str:
        return self.system_message

    def render(self, turns: Sequence[Turn], system_message: str | None = None) -> str:
        """The prompt for ``turns``; end with (assistant, None) to ask for a reply."""
        system = self.system_message if system_message is None else system_message
        system_prompt = self.system_template.format(system_message=system)
        messages: list[tuple[str, str | None]] = list(self.few_shot)
        messages += [
            (self.roles[0] if role == USER else self.roles[1], text) for role, text in turns
        ]
        style = self.style
        if style is SepStyle.ADD_COLON_SINGLE:
            out = system_prompt + self.sep
            for role, text in messages:
                out += f"{role}: {text}{self.sep}" if text else f"{role}:"
            return out
        if style is SepStyle.ADD_COLON_TWO:
            seps = (self.sep, self.sep2)
            out = system_prompt + seps[0]
            for i, (role, text) in enumerate(messages):
                out += f"{role}: {text}{seps[i % 2]}" if text else f"{role}:"
            return out
        if style is SepStyle.LLAMA2:
            seps = (self.sep, self.sep2)
            out = system_prompt if system else "[INST] "
            for i, (_, text) in enumerate(messages):
                tag = self.roles[i % 2]
                if text:
                    out += text + " " if i == 0 else f"{tag} {text}{seps[i % 2]}"
                else:
                    out += tag
            return out
        if style is SepStyle.CHATML:
            out = "" if system_prompt == "" else system_prompt + self.sep + "\n"
            for role, text in messages:
                out += f"{role}\n{text}{self.sep}\n" if text else f"{role}\n"
            return out
        raise AssertionError(style)  # pragma: no cover


_VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
_HUMAN_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
_ONE_SHOT_ANSWER = """Of course! Here are some creative ideas for a 10-year-old's birthday party:
1. Treasure Hunt: Organize a treasure hunt in your backyard or nearby park. Create clues and riddles for the kids to solve, leading them to hidden treasures and surprises.
2. Science Party: Plan a science-themed party where kids can engage in fun and interactive experiments. You can set up different stations with activities like making slime, erupting volcanoes, or creating simple chemical reactions.
3. Outdoor Movie Night: Set up a backyard movie night with a projector and a large screen or white sheet. Create a cozy seating area with blankets and pillows, and serve popcorn and snacks while the kids enjoy a favorite movie under the stars.
4. DIY Crafts Party: Arrange a craft party where kids can unleash their creativity. Provide a variety of craft supplies like beads, paints, and fabrics, and let them create their own unique masterpieces to take home as party favors.
5. Sports Olympics: Host a mini Olympics event with various sports and games. Set up different stations for activities like sack races, relay races, basketball shooting, and obstacle courses. Give out medals or certificates to the participants.
6. Cooking Party: Have a cooking-themed party where the kids can prepare their own mini pizzas, cupcakes, or cookies. Provide toppings, frosting, and decorating supplies, and let them get hands-on in the kitchen.
7. Superhero Training Camp: Create a superhero-themed party where the kids can engage in fun training activities. Set up an obstacle course, have them design their own superhero capes or masks, and organize superhero-themed games and challenges.
8. Outdoor Adventure: Plan an outdoor adventure party at a local park or nature reserve. Arrange activities like hiking, nature scavenger hunts, or a picnic with games. Encourage exploration and appreciation for the outdoors.
Remember to tailor the activities to the birthday child's interests and preferences. Have a great celebration!"""  # noqa: E501

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="vicuna_v1.1",
            style=SepStyle.ADD_COLON_TWO,
            system_message=_VICUNA_SYSTEM,
            roles=("USER", "ASSISTANT"),
            sep=" ",
            sep2="</s>",
        ),
        Template(
            name="one_shot",
            style=SepStyle.ADD_COLON_SINGLE,
            system_message=_HUMAN_SYSTEM,
            roles=("Human", "Assistant"),
            few_shot=(
                ("Human", "Got any creative ideas for a 10 year old’s birthday?"),
                ("Assistant", _ONE_SHOT_ANSWER),
            ),
            sep="\n### ",
            stop_strings=("###",),
        ),
        Template(
            name="zero_shot",
            style=SepStyle.ADD_COLON_SINGLE,
            system_message=_HUMAN_SYSTEM,
            roles=("Human", "Assistant"),
            sep="\n### ",
            stop_strings=("###",),
        ),
        Template(
            name="llama-2",
            style=SepStyle.LLAMA2,
            system_template="[INST] <<SYS>>\n{system_message}\n<</SYS>>\n\n",
            roles=("[INST]", "[/INST]"),
            sep=" ",
            sep2=" </s><s>",
        ),
        Template(
            # FastChat has no template of this name; this is its CHATML style as its
            # Qwen/Orca templates use it, with the <|im_end|> stop string.
            name="chatml",
            style=SepStyle.CHATML,
            system_template="<|im_start|>system\n{system_message}",
            system_message="You are a helpful assistant.",
            roles=("<|im_start|>user", "<|im_start|>assistant"),
            sep="<|im_end|>",
            stop_strings=("<|im_end|>",),
        ),
        Template(
            name="alpaca",
            style=SepStyle.ADD_COLON_TWO,
            system_message=(
                "Below is an instruction that describes a task. "
                "Write a response that appropriately completes the request."
            ),
            roles=("### Instruction", "### Response"),
            sep="\n\n",
            sep2="</s>",
        ),
    )
}

TOKENIZER_TEMPLATE = "tokenizer"
AUTO = "auto"
TEMPLATE_CHOICES = (AUTO, TOKENIZER_TEMPLATE, *TEMPLATES)


def chat_messages(
    turns: Sequence[Turn], system_message: str | None
) -> tuple[list[dict[str, str]], bool]:
    """Turns as a chat template's ``messages``, and whether a reply slot ends them
    (``add_generation_prompt``)."""
    messages: list[dict[str, str]] = []
    if system_message:
        messages.append({"role": "system", "content": system_message})
    add_generation_prompt = False
    for role, text in turns:
        if text is None:
            add_generation_prompt = True
            continue
        messages.append({"role": role, "content": text})
    return messages, add_generation_prompt


class TokenizerTemplate:
    """The tokenizer's own chat template (``tokenizer.apply_chat_template``)."""

    name = TOKENIZER_TEMPLATE
    stop_strings: tuple[str, ...] = ()

    def __init__(self, tokenizer: Any, stop_token_ids: Sequence[int] = ()) -> None:
        self._tokenizer = tokenizer
        self.stop_token_ids = tuple(stop_token_ids)

    def default_system_message(self) -> str:
        return ""

    def render(self, turns: Sequence[Turn], system_message: str | None = None) -> str:
        messages, add_generation_prompt = chat_messages(turns, system_message)
        result = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return str(result)


# A chat template is code from a stranger's file: what one rendering may cost.
TEMPLATE_STEPS = 1_000_000  # loop steps over range() in one rendering, all loops together
TEMPLATE_TEXT = 16 * 2**20  # characters one * or ** may make, and a prompt may hold


class TemplateBudget(Exception):
    """A chat template went past what one rendering may cost."""


class ChatTemplate:
    """A Jinja chat template read from a model file (a GGUF's ``tokenizer.chat_template``),
    rendered as transformers' ``apply_chat_template`` renders it, without transformers:
    a sandboxed Jinja environment, blocks trimmed, ``bos_token`` and ``eos_token`` set."""

    name = TOKENIZER_TEMPLATE
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self.bos_token, self.eos_token = bos_token, eos_token
        self._compiled: Any = None
        self._steps = 0  # loop steps taken by the rendering under way

    def default_system_message(self) -> str:
        return ""

    def _template(self) -> Any:
        if self._compiled is None:
            import json
            from datetime import datetime

            import jinja2
            from jinja2.ext import loopcontrols

            def raise_exception(message: str) -> None:
                raise jinja2.exceptions.TemplateError(message)

            def tojson(
                value: Any,
                ensure_ascii: bool = False,
                indent: int | None = None,
                separators: Any = None,
                sort_keys: bool = False,
            ) -> str:
                return json.dumps(
                    value,
                    ensure_ascii=ensure_ascii,
                    indent=indent,
                    separators=separators,
                    sort_keys=sort_keys,
                )

            sandbox = _bounded_sandbox()
            env = sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
            env.globals["range"] = self._range
            env.filters["tojson"] = tojson
            env.globals["raise_exception"] = raise_exception
            env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
            try:
                self._compiled = env.from_string(self.source)
            except jinja2.TemplateError as exc:
                raise SettingsError(
                    f"the model's chat template does not parse: {exc}",
                    "choose a named template, e.g. --conv-template chatml",
                ) from None
        return self._compiled

    def _range(self, *args: int) -> range:
        """range(), counted against the rendering's budget of loop steps."""
        steps = range(*args)
        self._steps += len(steps)
        if self._steps > TEMPLATE_STEPS:
            raise TemplateBudget(f"it loops more than {TEMPLATE_STEPS:,} times")
        return steps

    def render(self, turns: Sequence[Turn], system_message: str | None = None) -> str:
        messages, add_generation_prompt = chat_messages(turns, system_message)
        import jinja2

        self._steps = 0
        fix = "choose a named template, e.g. --conv-template chatml"
        try:
            pieces: list[str] = []
            size = 0
            for piece in self._template().generate(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            ):
                size += len(piece)
                if size > TEMPLATE_TEXT:
                    raise TemplateBudget(f"it writes more than {TEMPLATE_TEXT:,} characters")
                pieces.append(piece)
            return "".join(pieces)
        except TemplateBudget as exc:
            raise SettingsError(f"the model's chat template was stopped: {exc}", fix) from None
        except jinja2.TemplateError as exc:
            raise SettingsError(f"the model's chat template failed: {exc}", fix) from None
        except (OverflowError, RecursionError, MemoryError, ValueError, TypeError) as exc:
            raise SettingsError(
                f"the model's chat template failed: {type(exc).__name__}: {exc}", fix
            ) from None


def _product(left: Any, right: Any) -> int:
    """How large ``left * right`` would be: repeated text or lists, or a number."""
    sized = (str, bytes, list, tuple)
    if isinstance(left, sized) and isinstance(right, int):
        return len(left) * right
    if isinstance(right, sized) and isinstance(left, int):
        return len(right) * left
    return 0


def _bounded_sandbox() -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        """No * or ** whose result passes TEMPLATE_TEXT ('x' * 2000000000)."""

        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*" and _product(left, right) > TEMPLATE_TEXT:
                raise TemplateBudget(f"it multiplies a value past {TEMPLATE_TEXT:,}")
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
                raise TemplateBudget("it raises a number to a power past 64")
            return super().call_binop(context, operator, left, right)

    return BoundedSandbox


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise SettingsError(
            f"unknown template {name!r}", "choose one of: " + ", ".join(TEMPLATE_CHOICES)
        ) from None


def choose_template_name(
    model_name: str, has_chat_template: bool, vocab_size: int | None, is_llama: bool
) -> tuple[str, str | None]:
    """``--conv-template auto``: the template for a model, and a notice to show, if any."""
    if has_chat_template:
        return TOKENIZER_TEMPLATE, None
    basename = model_name.rstrip("/").rsplit("/", 1)[-1].lower()
    v0_vocab = is_llama and vocab_size == 32001
    if "vicuna" in model_name.lower():
        if "v0" in basename:
            return (
                "one_shot",
                "Vicuna v0 model: using the one_shot (### Human/### Assistant) template",
            )
        if v0_vocab:
            return "one_shot", (
                "this Vicuna has 32001 tokens, as Vicuna v0 did: using the one_shot template "
                "(pass --conv-template vicuna_v1.1 to override)"
            )
        return "vicuna_v1.1", None
    if v0_vocab:
        return "one_shot", (
            "32001-token LLaMA vocabulary, as Vicuna v0 had: using the one_shot template "
            "(pass --conv-template to override)"
        )
    return "vicuna_v1.1", None
