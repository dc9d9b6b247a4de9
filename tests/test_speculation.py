"""Speculative decoding on llama.cpp: exact under greedy decoding, a draft model of
another vocabulary refused, auto switching off by the counts it records, and the
flags refused where they cannot work."""

from __future__ import annotations

import dataclasses
import io
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli

from vicuna_tui.engine.drafting import MIN_USEFUL, AutoSwitch, Baseline, DraftTally, Pacing
from vicuna_tui.engine.events import (
    ChatRequest,
    Notice,
    ReplyDelta,
    ReplyDone,
    ReplyStats,
    speedup_text,
)
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.errors import ModelNotFoundError, SettingsError
from vicuna_tui.frontends.linechat import reply_record, stats_line
from vicuna_tui.session import ChatSession

ROOT = Path(__file__).resolve().parent.parent
REWRITE = (
    "Repeat this paragraph exactly, but change 'lighthouse' to 'beacon': The old "
    "lighthouse stood at the edge of the cliff, its white paint peeling after decades of "
    "storms. Every evening the keeper climbed the spiral stairs, trimmed the wick, and "
    "watched the beam sweep across the dark water."
)


def _random_llama(folder: Path, renamed: dict[int, str] | None = None) -> Path:
    """A two-layer random-weight Llama with the demo model's vocabulary (a few MB)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import random_gguf
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    path = folder / f"tiny-{'renamed' if renamed else 'random'}.Q4_0.gguf"
    random_gguf.write(random_gguf.SHAPES["tiny"], path, renamed=renamed)
    return path


def _loaded(path: Path, **settings: Any) -> Iterator[Any]:
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend

    backend = LlamaCppBackend(LoadSettings(model_path=str(path), device="cpu", **settings))
    backend.load()
    try:
        yield backend
    finally:
        backend.unload()


def _ask(backend: Any, text: str, tokens: int = 60) -> tuple[ReplyDone, list[Notice]]:
    request = ChatRequest(
        turns=(("user", text),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=tokens),
    )
    events = list(backend.generate(request, threading.Event()))
    done = events[-1]
    assert isinstance(done, ReplyDone)
    # the live counts (the status bar's) only grow, keep no more than they draft, and
    # end no higher than the reply's own
    live = [(e.drafted, e.accepted or 0) for e in events if isinstance(e, ReplyDelta)]
    counted = [pair for pair in live if pair[0] is not None]
    assert counted == sorted(counted) and all(kept <= (made or 0) for made, kept in counted)
    if counted:
        assert (counted[-1][0] or 0) <= (done.stats.drafted or 0)
    return done, [e for e in events if isinstance(e, Notice)]


@pytest.mark.real_model
def test_greedy_replies_are_the_same_with_and_without_speculation(
    llama: Any, smollm_gguf: Path
) -> None:
    """Off, n-gram, and the demo model as its own draft: byte-identical replies, and the
    counts say the speculation happened (kept ≤ drafted)."""
    plain, _ = _ask(llama, REWRITE)
    assert plain.stats.speculation is None and plain.stats.drafted is None
    for settings in (
        {"speculate": "ngram"},
        {"speculate": "draft", "draft_model": str(smollm_gguf)},
    ):
        for backend in _loaded(smollm_gguf, **settings):
            done, _ = _ask(backend, REWRITE)
            assert done.text == plain.text, settings
            stats = done.stats
            assert stats.speculation is not None and stats.drafted and stats.accepted
            assert 0 < stats.accepted <= stats.drafted
            # --json and --stats carry the same counts
            record = reply_record(REWRITE, done, ChatSession(None))["stats"]
            assert record["speculation"] == stats.speculation
            assert (record["drafted"], record["accepted"]) == (stats.drafted, stats.accepted)
            assert f"kept {stats.accepted}/{stats.drafted} drafted" in stats_line(stats, "stop")
            # what the kept drafts wrote (--debug) is the reply's own text
            assert stats.kept_spans and all(span in done.text for span in stats.kept_spans)
            if settings["speculate"] == "ngram":  # seeded: the same reply each time
                seeded = GenerationSettings(temperature=0.8, seed=5, max_new_tokens=40)
                twice = [
                    list(
                        backend.generate(
                            ChatRequest(turns=(("user", REWRITE),), generation=seeded),
                            threading.Event(),
                        )
                    )[-1]
                    for _ in range(2)
                ]
                assert isinstance(twice[0], ReplyDone) and isinstance(twice[1], ReplyDone)
                assert twice[0].text == twice[1].text and twice[0].stats.drafted is not None
            if settings["speculate"] == "ngram":  # no probabilities for drafted tokens:
                asked = ChatRequest(turns=(("user", REWRITE),), logprobs=2)  # none, said
                events = list(backend.generate(asked, threading.Event()))
                assert isinstance(events[-1], ReplyDone) and events[-1].tokens is None
                notes = [e.text for e in events if isinstance(e, Notice)]
                assert any("while speculating" in note for note in notes)
            if settings["speculate"] == "draft":  # its own draft: most kept
                assert stats.speculation == f"draft {smollm_gguf.name}"
                assert stats.accepted >= 0.7 * stats.drafted  # it drafts past the end


@pytest.mark.real_model
def test_transformers_speculation_is_exact(backend: Any, smollm_dir: Path, tmp_path: Path) -> None:
    """Prompt lookup on the transformers engine (the same model, shared): the same
    greedy reply with most of it drafted; a seeded sampled reply repeats; one asked for
    probabilities is written without it, said once.  The demo model as its own draft
    model: the same reply again; auto writes the first reply without it; a draft of
    another vocabulary is refused."""
    import dataclasses

    from vicuna_tui.engine.transformers.backend import LocalBackend

    plain, _ = _ask(backend, REWRITE, 56)
    fast_settings = dataclasses.replace(backend.settings, speculate="ngram")
    fast = LocalBackend(fast_settings)
    fast.attach(backend._loaded)
    assert fast.info.speculation == "ngram"
    done, said = _ask(fast, REWRITE, 56)
    assert done.text == plain.text and not said
    stats = done.stats
    assert stats.speculation == "ngram" and stats.drafted and stats.accepted
    assert stats.accepted <= stats.drafted and stats.accepted >= stats.new_tokens // 2
    assert stats.kept_spans and all(span in done.text for span in stats.kept_spans)
    sampled = ChatRequest(  # speculative sampling: the same seed, the same reply
        turns=(("user", REWRITE),),
        generation=GenerationSettings(temperature=0.7, seed=1, max_new_tokens=24),
    )
    twice = [list(fast.generate(sampled, threading.Event()))[-1] for _ in range(2)]
    assert isinstance(twice[0], ReplyDone) and isinstance(twice[1], ReplyDone)
    assert twice[0].stats.speculation == "ngram" and twice[0].stats.drafted
    assert twice[0].text == twice[1].text
    asked = ChatRequest(
        turns=(("user", REWRITE),), generation=GenerationSettings(max_new_tokens=4), logprobs=2
    )
    for _ in range(2):  # token probabilities: written without it, said once
        events = list(fast.generate(asked, threading.Event()))
        assert isinstance(events[-1], ReplyDone) and events[-1].stats.speculation is None
        said += [e for e in events if isinstance(e, Notice)]
    assert len(said) == 1 and "not for replies asked for token probabilities" in said[0].text
    fast.unload()  # its own caches and thread planner; the shared model stays loaded
    # speculation unset: a reply that replaces one (regenerate, edit, replay) drafts
    # from it, and writes the same greedy reply
    again = ChatRequest(
        turns=(("user", REWRITE),),
        generation=GenerationSettings(temperature=0.0, max_new_tokens=56),
        earlier_reply=plain.text,
    )
    redone = list(backend.generate(again, threading.Event()))[-1]
    assert isinstance(redone, ReplyDone) and redone.text == plain.text
    assert redone.stats.speculation == "ngram"
    assert (redone.stats.accepted or 0) >= redone.stats.new_tokens * 3 // 4
    draft = None
    for mode in ("draft", None):  # None: auto, with a draft model
        settings = dataclasses.replace(
            backend.settings, speculate=mode, draft_model=str(smollm_dir), draft_max=6
        )
        drafting = LocalBackend(settings)
        if draft is None:
            draft = drafting._load_draft(backend._loaded, None)  # the demo loaded again
        draft.reset()
        drafting._drafter = draft
        drafting.attach(backend._loaded)
        if mode is None:  # auto: the first reply is the baseline, the next drafts
            assert drafting.info.speculation == "auto (from the second reply)"
            first, _ = _ask(drafting, REWRITE, 20)
            assert first.stats.speculation is None and first.text == plain.text[: len(first.text)]
        done, said = _ask(drafting, REWRITE, 24)  # greedy: the start of the same reply
        stats = done.stats
        assert len(done.text) > 50 and done.text == plain.text[: len(done.text)], mode
        assert not said or mode is None  # auto may turn it off after (by the rate: 0.6x)
        assert stats.speculation == f"draft {backend._loaded.source.name}" and stats.drafted
        assert 0 < (stats.accepted or 0) <= stats.drafted
        assert stats.kept_spans and all(span in done.text for span in stats.kept_spans)
        drafting.unload()
    from helpers import tiny_llama

    other = LocalBackend(
        dataclasses.replace(backend.settings, draft_model=str(tiny_llama(tmp_path / "tiny")))
    )
    with pytest.raises(SettingsError, match=r"does not share .* vocabulary: their tokens differ"):
        other._load_draft(backend._loaded, None)
    backend.reset_cache()


@pytest.mark.real_model
def test_a_draft_of_another_vocabulary_is_refused(smollm_gguf: Path, tmp_path: Path) -> None:
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend

    renamed = _random_llama(tmp_path, {100: "zebra", 200: "quokka"})
    backend = LlamaCppBackend(
        LoadSettings(model_path=str(smollm_gguf), device="cpu", draft_model=str(renamed))
    )
    with pytest.raises(SettingsError) as refused:
        backend.load()
    message = refused.value.message
    assert f"does not share {smollm_gguf.name}'s vocabulary" in message
    assert "#100" in message and "'zebra'" in message and "#200" in message
    assert "--speculate ngram" in (refused.value.hint or "")


def test_a_missing_draft_is_named_as_the_draft(smollm_gguf: Path, tmp_path: Path) -> None:
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend

    missing = tmp_path / "nowhere" / "draft.gguf"
    backend = LlamaCppBackend(
        LoadSettings(model_path=str(smollm_gguf), device="cpu", draft_model=str(missing))
    )
    with pytest.raises(ModelNotFoundError) as refused:
        backend.load()
    assert refused.value.message.startswith(f"the draft model: no such file or folder: {missing}")
    assert "--draft-gguf-file" in (refused.value.hint or "")


@pytest.mark.real_model
def test_auto_switches_a_useless_draft_off_by_its_counts(smollm_gguf: Path, tmp_path: Path) -> None:
    """A random-weight target writes noise its draft cannot guess: after the baseline
    reply and one with the draft, auto turns it off for the chat, says so once, and the
    next reply is written without it."""
    target = _random_llama(tmp_path)
    for backend in _loaded(target, draft_model=str(smollm_gguf), draft_max=8):
        backend.ignore_eos = True
        assert backend.info.speculation == "auto (from the second reply)"
        first, said = _ask(backend, "Tell me a story.", 40)  # the baseline
        assert first.stats.speculation is None and not said
        second, said = _ask(backend, "Tell me a story.", 40)
        assert second.stats.speculation == f"draft {smollm_gguf.name}"
        assert (second.stats.accepted or 0) < MIN_USEFUL * second.stats.new_tokens
        assert len(said) == 1 and "speculation is off for this chat" in said[0].text
        third, said = _ask(backend, "Tell me a story.", 40)
        assert third.stats.speculation is None and not said
        assert backend.info.speculation == "speculation off (auto)"


def test_auto_keeps_a_draft_that_pays_and_drops_one_that_is_slower() -> None:
    switch = AutoSwitch("draft")
    assert switch.after_reply(ReplyStats(new_tokens=40, tokens_per_second=50.0)) == (True, "")
    kept = ReplyStats(new_tokens=40, tokens_per_second=70.0, drafted=40, accepted=30)
    assert switch.after_reply(kept) == (None, "") and switch.decided and switch.on
    slow = AutoSwitch("draft")
    slow.after_reply(ReplyStats(new_tokens=40, tokens_per_second=80.0))
    on, why = slow.after_reply(
        ReplyStats(
            new_tokens=40, tokens_per_second=47.0, drafted=40, accepted=39, baseline_rate=80.0
        )
    )
    assert on is False and "47.0 tok/s against 80.0" in why
    assert not switch.losing(10, 16, 0)  # mid-reply: too few tokens to tell
    assert AutoSwitch("ngram").losing(20, 16, 4) and not AutoSwitch("ngram").losing(20, 16, 5)
    assert not AutoSwitch("ngram").losing(40, 15, 0)  # n-gram idle costs nothing
    assert AutoSwitch("draft").losing(20, 6, 3) and not AutoSwitch("draft").losing(20, 8, 4)
    pacing = Pacing(AutoSwitch("ngram", on=True))  # within a reply: rests, then retries
    assert pacing.drafts_now(5, DraftTally(drafted=10, accepted=1))
    assert not pacing.drafts_now(6, DraftTally(drafted=20, accepted=2))  # lost: rests 32
    assert not pacing.drafts_now(37, DraftTally(drafted=20, accepted=2))
    assert pacing.drafts_now(38, DraftTally(drafted=20, accepted=2))  # fresh counts
    assert not pacing.drafts_now(40, DraftTally(drafted=40, accepted=2))  # lost: rests 64
    assert not pacing.drafts_now(103, DraftTally(drafted=40, accepted=2))
    assert pacing.drafts_now(104, DraftTally(drafted=40, accepted=2))
    assert Pacing(None).drafts_now(6, DraftTally(drafted=20, accepted=0))  # none: drafts
    short = AutoSwitch("ngram")  # a reply too short to be a baseline decides nothing
    assert short.after_reply(ReplyStats(new_tokens=3, tokens_per_second=50.0)) == (None, "")
    idle = AutoSwitch("ngram")  # n-gram with nothing to copy: undecided, still on
    idle.after_reply(ReplyStats(new_tokens=40, tokens_per_second=50.0))
    assert idle.after_reply(ReplyStats(new_tokens=40, tokens_per_second=50.0, drafted=0)) == (
        None,
        "",
    )
    assert idle.on and not idle.decided


def test_speculative_sampling_writes_each_token_with_the_samplers_probability() -> None:
    """A drafted token is kept with the probability the sampler gives it, else another
    is drawn without it: over many draws each token comes as often as the sampler says,
    whichever token was drafted (the drafted one a likely or an unlikely one)."""
    import torch

    from vicuna_tui.engine.transformers import sampling

    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0]])
    gen = GenerationSettings(temperature=0.8, top_k=4, top_p=1.0)
    procs = sampling.processors(gen)
    expected = torch.softmax(procs(None, logits), dim=-1)[0]  # top-k drops token 3
    generator = torch.Generator().manual_seed(7)
    draws = 4000
    for drafted in (0, 2, 3):
        counts = torch.zeros(5)
        for _ in range(draws):
            _, token = sampling.check_draft(logits, procs, None, gen, generator, drafted)
            counts[token] += 1
        assert torch.allclose(counts / draws, expected, atol=0.025), (drafted, counts / draws)
        assert counts[3] == 0  # a token the sampler forbids is never kept or drawn
    greedy = GenerationSettings(temperature=0.0)
    assert sampling.check_draft(logits, None, None, greedy, None, 0) == (True, 0)
    assert sampling.check_draft(logits, None, None, greedy, None, 2) == (False, 0)


@pytest.mark.real_model
def test_auto_stops_a_losing_draft_within_the_reply_on_transformers(backend: Any) -> None:
    """A draft that never guesses right: once the reply has MIN_TOKENS tokens, auto stops
    drafting for the rest of it (transformers can, at any token), writes the same reply,
    and turns speculation off for the chat."""
    import dataclasses

    from vicuna_tui.engine.drafting import MIN_TOKENS, DraftTally
    from vicuna_tui.engine.transformers.backend import LocalBackend

    class Wrong:
        kind = "draft"
        name = "wrong"

        def begin(self, ids: list[int]) -> Wrong:
            self.tally, self.from_draft = DraftTally(), False
            return self

        def add(self, token: int) -> None: ...

        def propose(self, room: int) -> list[int]:
            return [0] * min(4, room)  # token 0 is never what the demo writes here

        def reset(self) -> None: ...

    plain, _ = _ask(backend, REWRITE, 24)
    losing = LocalBackend(dataclasses.replace(backend.settings, draft_model="wrong"))
    losing._drafter = Wrong()  # type: ignore[assignment]
    losing.attach(backend._loaded)
    assert losing._auto is not None
    losing._auto.on = True  # past the baseline reply
    done, said = _ask(losing, REWRITE, 24)
    assert done.text == plain.text and done.stats.accepted == 0
    assert (done.stats.drafted or 0) <= 4 * MIN_TOKENS  # not one draft after it lost
    assert len(said) == 1 and "speculation is off for this chat" in said[0].text
    backend.reset_cache()


def test_a_reply_that_replaces_one_carries_it(home: Path) -> None:
    """Regenerate, an edit sent again and a replayed turn each hand the engine the
    reply they replace (to draft from)."""
    session = ChatSession(None)
    first = session.add_user("hi")
    assert first.earlier_reply == ""
    session.record_result(ReplyDone(first.request_id, "old reply", "stop", ReplyStats()))
    again = session.regenerate()
    assert again is not None and again.earlier_reply == "old reply"
    session.record_result(ReplyDone(again.request_id, "second", "stop", ReplyStats()))
    edited = session.edit_at(0, "hello")
    assert edited is not None and edited.earlier_reply == "second"
    assert session.replay_turn("next", "saved").earlier_reply == "saved"


def test_kept_drafts_are_told_from_llama_cpps_running_counts() -> None:
    """llama.cpp streams a checked batch as its kept drafts, then the model's own
    token, with the count of kept drafts raised on the batch's first token."""
    tally = DraftTally()
    for text, counts in [
        ("The", None),
        (" fox", (4, 0)),  # a draft of 4, none kept: the model's own token
        (" jumps", (9, 2)),  # 2 of the next 5 kept: " jumps", " over"
        (" over", (9, 2)),
        (" the", (9, 2)),  # the model's own, after them
        (" dog", (12, 3)),  # then 1 more kept: " dog"
        (".", (12, 3)),
    ]:
        if counts is not None:
            tally.counts(*counts)
        tally.token(text)
    assert tally.spans == [" jumps over", " dog"] and tally.live() == (12, 3)
    assert speedup_text(ReplyStats(tokens_per_second=60.0, drafted=9, baseline_rate=40.0)) == (
        "1.50× unspeculated"
    )
    baseline = Baseline()  # n-gram drafting nothing costs nothing: a fair baseline
    idle = ReplyStats(new_tokens=40, tokens_per_second=50.0, speculation="ngram", drafted=0)
    assert baseline.after(idle, idle_drafting_free=True).baseline_rate is None
    busy = dataclasses.replace(idle, drafted=30, accepted=20, tokens_per_second=80.0)
    assert speedup_text(baseline.after(busy, idle_drafting_free=True)) == "1.60× unspeculated"
    draft = dataclasses.replace(idle, speculation="draft d.gguf")  # a draft model costs
    costly = Baseline()
    costly.after(draft, idle_drafting_free=False)
    assert costly.rate is None


