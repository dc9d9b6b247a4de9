"""Incremental detokenizing and stop strings, on exact scripted token sequences."""

from __future__ import annotations

from helpers import ByteTokenizer, script_text

from vicuna_tui.engine.textstream import IncrementalDecoder, StopMatcher


def stream(text: str) -> tuple[list[str], ByteTokenizer]:
    tokenizer = ByteTokenizer()
    decoder = IncrementalDecoder(tokenizer.decode)
    deltas = [decoder.push(token) for token in script_text(text)]
    deltas.append(decoder.flush())
    return deltas, tokenizer


def test_multibyte_characters_appear_whole_and_at_once() -> None:
    deltas, _ = stream("a😀b中")
    # 😀 is four byte-tokens and 中 three: nothing shows until the last byte arrives.
    assert deltas == ["a", "", "", "", "😀", "b", "", "", "中", ""]
    assert "".join(deltas) == "a😀b中"
    assert all("\ufffd" not in d for d in deltas)


def test_never_decodes_the_whole_reply_again() -> None:
    _, tokenizer = stream("word " * 400)
    # Each step decodes a window from the previous delta, never the 2000-token reply.
    assert max(tokenizer.decode_lengths) <= 8


def test_incomplete_character_at_the_end_is_flushed() -> None:
    tokenizer = ByteTokenizer()
    decoder = IncrementalDecoder(tokenizer.decode)
    out = [decoder.push(t) for t in script_text("ok")]
    out.append(decoder.push(script_text("😀")[0]))
    assert "".join(out) == "ok"
    assert decoder.flush() == "\ufffd"


def feed(stops: list[str], pieces: list[str]) -> tuple[list[str], StopMatcher]:
    matcher = StopMatcher(stops)
    shown = [matcher.push(piece) for piece in pieces]
    shown.append(matcher.flush())
    return shown, matcher


def test_stop_string_split_across_tokens_is_never_shown() -> None:
    shown, matcher = feed(["###"], ["Paris", " is", " #", "#", "# Human"])
    assert "".join(shown) == "Paris is "
    assert matcher.stopped
    assert not any("#" in piece for piece in shown)


def test_false_start_is_released_as_soon_as_it_is_not_a_stop() -> None:
    shown, matcher = feed(["###"], ["C", "#", "#", " is a language"])
    assert shown[:3] == ["C", "", ""]  # "##" might still become "###"
    assert shown[3] == "## is a language"
    assert not matcher.stopped


def test_earliest_of_several_stops_wins() -> None:
    shown, matcher = feed(["</s>", "USER:"], ["Hi. USER: x </s>"])
    assert "".join(shown) == "Hi. "
    assert matcher.stopped


def test_held_text_is_released_at_the_end() -> None:
    shown, matcher = feed(["<|im_end|>"], ["Done <|im"])
    assert shown == ["Done ", "<|im"]
    assert not matcher.stopped


def test_nothing_after_a_stop() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.push("aSTOPb") == "a"
    assert matcher.push("more") == ""
    assert matcher.flush() == ""
