"""Step times on a machine other processes may share -> tokens/s.

Every step is stamped with (wall time, this process's CPU seconds, the whole machine's busy seconds), so each
step knows what share of the machine other processes took while it ran. tokens/s comes from the quiet steps
when there are enough of them; on a GPU from the window between two device synchronisations. Rows repeated
in interleaved rounds report their median round.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from collections.abc import Callable

import numpy as np

QUIET = 0.10  # a step is "quiet" when other processes used at most this share of the machine's CPU during it
RECOMPILE_FACTOR = 20.0  # a timed GPU step this many times the median is a recompilation, not a step

Stamp = tuple[float, float, float]  # (wall, this process's CPU seconds, machine busy seconds)


def machine_busy() -> float:
    """Seconds the whole machine's CPUs have been busy since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [float(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def stamp() -> Stamp:
    return time.perf_counter(), time.process_time(), machine_busy()


def step_stamper(stamps: list[Stamp], warmup: int, total: int, cuda: bool = False) -> Callable[[], None]:
    """A callback run at the start of every step that appends a stamp to `stamps`. On a GPU the CPU runs ahead
    of the device, so the stamps that bound the timed window (the start of step `warmup` and of the last
    step) synchronise first."""
    def on_step() -> None:
        if cuda and len(stamps) in (warmup, total - 1):
            import torch

            torch.cuda.synchronize()
        stamps.append(stamp())

    return on_step


def step_others(marks: np.ndarray) -> np.ndarray:
    """Per step between consecutive stamps: the share of the machine's CPU used by other processes."""
    wall, mine, busy = (np.diff(marks[:, i]) for i in range(3))
    return np.clip((busy - mine) / np.maximum(wall * (os.cpu_count() or 1), 1e-9), 0.0, 1.0)


@dataclasses.dataclass
class StepTimes:
    """A worker's step times, split at `warmup`; `used` are the timed steps tokens/s is computed from."""

    seconds: np.ndarray  # every step's whole loop iteration (data, forward, backward, optimizer, logging)
    others: np.ndarray  # every step's share of the machine taken by other processes
    timed: np.ndarray
    timed_others: np.ndarray
    quiet: np.ndarray
    used: np.ndarray
    used_cpu: np.ndarray  # this process's CPU seconds in the used steps
    used_quiet: bool


def step_times(stamps: list[Stamp], warmup: int, all_quiet: bool = False) -> StepTimes:
    """The quiet timed steps when at least a quarter of them (and 3) are quiet, else every timed step.
    all_quiet: count every step as quiet (on a GPU other processes on the host's CPU are not what is measured)."""
    marks = np.asarray(stamps)
    seconds = np.diff(marks[:, 0])
    others = step_others(marks)
    timed, timed_others = seconds[warmup:], others[warmup:]
    cpu = np.diff(marks[:, 1])[warmup:]
    is_quiet = np.ones_like(timed, dtype=bool) if all_quiet else timed_others <= QUIET
    quiet = timed[is_quiet]
    use_quiet = len(quiet) >= max(3, len(timed) // 4)
    return StepTimes(seconds=seconds, others=others, timed=timed, timed_others=timed_others, quiet=quiet,
                     used=quiet if use_quiet else timed, used_cpu=cpu[is_quiet] if use_quiet else cpu,
                     used_quiet=use_quiet)


def gpu_rate(step_seconds: list[float], warmup: int, tokens_per_step: int) -> dict:
    """Throughput on a GPU: the timed window is bounded by device synchronisations, so the sum of its steps
    is exact, where a single step's time is not (the CPU runs ahead). Steps taking RECOMPILE_FACTOR x the
    median are torch.compile recompiling (a new size of the masked-position count, say) and are excluded and
    reported; the GPU may finish up to a step or two of queued work while the CPU compiles, so an exclusion
    can flatter the rate by that much."""
    timed = np.asarray(step_seconds[warmup:])
    slow = timed > RECOMPILE_FACTOR * np.median(timed)
    kept = timed[~slow]
    return {"tokens_per_s": float(tokens_per_step * len(kept) / kept.sum()),
            "tokens_per_s_all_steps": float(tokens_per_step * len(timed) / timed.sum()),
            "recompile_steps_excluded": int(slow.sum()), "recompile_seconds_excluded": float(timed[slow].sum())}


# --------------------------------------------------------------------------------------------- contention


def wait_quiet(limit_s: float) -> float:
    """Wait (up to limit_s) until the machine is idle over a 2 s window; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        b0, t0 = machine_busy(), time.perf_counter()
        time.sleep(2.0)
        if (machine_busy() - b0) / ((time.perf_counter() - t0) * (os.cpu_count() or 1)) <= QUIET:
            break
    return time.perf_counter() - start


def cpu_snapshot() -> tuple[float, float, float]:
    """(busy seconds of the whole machine, CPU seconds of finished children, wall time)."""
    busy = machine_busy()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, children.ru_utime + children.ru_stime, time.perf_counter()


def others_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """The fraction of the machine's CPU capacity used by processes other than the row's, while it ran."""
    busy = after[0] - before[0]
    mine = after[1] - before[1]
    capacity = (after[2] - before[2]) * (os.cpu_count() or 1)
    return max(0.0, min(1.0, (busy - mine) / max(capacity, 1e-9)))


# --------------------------------------------------------------------------------------------- rounds


def median_round(rounds: list[dict]) -> dict:
    """The round with the median tokens/s (the lower of the middle two for an even count), carrying every
    round's tokens/s in `round_tokens_per_s` (in round order)."""
    chosen = sorted(rounds, key=lambda r: r["tokens_per_s"])[(len(rounds) - 1) // 2]
    return {**chosen, "round_tokens_per_s": [r["tokens_per_s"] for r in rounds],
            "rounds": [r.get("round", i) for i, r in enumerate(rounds)]}


def round_ratios(ours: dict, theirs: dict) -> list[float]:
    """ours / theirs tokens/s for every round both rows completed."""
    a = dict(zip(ours.get("rounds", [0]), ours.get("round_tokens_per_s", [ours["tokens_per_s"]])))
    b = dict(zip(theirs.get("rounds", [0]), theirs.get("round_tokens_per_s", [theirs["tokens_per_s"]])))
    return [a[k] / b[k] for k in sorted(set(a) & set(b))]
