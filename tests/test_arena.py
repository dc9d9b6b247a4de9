"""The arena without a screen: ratings from known votes, battles in the store, the
blind order and the vote's rules, the command line's sides, and `arena results`."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from helpers import run_cli

from vicuna_tui.arena.battle import ArenaBattle, VoteRefused, arena_name
from vicuna_tui.arena.fit import Fit, check_fit, shared_threads
from vicuna_tui.arena.ratings import Vote, bradley_terry, leaderboard, online_elo
from vicuna_tui.engine.events import ModelInfo
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Battle, Store


def votes(spec: list[tuple[str, str, str, int]]) -> list[Vote]:
    out: list[Vote] = []
    for a, b, vote, times in spec:
        out += [Vote(a, b, vote)] * times
    return out


# -- ratings -------------------------------------------------------------------------------


def test_two_models_rating_gap_is_the_closed_form() -> None:
    # x beat y 7 times (5 shown as A, 2 as B), lost 2, tied 2 and both were bad once.
    known = votes([("x", "y", "a", 5), ("y", "x", "b", 2), ("y", "x", "a", 2)])
    known += votes([("x", "y", "tie", 2), ("x", "y", "bothbad", 1)])
    rows = leaderboard(known, rounds=100)
    assert [r.model for r in rows] == ["x", "y"]
    x, y = rows
    assert (x.wins, x.losses, x.ties, x.both_bad, x.games) == (7, 2, 3, 1, 12)
    assert (y.wins, y.losses, y.ties) == (2, 7, 3)
    assert x.win_rate == pytest.approx(7 / 9)  # FastChat's: ties left out
    p = (7 + 3 / 2 + 1 / 2) / (12 + 1)  # ties half a win, one virtual tie as the prior
    assert x.rating - y.rating == pytest.approx(400 * math.log10(p / (1 - p)), abs=1e-6)
    assert (x.rating + y.rating) / 2 == pytest.approx(1000)
    assert x.low <= x.rating <= x.high and x.high - x.low > 10  # a real interval
    assert leaderboard(known, rounds=100) == rows  # seeded: the same every time


def test_bradley_terry_recovers_known_strengths() -> None:
    # Scores drawn from known strengths 4:2:1 (800, 680, 560 on the Elo scale less the
    # mean), in large numbers: the fit finds them again.
    rng = random.Random(3)
    strength = {"p": 4.0, "q": 2.0, "r": 1.0}
    drawn: list[Vote] = []
    for a, b in [("p", "q"), ("q", "r"), ("p", "r")] * 3000:
        first = rng.random() < strength[a] / (strength[a] + strength[b])
        drawn.append(Vote(a, b, "a" if first else "b"))
    ratings = bradley_terry({(a, b): s for (a, b), s in _scores(drawn).items()}, ["p", "q", "r"])
    step = 400 * math.log10(2)
    assert ratings["p"] - ratings["q"] == pytest.approx(step, abs=15)
    assert ratings["q"] - ratings["r"] == pytest.approx(step, abs=15)


def _scores(drawn: list[Vote]) -> dict[tuple[str, str], list[float]]:
    from vicuna_tui.arena.ratings import _pairs

    return _pairs(drawn)


def test_online_elo_is_chatbot_arenas() -> None:
    elo = online_elo([Vote("x", "y", "a"), Vote("x", "y", "tie")])
    # first game: expected 0.5, so x gains K/2 = 2; the tie then moves 4 * (0.5 - E)
    expected = 1 / (1 + 10 ** ((998 - 1002) / 400))
    assert elo["x"] == pytest.approx(1002 + 4 * (0.5 - expected))
    assert elo["x"] + elo["y"] == pytest.approx(2000)


def test_a_model_against_itself_and_no_votes_give_no_rating() -> None:
    assert leaderboard([]) == []
    assert leaderboard([Vote("x", "x", "a")]) == []
    undefeated = leaderboard(votes([("x", "y", "a", 5)]), rounds=20)
    assert all(math.isfinite(r.rating) for r in undefeated)  # the prior keeps it finite


# -- the store -----------------------------------------------------------------------------


def test_battles_are_saved_with_their_conversations(home: Path) -> None:
    with Store() as store:
        first = store.create_conversation(title="left")
        second = store.create_conversation(title="right")
        battle = Battle(
            "b1",
            "x",
            "y",
            first.id,
            second.id,
            blind=True,
            swapped=True,
            turns=1,
            settings={"threads": 1},
        )
        store.battles.save(battle)
        battle.vote, battle.turns = "tie", 2
        store.battles.save(battle)  # the same row, updated
        [saved] = store.battles.all()
        assert (saved.vote, saved.turns, saved.swapped, saved.settings) == (
            "tie",
            2,
            True,
            {"threads": 1},
        )
        assert saved.conversation_a == first.id and saved.created_at <= saved.updated_at
        assert store.battles.all(voted_only=True) == [saved]
        store.delete(first.id)  # a deleted chat leaves the vote
        [kept] = store.battles.all()
        assert kept.conversation_a is None and kept.vote == "tie"


# -- one battle ------------------------------------------------------------------------------


def info(name: str, engine: str = "llamacpp") -> ModelInfo:
    return ModelInfo(
        name=name,
        path=f"/m/{name}",
        source="test",
        engine=engine,
        quantization="Q4_1" if engine == "llamacpp" else None,
    )


def sides(*names: str) -> list[ChatSession]:
    out = []
    for name in names:
        session = ChatSession(None)
        session.set_model(info(name))
        out.append(session)
    return out


def test_blind_order_hides_the_names_until_the_vote() -> None:
    orders = set()
    for seed in range(20):
        battle = ArenaBattle(sides("one", "two"), rng=random.Random(seed))
        orders.add(battle.side_of("A"))
        assert battle.title("A") == "Model A" and battle.title("B") == "Model B"
    assert orders == {0, 1}  # either model may be shown first
    battle = ArenaBattle(sides("one", "two"), swapped=True)
    assert battle.name("A") == "two (llama.cpp Q4_1)"  # the second side given
    assert battle.session("A") is battle.sessions[1]


def test_votes_need_replies_and_change_until_the_next_prompt() -> None:
    battle = ArenaBattle(sides("one", "two"), swapped=False)
    with pytest.raises(VoteRefused, match="Send a prompt first"):
        battle.cast("a")
    battle.ask("hi")
    with pytest.raises(VoteRefused, match="Wait for both replies"):
        battle.cast("a")
    for session in battle.sessions:
        session.record_reply("hello", "stop")
    assert battle.cast("a") == "A is better"
    assert battle.title("A") == "Model A · one (llama.cpp Q4_1)"  # named after the vote
    assert battle.cast("bothbad") == "both are bad"  # changed
    battle.ask("and now?")
    for session in battle.sessions:
        session.record_reply("still here", "stop")
    with pytest.raises(VoteRefused, match="final"):
        battle.cast("b")
    assert battle.record().vote == "bothbad" and battle.record().turns == 2


def test_same_weights_on_two_engines_are_two_contestants() -> None:
    llama = info("SmolLM2", "llamacpp")
    torch = ModelInfo(name="SmolLM2", path="/m", source="t", engine="transformers")
    assert arena_name(llama) != arena_name(torch)
    battle = ArenaBattle(sides("same", "same"))
    assert battle.identical


def test_memory_fit_and_thread_shares(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"\0" * 1000)
    load = LoadSettings(model_path=str(model))
    assert check_fit([load, load], free=lambda: 10_000).fits
    tight = check_fit([load, load], free=lambda: 2_000)
    assert not tight.fits and "the two models need" in tight.describe()
    unknown = check_fit([LoadSettings(model_path="org/not-downloaded"), None], free=lambda: 1)
    assert unknown == Fit(None, 1) and unknown.fits  # cannot tell: not refused
    assert shared_threads(2, cores=16) == 8 and shared_threads(2, cores=1) == 1
    assert shared_threads(1, cores=16) is None


# -- the command line ------------------------------------------------------------------------


def test_sides_split_by_their_first_flag() -> None:
    from vicuna_tui.arena.sides import split_sides

    shared, chunks = split_sides(
        [
            "--temperature",
            "0",
            "--model-path",
            "a",
            "--backend",
            "transformers",
            "--endpoint=http://x/v1",
            "--model",
            "m",
        ]
    )
    assert shared == ["--temperature", "0"]
    assert chunks == [
        ["--model-path", "a", "--backend", "transformers"],
        ["--endpoint=http://x/v1", "--model", "m"],
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "the arena needs two models; 0 models were given"),
        (("--model-path", "a"), "one model was given"),
        (("--model-path", "a", "--model-path", "b", "--profile", "c"), "3 models were given"),
    ],
)
def test_arena_needs_two_sides(home: Path, args: tuple[str, ...], says: str) -> None:
    result = run_cli("arena", *args)
    assert result.returncode == 2 and says in result.stderr
    assert "--model-path A --model-path B" in result.stderr and "Traceback" not in result.stderr


def test_arena_without_a_terminal_says_how(home: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    result = run_cli("arena", "--model-path", str(model), "--model-path", str(model))
    assert result.returncode == 2
    assert "the arena needs a terminal" in result.stderr and "arena results" in result.stderr
    assert "settings differ" not in result.stderr
    # sides given their own lengths and temperatures: said before the battle
    differ = run_cli(
        "arena",
        *("--model-path", str(model), "--max-new-tokens", "80"),
        *("--model-path", str(model), "--max-new-tokens", "60", "--temperature", "0.2"),
    )
    assert (
        "warning: the two sides' settings differ (temperature: first 0.7, second 0.2; "
        "max new tokens: first 80, second 60), so a vote weighs them as well as the models"
        in differ.stderr
    )


def test_two_models_too_big_for_memory_are_named_before_loading(home: Path, tmp_path: Path) -> None:
    import psutil

    big = tmp_path / "big.gguf"
    with big.open("wb") as f:  # sparse: as large as this machine's free memory
        f.truncate(psutil.virtual_memory().available)
    result = run_cli("arena", "--model-path", str(big), "--model-path", str(big))
    assert result.returncode == 2
    assert "may not fit in memory at once: the two models need about" in result.stderr
    assert "--one-at-a-time" in result.stderr


def test_arena_results_from_known_votes(home: Path) -> None:
    empty = run_cli("arena", "results")
    assert empty.returncode == 0 and "No arena votes yet" in empty.stdout
    known = votes([("x", "y", "a", 3), ("y", "x", "a", 1), ("x", "y", "bothbad", 1)])
    with Store() as store:
        for n, vote in enumerate(known):
            store.battles.save(Battle(f"b{n}", vote.model_a, vote.model_b, vote=vote.vote))
        store.battles.save(Battle("evil", "\x1b[2Jx", "[red]y", vote=None))
        store.battles.save(Battle("same", "x", "x", vote="a"))  # rates nothing: left out
    result = run_cli("arena", "results", "--json", "--rounds", "50")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["battles"] == 5 and data["left_out_same_model"] == 1
    assert sum(row["games"] for row in data["models"]) == 2 * 5  # what the table counts
    top = data["models"][0]
    assert (top["model"], top["wins"], top["losses"], top["ties"], top["both_bad"]) == (
        "x",
        3,
        1,
        1,
        1,
    )
    assert top["rating"] == pytest.approx(1000 + 400 * math.log10(2) / 2)
    assert top["win_rate"] == pytest.approx(0.75)  # 3 of 4 decided; the tie left out
    table = run_cli("arena", "results")
    assert table.returncode == 0
    first = table.stdout.splitlines()[1].split()
    assert first[:3] == ["1", "x", "1060"] and "75.0%" in first
    assert (
        "5 blind voted battles counted; 1 more left out: the same model on both sides rates "
        "nothing" in table.stdout
    )
    assert "\x1b" not in table.stdout


def test_each_side_takes_its_own_flags_and_shares_the_rest(home: Path) -> None:
    from vicuna_tui import config as config_mod
    from vicuna_tui.commands.arena_cmd import plan

    config_mod.set_values({"temperature": 0.3})
    (home / "config" / "config.toml").write_text(
        (home / "config" / "config.toml").read_text()
        + '\n[profiles.tiny]\nmodel_path = "/models/tiny"\nmax_new_tokens = 7\n'
    )
    arena = plan(
        [
            "--temperature",
            "0",
            "--model-path",
            "a.gguf",
            "--backend",
            "transformers",
            "--endpoint",
            "http://gpu-box:8000/v1",
            "--model",
            "vicuna-13b",
            "--top-p",
            "0.5",
        ]
    )
    local, remote = arena.sides
    assert local.load.model_path == "a.gguf" and local.load.backend == "transformers"
    assert local.remote is None and remote.remote is not None
    assert (remote.remote.endpoint, remote.remote.model) == ("http://gpu-box:8000/v1", "vicuna-13b")
    assert local.generation.temperature == remote.generation.temperature == 0.0  # shared
    assert remote.generation.top_p == 0.5 and local.generation.top_p == 1.0  # its own
    assert local.load.threads is None  # one local model: its own default
    assert not arena.same

    two = plan(["--profile", "tiny", "--model-path", "b"]).sides
    assert two[0].load.model_path == "/models/tiny" and two[0].generation.max_new_tokens == 7
    assert two[0].generation.temperature == 0.3  # the config under the profile
    assert two[0].load.threads == two[1].load.threads == shared_threads(2)  # cores split
    assert plan(["--model-path", "b", "--model-path", "b"]).same


def test_a_side_typed_in_the_tui(home: Path) -> None:
    from vicuna_tui import config as config_mod
    from vicuna_tui.arena.sides import typed_side
    from vicuna_tui.errors import SettingsError

    cfg = config_mod.load()
    assert vars(typed_side(" org/model ", cfg)) == {"model_path": "org/model"}
    assert vars(typed_side("http://box:8000/v1 vicuna", cfg)) == {
        "endpoint": "http://box:8000/v1",
        "remote_model": "vicuna",
    }
    with pytest.raises(SettingsError, match="empty"):
        typed_side("  ", cfg)


# -- parity with Chatbot Arena -----------------------------------------------------------


def test_named_votes_are_left_out_unless_asked_for(home: Path) -> None:
    """Chatbot Arena rates anonymous votes only: a --no-blind vote (the names shown)
    is counted apart, and only --include-named rates it."""
    from vicuna_tui.arena.results import standings

    with Store() as store:
        for n in range(3):
            store.battles.save(Battle(f"blind{n}", "x", "y", vote="a"))
        for n in range(6):  # enough named votes to flip the leader
            store.battles.save(Battle(f"named{n}", "x", "y", vote="b", blind=False))
        blind = standings(store, rounds=50)
        both = standings(store, rounds=50, include_named=True)
    assert [r.model for r in blind.rows] == ["x", "y"] and blind.counted == 3
    assert blind.named == 6
    assert "6 named votes (--no-blind) left out" in blind.summary()
    assert [r.model for r in both.rows] == ["y", "x"] and both.counted == 9
    assert both.named == 0 and "named" not in both.summary()
    result = run_cli("arena", "results", "--rounds", "20")
    assert "3 blind voted battles counted" in result.stdout
    result = run_cli("arena", "results", "--rounds", "20", "--include-named", "--json")
    assert json.loads(result.stdout)["battles"] == 9


def test_ranks_follow_the_intervals_and_groups_that_never_met_are_named() -> None:
    from vicuna_tui.arena.ratings import fewest_battles, groups
    from vicuna_tui.arena.results import Results

    close = votes([("p", "q", "a", 6), ("p", "q", "b", 5), ("q", "r", "a", 40)])
    rows = {r.model: r for r in leaderboard(close, rounds=300)}
    assert rows["p"].rating > rows["q"].rating  # p is ahead, but not surely:
    assert rows["p"].rank == rows["q"].rank == 1  # their intervals overlap
    assert rows["r"].rank == 3  # both lie wholly above r
    apart = votes([("a", "b", "a", 3), ("c", "d", "a", 3)])
    assert groups(apart) == [["a", "b"], ["c", "d"]]
    assert fewest_battles(close) == 11
    summary = Results(leaderboard(apart, rounds=0), 6, 0, 0, False, (("a", "b"), ("c", "d")), 3)
    text = summary.summary()
    assert "These groups never met, so ratings compare only within each: a, b | c, d" in text
    assert "shows about 75% of what the votes alone say" in text  # k/(k+1) at k = 3


def test_a_round_of_the_bootstrap_leaves_out_a_model_it_did_not_draw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """z played once in 41 battles: about a third of the rounds draw none of its battles,
    and those rounds must not rate it (it would sit at the mean and widen its interval
    toward it)."""
    from vicuna_tui.arena import ratings

    seen: list[list[str]] = []
    fit = ratings.bradley_terry

    def spy(pairs: object, models: list[str], **kwargs: object) -> dict[str, float]:
        seen.append(list(models))
        return fit(pairs, models, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ratings, "bradley_terry", spy)
    known = votes([("x", "y", "a", 40), ("z", "y", "a", 1)])
    ratings.leaderboard(known, rounds=200, seed=1)
    rounds = seen[1:]  # the first fit is the table's own
    without_z = [models for models in rounds if "z" not in models]
    assert 20 < len(without_z) < 140  # (40/41)^41 of 200 is about 73
    assert all(models == ["x", "y"] for models in without_z)
