"""Decode threads chosen by measurement (engine/threads.py): the load read from
/proc/stat, the rule, and a real model whose threads follow a busy process beside it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vicuna_tui.engine.events import ChatRequest, ReplyDone
from vicuna_tui.engine.llamacpp.backend import LlamaCppBackend
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.engine.threads import (
    CpuLoad,
    ThreadPlanner,
    cpu_cores,
    free_cores,
    sleeping_waits_pay,
)

LINUX = Path("/proc/stat").exists()


def test_free_cores_counts_a_core_busy_more_than_half_the_time_as_taken() -> None:
    assert free_cores(2, 0.0) == 2
    assert free_cores(2, 0.4) == 2
    assert free_cores(2, 0.6) == 1
    assert free_cores(2, 1.0) == 1
    assert free_cores(2, 3.0) == 1  # never none
    assert free_cores(8, 2.7) == 5
    assert free_cores(2, None) == 1  # no way to tell: one core left free


def test_sleeping_waits_only_for_models_with_large_layers() -> None:
    demo = 98 * 2**20  # the demo GGUF: 30 layers of about 3 MB
    assert not sleeping_waits_pay(demo, 30)
    assert not sleeping_waits_pay(232 * 2**20, 24)  # a 500M Q4_0: sleeping costs 26%
    assert sleeping_waits_pay(660 * 2**20, 22)  # a 1B Q4_0
    assert sleeping_waits_pay(3872 * 2**20, 32)  # a 7B Q4_0


def test_the_load_is_the_machines_busy_time_less_our_own(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")

    def write(busy: int, idle: int) -> None:
        stat.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0\n")

    write(1000, 1000)
    load = CpuLoad(stat)
    start = load.read()
    time.sleep(0.4)
    write(1000 + int(0.4 * hz), 1000 + int(0.4 * hz))  # one core busy elsewhere
    busy = load.busy_elsewhere()
    assert start is not None and busy is not None and 0.8 < busy <= 1.05
    assert CpuLoad(tmp_path / "missing").busy_elsewhere() is None


@contextlib.contextmanager
def busy_process() -> Iterator[None]:
    """One CPU hog beside us, killed by its PID."""
    process = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        yield
    finally:
        process.kill()
        process.wait()


@pytest.mark.skipif(not LINUX, reason="the load is read from /proc/stat")
def test_a_busy_process_beside_us_takes_a_core() -> None:
    with busy_process():
        time.sleep(0.3)
        busy = CpuLoad().sample(0.3)
        planner = ThreadPlanner(None, adaptive=True, cores=2)
        fixed = ThreadPlanner(3, adaptive=True, cores=2)
    planner.close()
    assert busy is not None and busy > 0.6
    assert planner.current.threads == 1
    assert "busy elsewhere" in planner.current.describe()
    assert fixed.current.threads == 3  # --threads


@pytest.mark.skipif(
    not LINUX or cpu_cores() < 2, reason="needs /proc/stat and two cores to choose between"
)
def test_llamacpp_decode_threads_follow_the_load(smollm_gguf: Path) -> None:
    """The real GGUF: its replies decode on the cores free at their start, and llama.cpp
    is rebuilt when that number changes; the reply says how many it used."""
    already = CpuLoad().sample(0.5)
    if already is None or already > 0.3:
        pytest.skip(f"the machine is busy already ({already} cores): no change to observe")
    backend = LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf), device="cpu"))
    info = backend.load()
    cores = cpu_cores()
    try:
        assert info.threads == cores  # nothing else runs here
        first = ask(backend, "Say hi.")
        assert first.stats.threads == cores
        with busy_process():
            time.sleep(1.0)  # the load of the last second is what counts
            loaded = ask(backend, "What is the capital of France?")
        assert loaded.stats.threads == cores - 1
        assert loaded.finish_reason == "length" and loaded.text  # the rebuilt model answers
        time.sleep(1.2)
        idle = ask(backend, "What is the capital of France?")
        assert idle.stats.threads == cores
        assert idle.text == loaded.text  # greedy: the same reply on either thread count
    finally:
        backend.unload()


def test_fixed_threads_are_kept_whatever_the_load(smollm_gguf: Path) -> None:
    backend = LlamaCppBackend(LoadSettings(model_path=str(smollm_gguf), device="cpu", threads=1))
    try:
        assert backend.load().threads == 1
        with busy_process():
            time.sleep(0.6)
            assert ask(backend, "Say hi.").stats.threads == 1
    finally:
        backend.unload()


def ask(backend: LlamaCppBackend, text: str) -> ReplyDone:
    request = ChatRequest(
        turns=(("user", text),), generation=GenerationSettings(temperature=0, max_new_tokens=8)
    )
    done = [e for e in backend.generate(request, threading.Event()) if isinstance(e, ReplyDone)]
    return done[0]