def test_the_flags_are_refused_where_they_cannot_work(home: Path) -> None:
    from vicuna_tui import runtime
    from vicuna_tui.engine.transformers.backend import LocalBackend

    with pytest.raises(SettingsError, match="--speculate draft needs a draft model"):
        LoadSettings(speculate="draft").check()
    from vicuna_tui.commands.startup import announce
    from vicuna_tui.engine.events import ModelInfo

    shown = io.StringIO()  # the line front ends say what speculates, with the model
    announce(ModelInfo("m", "/m.gguf", "a file", speculation="ngram"), shown, "chatml")
    assert "  speculation: ngram" in shown.getvalue()
    local = LocalBackend(LoadSettings(draft_model="/models/d.gguf"))
    with pytest.raises(ModelNotFoundError, match="the draft model: no such file"):
        local.check()  # named as the draft, on transformers too
    from vicuna_tui.cli import build_parser

    argv = ["--endpoint", "http://127.0.0.1:9/v1", "--speculate", "ngram"]
    result = run_cli(
        "--model-path", "x.gguf", "-p", "hi", "--speculate", "ngram", "--logprobs", "2"
    )
    assert result.returncode == 2 and "--logprobs and speculative decoding" in result.stderr
    with pytest.raises(SettingsError, match="a server speculates on its own") as refused:
        runtime.resolve(build_parser().parse_args(argv))
    assert "--speculative-config" in (refused.value.hint or "")
