"""The named templates render exactly as FastChat's conversation.py (fschat 0.2.36)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli

from vicuna_tui.engine.templates import (
    ASSISTANT,
    TEMPLATES,
    USER,
    ChatTemplate,
    choose_template_name,
    get_template,
)
from vicuna_tui.errors import SettingsError

TWO_TURNS = [(USER, "Hello!"), (ASSISTANT, "Hi!"), (USER, "How are you?"), (ASSISTANT, None)]
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
HUMAN_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


def test_vicuna_v11_matches_fastchat() -> None:
    assert TEMPLATES["vicuna_v1.1"].render(TWO_TURNS) == (
        VICUNA_SYSTEM + " USER: Hello! ASSISTANT: Hi!</s>USER: How are you? ASSISTANT:"
    )


def test_vicuna_system_message_is_replaced() -> None:
    prompt = TEMPLATES["vicuna_v1.1"].render([(USER, "Hi"), (ASSISTANT, None)], "Be brief.")
    assert prompt == "Be brief. USER: Hi ASSISTANT:"


def test_zero_shot_matches_fastchat() -> None:
    assert TEMPLATES["zero_shot"].render([(USER, "Hello!"), (ASSISTANT, None)]) == (
        HUMAN_SYSTEM + "\n### Human: Hello!\n### Assistant:"
    )
    assert TEMPLATES["zero_shot"].stop_strings == ("###",)


def test_one_shot_carries_its_example() -> None:
    prompt = TEMPLATES["one_shot"].render([(USER, "Hello!"), (ASSISTANT, None)])
    assert prompt.startswith(
        HUMAN_SYSTEM + "\n### Human: Got any creative ideas for a 10 year old’s birthday?"
        "\n### Assistant: Of course! Here are some creative ideas for a 10-year-old's "
        "birthday party:\n1. Treasure Hunt:"
    )
    assert prompt.endswith("Have a great celebration!\n### Human: Hello!\n### Assistant:")
    assert len(prompt) == 2266  # measured with fschat 0.2.36


def test_llama2_with_and_without_system() -> None:
    assert TEMPLATES["llama-2"].render(TWO_TURNS, "You are helpful.") == (
        "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello! [/INST] Hi! </s><s>"
        "[INST] How are you? [/INST]"
    )
    assert TEMPLATES["llama-2"].render(TWO_TURNS) == (
        "[INST] Hello! [/INST] Hi! </s><s>[INST] How are you? [/INST]"
    )


def test_chatml() -> None:
    assert TEMPLATES["chatml"].render(TWO_TURNS) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert TEMPLATES["chatml"].stop_strings == ("<|im_end|>",)


def test_alpaca() -> None:
    assert TEMPLATES["alpaca"].render(TWO_TURNS) == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction: Hello!\n\n### Response: Hi!</s>"
        "### Instruction: How are you?\n\n### Response:"
    )


def test_unknown_template_names_the_choices() -> None:
    with pytest.raises(SettingsError, match="unknown template 'vicuna2'") as info:
        get_template("vicuna2")
    assert "vicuna_v1.1" in info.value.hint


@pytest.mark.parametrize(
    ("name", "chat_template", "vocab", "llama", "expected", "notice"),
    [
        ("HuggingFaceTB/SmolLM2-135M-Instruct", True, 49152, True, "tokenizer", False),
        ("lmsys/vicuna-7b-v1.5", False, 32000, True, "vicuna_v1.1", False),
        ("/models/vicuna-7b-v0", False, 32001, True, "one_shot", True),
        ("/models/vicuna-13b", False, 32001, True, "one_shot", True),
        ("/models/my-llama", False, 32001, True, "one_shot", True),
        ("/models/my-llama", False, 32000, True, "vicuna_v1.1", False),
    ],
)
def test_auto_template(
    name: str, chat_template: bool, vocab: int, llama: bool, expected: str, notice: bool
) -> None:
    chosen, text = choose_template_name(name, chat_template, vocab, llama)
    assert chosen == expected
    assert (text is not None) == notice


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("{% for i in range(999999999) %}x{% endfor %}", "loops more than 1,000,000 times"),
        (
            "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}",
            "loops more than",
        ),
        ("{{ 'x' * 2000000000 }}", "multiplies a value past"),
        ("{{ [1] * 2000000000 }}", "multiplies a value past"),
        ("{{ 10 ** 100000000 }}", "power past 64"),
        ("{% for m in messages %}{{ 'x' * 1000000 }}{% endfor %}" * 20, "writes more than"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
    ],
)
def test_a_hostile_chat_template_is_stopped_with_a_way_out(source: str, said: str) -> None:
    """A GGUF's chat template is code from a stranger: each rendering is bounded in loop
    steps, repeated text and output, and every failure names the fix."""
    template = ChatTemplate(source)
    with pytest.raises(SettingsError) as caught:
        template.render([("user", "hi")])
    assert said in caught.value.message
    assert "--conv-template" in caught.value.hint


def test_an_ordinary_chat_template_renders_within_the_budget() -> None:
    source = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
        "{% for i in range(3) %}.{% endfor %}{{ '-' * 3 }}"
    )
    assert ChatTemplate(source).render([("user", "hi")]) == "<|user|>hi...---"


def test_a_gguf_whose_template_would_hang_llamacpp_loads_and_says_so(
    smollm_gguf: Path, tmp_path: Path, home: Path
) -> None:
    """llama.cpp is never given the file's template: the load takes its usual time, our
    sandbox stops the template, and a named template answers."""
    hostile = tmp_path / "hostile.gguf"
    subprocess.run(
        [
            sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(smollm_gguf),
            str(hostile), "--chat-template", "{% for i in range(999999999) %}x{% endfor %}",
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    base = ["--model-path", str(hostile), "-p", "What is 2+2?", "--max-new-tokens", "4"]
    refused = run_cli(*base, timeout=120)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "chat template was stopped: it loops more than" in refused.stderr
    assert "--conv-template chatml" in refused.stderr
    named = run_cli(*base, "--conv-template", "chatml", "--temperature", "0", timeout=120)
    assert named.returncode == 0, named.stderr
    assert named.stdout.strip()
