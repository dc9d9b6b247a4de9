"""Decode threads chosen by measurement, not by a fixed rule (BENCHMARKS.md: "Decode
threads").

What was measured on a 2-core machine decides the rule:

- On an idle machine every core decodes fastest: a 1B Q4_0 model gives 14.3 tok/s on
  2 threads against 8.2 on 1; the 135M demo model 125 against 54.
- With one other busy process, a decode thread that has to share its core stalls every
  barrier of the graph while the others spin waiting for it: 2 threads give 1.1 tok/s
  at 1B against 8.1 on 1 thread.
- OpenMP threads that sleep at a barrier instead of spinning (``OMP_WAIT_POLICY``
  passive) cost nothing when each layer is large (1B: 15.0 tok/s idle) and make every
  core the right choice under load too (8.4). On a small model a layer's work is
  shorter than waking a thread, so sleeping costs two thirds of the speed (demo: 37),
  and a quarter at 500M.

So: a model with large layers decodes on every core with sleeping waits, whatever the
load.  A small one decodes on the cores that other processes leave free, measured at
load and again before a reply (from ``/proc/stat``, less this process's own time), and
llama.cpp's context is rebuilt when that number changes: a fraction of a second for a
model this small.  The load is the last second's, read on a thread that wakes twice a
second; this process's own time is not counted, the TUI's drawing is.
``--threads N`` fixes the number.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Bytes of weights per layer from which sleeping waits are free (measured on 2 cores:
# 3.3 MB a layer loses 70% of the speed, 9.7 MB 26%, 30 MB nothing).
PASSIVE_LAYER_BYTES = 20 * 2**20
WAIT_POLICY = "OMP_WAIT_POLICY"
TICK = 0.5  # seconds between readings of the machine's load
RECENT = 0.3  # the newest reading at least this old starts the window of a choice
PROBE = 0.1  # seconds sampled when no reading is old enough yet
BUSY_FREE = 0.5  # a core busy more than half the time elsewhere is not free


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads() -> int:
    """One core left free: with every core busy, one other process cuts decode 3×."""
    return max(1, cpu_cores() - 1)


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    rule: str  # why: "fixed", "every core", "free cores"

    def describe(self) -> str:
        plural = "" if self.threads == 1 else "s"
        return f"{self.threads} thread{plural} ({self.rule})"


Reading = tuple[float, float, float]  # (monotonic time, machine busy s, own CPU s)


class CpuLoad:
    """How many cores other processes keep busy: the machine's busy time
    (``/proc/stat``, steal included) less this process's own CPU time, over the last
    second or so (a reading every ``TICK`` seconds, on a thread of its own once
    ``watch`` starts it)."""

    def __init__(self, stat: Path = Path("/proc/stat")) -> None:
        self._stat = stat
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._readings: collections.deque[Reading] = collections.deque(maxlen=4)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        first = self.read()
        if first is not None:
            self._readings.append(first)

    def read(self) -> Reading | None:
        try:
            with self._stat.open() as handle:
                fields = [int(value) for value in handle.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        if len(fields) < 5:
            return None
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        own = os.times()
        return time.monotonic(), busy / self._hz, own.user + own.system

    def watch(self) -> None:
        if self._watcher is None and self._readings:
            self._watcher = threading.Thread(target=self._tick, name="vicuna-load", daemon=True)
            self._watcher.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            reading = self.read()
            if reading is not None:
                self._readings.append(reading)

    def close(self) -> None:
        self._stop.set()

    @staticmethod
    def between(start: Reading, end: Reading) -> float | None:
        seconds = end[0] - start[0]
        if seconds <= 0:
            return None
        return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / seconds)

    def busy_elsewhere(self) -> float | None:
        """Cores busy with other work over the last second or so (None where the system
        does not say); samples ``PROBE`` seconds when no reading is old enough."""
        now = self.read()
        if now is None:
            return None
        older = [r for r in list(self._readings) if now[0] - r[0] >= RECENT]
        if not older:
            return self.sample()
        return self.between(older[-1], now)

    def sample(self, seconds: float = PROBE) -> float | None:
        start = self.read()
        time.sleep(seconds)
        end = self.read()
        if start is None or end is None:
            return None
        self._readings.append(end)
        return self.between(start, end)


def free_cores(cores: int, busy: float | None) -> int:
    """The cores left when each core busy elsewhere more than half the time is taken."""
    if busy is None:
        return max(1, cores - 1)  # no way to tell: leave one core for everything else
    return max(1, min(cores, cores - int(busy + 1 - BUSY_FREE)))


def sleeping_waits_pay(tensor_bytes: int, layers: int | None) -> bool:
    return tensor_bytes / max(1, layers or 1) >= PASSIVE_LAYER_BYTES


def openmp_loaded() -> bool:
    """Whether an OpenMP runtime is already in this process (it reads its settings
    once, when it loads)."""
    try:
        return "libgomp" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def use_sleeping_waits() -> bool:
    """Ask OpenMP for sleeping waits, unless the user chose a policy; True when they
    are (or will be) in force."""
    current = os.environ.get(WAIT_POLICY)
    if current is not None:
        return current.strip().lower() == "passive"
    if openmp_loaded():
        return False
    os.environ[WAIT_POLICY] = "passive"
    return True


class ThreadPlanner:
    """The decode threads for one loaded model: fixed, every core, or the cores free
    now (``adaptive``), measured before each reply."""

    def __init__(self, fixed: int | None, *, adaptive: bool, cores: int | None = None) -> None:
        self.cores = cores or cpu_cores()
        self.fixed = fixed
        self.adaptive = adaptive and fixed is None and self.cores > 1
        self.load = CpuLoad()
        if self.fixed is not None:
            self.current = ThreadChoice(self.fixed, "--threads")
        elif not self.adaptive:
            self.current = ThreadChoice(self.cores, "every core")
        else:
            self.current = self._choice(self.load.sample())
            self.load.watch()

    def _choice(self, busy: float | None) -> ThreadChoice:
        threads = free_cores(self.cores, busy)
        if threads == self.cores:
            return ThreadChoice(threads, "every core: the machine is idle")
        return ThreadChoice(threads, f"{self.cores - threads} of {self.cores} cores busy elsewhere")

    def before_reply(self) -> ThreadChoice | None:
        """A new choice when the load changed it; None to keep the current one."""
        if not self.adaptive:
            return None
        choice = self._choice(self.load.busy_elsewhere())
        if choice.threads == self.current.threads:
            return None
        self.current = choice
        return choice

    def close(self) -> None:
        self.load.close()
