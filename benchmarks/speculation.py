"""Speculative decoding on llama.cpp through our layers: what it gains, what it costs.

    python benchmarks/speculation.py [--runs 3]

1. n-gram (``--speculate ngram``) on the demo model (SmolLM2-135M-Instruct Q4_1, this
   CPU, greedy): a 300-word paragraph rewritten with one change, a 60-line code block
   edited, and an open-ended story; decode tok/s with n-gram ÷ without, the drafted
   tokens kept, and whether the replies are the same.  One model loaded at a time,
   without and with in turn within each run; medians (min–max) of --runs.
2. A draft model that cannot help: the random-weight 1B Llama (benchmarks/
   random_gguf.py) with the demo model as its draft (same vocabulary, but noise cannot
   be guessed).  Three 64-token story replies in one chat, without speculation, with
   ``--speculate draft``, and with ``auto`` (the first reply is its baseline, then the
   draft, then its decision); decode tok/s of each reply.
3. The demo model as its own draft: every guess right, and the cost of a draft as big
   as the model.
4. On transformers: n-gram for greedy and for sampled replies (speculative sampling,
   temperature 0.7, the run's seed), and the demo model as its own draft model.

    python benchmarks/speculation.py --big 7b [--tokens 24]

writes a section of its own: part 2 on the random-weight 7B (the draft 2% of the
model's size), fewer tokens a reply (the 7B decodes at about 3 tok/s here).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from typing import Any

from _common import fmt, smollm_folder, smollm_gguf, table, write_section

PARAGRAPH = " ".join(
    [
        "The old lighthouse stood at the edge of the cliff, its white paint peeling after",
        "decades of storms. Every evening the keeper climbed the spiral stairs, trimmed the",
        "wick, and watched the beam sweep across the dark water. Ships passing in the night",
        "trusted that light more than any chart, and the keeper took pride in never letting",
        "it fail. One winter a great storm tore the shutters from the windows and flooded",
        "the ground floor, yet the lamp kept burning until dawn. In the spring the village",
        "sent carpenters and painters, and by summer the tower shone again above the bay.",
        "Children came on Sundays to count the steps, and the keeper told them of the ships",
        "he had guided home, the fog that hid the rocks, and the night the bell rang by",
        "itself. When he grew too old for the stairs, his daughter took the keys, and the",
        "light never failed.",
    ]
    * 2
)
CODE = "\n".join(
    f"def step_{i}(value):\n    total = value + {i}\n    return total * 2\n" for i in range(20)
)
TASKS = {
    "rewrite (300 words, one change)": (
        f"Repeat this text exactly, but write 'beacon' for 'lighthouse':\n\n{PARAGRAPH}"
    ),
    "edit a 60-line code block": (
        f"Rewrite this code exactly, but rename 'total' to 'result':\n\n```python\n{CODE}```"
    ),
    "open-ended story": "Write a long story about a fox who learns to sing.",
}
# A saved chat replayed: the story prompt again, with the reply saved for it (the one
# written without speculation in the same run) handed to the engine as the reply it
# replaces, as replay, regenerate and an edit sent again do.
REPLAY = "replay a saved chat (the story)"


def reply(
    backend: Any,
    prompt: str,
    tokens: int,
    seed: int | None = None,
    temperature: float = 1.0,
    earlier: str = "",
) -> Any:
    """Greedy, or sampled at ``temperature`` with ``seed``."""
    from vicuna_tui.engine.events import ChatRequest, ReplyDone
    from vicuna_tui.engine.settings import GenerationSettings

    sampling = (
        {"temperature": temperature, "seed": seed} if seed is not None else {"temperature": 0.0}
    )
    request = ChatRequest(
        turns=(("user", prompt),),
        generation=GenerationSettings(max_new_tokens=tokens, **sampling),  # type: ignore[arg-type]
        earlier_reply=earlier,
    )
    done = list(backend.generate(request, threading.Event()))[-1]
    assert isinstance(done, ReplyDone), done
    return done


def backend_for(path: Any, **settings: Any) -> Any:
    from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
    from vicuna_tui.engine.settings import LoadSettings

    backend = LlamaCppBackend(LoadSettings(model_path=str(path), device="cpu", **settings))
    backend.load()
    return backend


def transformers_for(**settings: Any) -> Any:
    from vicuna_tui.engine.settings import LoadSettings
    from vicuna_tui.engine.transformers.backend import LocalBackend

    backend = LocalBackend(LoadSettings(model_path=str(smollm_folder()), device="cpu", **settings))
    backend.load()
    return backend


def ngram(runs: int, engine: str = "llama.cpp", sampled: bool = False) -> str:
    """One backend loaded at a time (two in one process disturb each other's threads),
    off and n-gram in turn within each run; ``sampled``: at temperature 0.7, the run's
    seed (the replies then differ: the draft changes how the randomness is used)."""
    tokens = 400 if engine == "llama.cpp" else 200
    tasks = {**TASKS, REPLAY: TASKS["open-ended story"]}
    rates: dict[str, dict[str, list[float]]] = {t: {"off": [], "ngram": []} for t in tasks}
    counts: dict[str, tuple[int, int]] = {}
    texts: dict[tuple[str, str], set[str]] = {}
    for run in range(runs):
        saved = ""  # the story as written without speculation in this run
        for mode, settings in (("off", {"speculate": "off"}), ("ngram", {"speculate": "ngram"})):
            if engine == "llama.cpp":
                backend = backend_for(smollm_gguf(), **settings)
            else:
                backend = transformers_for(**settings)
            for task, prompt in tasks.items():
                backend.reset_cache()
                seed = run if sampled else None
                earlier = saved if task == REPLAY else ""
                done = reply(backend, prompt, tokens, seed, temperature=0.7, earlier=earlier)
                if mode == "off" and task == "open-ended story":
                    saved = done.text
                rates[task][mode].append(done.stats.tokens_per_second or 0.0)
                texts.setdefault((task, mode), set()).add(done.text)
                if mode == "ngram":
                    counts[task] = (done.stats.accepted or 0, done.stats.drafted or 0)
                print(task, mode, f"{rates[task][mode][-1]:.1f} tok/s", flush=True)
            backend.unload()
    rows = []
    for task, by_mode in rates.items():
        ratio = sorted(by_mode["ngram"])[runs // 2] / sorted(by_mode["off"])[runs // 2]
        same = texts[(task, "off")] == texts[(task, "ngram")]
        kept, drafted = counts[task]
        rows.append(
            [
                task,
                fmt(by_mode["off"], 1, " tok/s"),
                fmt(by_mode["ngram"], 1, " tok/s"),
                f"{ratio:.2f}×",
                f"{kept}/{drafted}",
                "sampled" if sampled else ("same" if same else "differs"),
            ]
        )
    return table(["task", "off", "ngram", "÷ off", "kept/drafted", "reply"], rows)


def chat(backend: Any, tokens: int, sampled: bool) -> list[tuple[float, str, str]]:
    """Three replies in one chat: (tok/s, what drafted, kept/drafted) of each."""
    backend.ignore_eos = True
    out = []
    for turn in range(3):
        done = reply(backend, TASKS["open-ended story"], tokens, seed=turn if sampled else None)
        stats = done.stats
        counts = f"{stats.accepted}/{stats.drafted}" if stats.drafted is not None else "-"
        out.append((stats.tokens_per_second or 0.0, stats.speculation or "off", counts))
    return out


def three_replies(
    target: Any, draft: Any, tokens: int, sampled: bool, label: str, engine: str = "llama.cpp"
) -> str:
    rows = []
    results: dict[str, list[tuple[float, str, str]]] = {}
    for name, settings in (
        ("off", {}),
        ("--speculate draft", {"speculate": "draft", "draft_model": str(draft)}),
        ("auto (a draft given)", {"draft_model": str(draft)}),
    ):
        if engine == "llama.cpp":
            backend = backend_for(target, **settings)
        else:
            backend = transformers_for(**settings)
        results[name] = chat(backend, tokens, sampled)
        backend.unload()
        print(name, results[name], flush=True)
    base = sum(r for r, _, _ in results["off"]) / 3
    for name, replies in results.items():
        mean = sum(r for r, _, _ in replies) / len(replies)
        shown = " · ".join(
            f"{r:.1f}" + (f" ({counts} kept)" if what != "off" else " (off)")
            for r, what, counts in replies
        )
        rows.append([name, shown, f"{mean / base:.2f}×"])
    return table([label, "replies 1, 2, 3: tok/s", "÷ off"], rows)


def useless_draft(shape: str = "1b", tokens: int = 64) -> str:
    import random_gguf

    return three_replies(
        random_gguf.make(shape),
        smollm_gguf(),
        tokens,
        sampled=True,
        label=f"random {shape.upper()} target (sampled: noise), demo model as draft",
    )


def big(shape: str, tokens: int) -> None:
    """Part 2 alone, on a bigger random target: its own section."""
    table_ = useless_draft(shape, tokens)
    body = (
        f"The random-weight {shape.upper()} Llama (benchmarks/random_gguf.py) with the demo "
        f"model (135M) as its draft: three {tokens}-token replies in one chat, sampled at "
        "temperature 1 (seeds 0, 1, 2; noise no draft can guess), the end of text ignored; "
        "without speculation, with `--speculate draft`, and with auto (the first reply its "
        "baseline, the second with the draft, then its decision).\n\n" + table_
    )
    write_section(
        f"speculation-{shape}", f"Speculative decoding: a useless draft at {shape.upper()}", body
    )


def own_draft() -> str:
    return three_replies(
        smollm_gguf(), smollm_gguf(), 200, sampled=False, label="demo model as its own draft"
    )


def transformers_own_draft() -> str:
    return three_replies(
        smollm_folder(),
        smollm_folder(),
        120,
        sampled=False,
        label="demo model as its own draft (transformers)",
        engine="transformers",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", help="only a useless draft on this random shape (7b)")
    parser.add_argument("--tokens", type=int, default=24, help="tokens a reply with --big")
    opts = parser.parse_args()
    os.environ["VICUNA_TUI_HOME"] = tempfile.mkdtemp(prefix="speculation-bench-")
    if opts.big:
        big(opts.big, opts.tokens)
        return
    # The llama.cpp parts first: once torch has set its OpenMP threads in this process,
    # llama.cpp's (the same libgomp) decode at less than half their speed.
    llamacpp_ngram = ngram(opts.runs)
    useless, own = useless_draft(), own_draft()
    body = (
        "**n-gram speculation** (`--speculate ngram`: llama.cpp's NGRAM_SIMPLE; no extra "
        "model). SmolLM2-135M-Instruct Q4_1 on this CPU, greedy, up to 400 new tokens; "
        f"without and with take turns, medians (min–max) of {opts.runs}.\n\n"
        + llamacpp_ngram
        + "\n\nThe replay row asks for the story again, handing the engine the story "
        "written without speculation as the reply it replaces (as replay, regenerate and "
        "an edit sent again do); llama.cpp cannot draft from it (its n-gram pool is set "
        "at load), so only the prompt is looked up there.\n\nThe same on "
        "**transformers** (its float32 safetensors; n-gram drafts are checked in one "
        "forward: prompt lookup decoding, which there also drafts from the reply being "
        "replaced), up to 200 new tokens:\n\n"
        + ngram(opts.runs, "transformers")
        + "\n\nSampled on **transformers** (temperature 0.7, the run's seed): speculative "
        "sampling keeps each drafted token with the probability the sampler gives it, so "
        "the replies come from the same distribution but not byte for byte the same as "
        "without:\n\n"
        + ngram(opts.runs, "transformers", sampled=True)
        + "\n\nA **draft model on transformers**: the demo model as its own draft, three "
        "greedy 120-token replies to the story prompt in one chat (every guess right, each "
        "costing a step of a model as big as the model):\n\n"
        + transformers_own_draft()
        + "\n\n**A draft that cannot help, and auto**: three 64-token replies in one chat "
        "(the end of text ignored), sampled at temperature 1 (seeds 0, 1, 2; greedy, this "
        "random model repeats one token, which any draft guesses); auto writes the first "
        "without speculation (its baseline), the second with the draft, then decides.\n\n"
        + useless
        + "\n\n**A draft as big as the model**: every guess right, but each costs as much "
        "as the model's own step (greedy, 200 tokens a reply):\n\n" + own
    )
    write_section("speculation", "Speculative decoding", body)


if __name__ == "__main__":
    main()
