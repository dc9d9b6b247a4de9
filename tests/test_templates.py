"""The named templates render exactly as FastChat's conversation.py (fschat 0.2.36)."""

from __future__ import annotations

import pytest

from vicuna_tui.engine.templates import (
    ASSISTANT,
    TEMPLATES,
    USER,
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
