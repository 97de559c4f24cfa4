"""The timed reps of a workload, whatever is timed: warm-up, settle, adaptive reps, the cold single calls; and the
wall time of each step (OPBENCH_VERBOSE)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from opbench import clocks
from opbench.record import Clocks
from opbench.stats import median_stable

COLD_REPS = 25  # single-call replays after an L2 flush, for lat_ms.cold_p50


# The steps of a workload whose seconds $ORCH_OUT/phases.json records (opbench.phases), each 0.0 where not taken.
PHASE_KEYS = ("inputs_s", "reference_s", "first_call_s", "warmup_s", "setup_s", "settle_s", "reps_s", "cold_s",
              "check_s")


class Phases:
    """Wall time of each step of a workload, printed to stderr when OPBENCH_VERBOSE is set (where time goes), and
    by PHASE_KEYS in `seconds` for phases.json."""

    def __init__(self, label: str):
        self.label, self.t = label, time.perf_counter()
        self.spent: list[str] = []
        self.seconds = dict.fromkeys(PHASE_KEYS, 0.0)

    def mark(self, name: str, key: str | None = None) -> None:
        now = time.perf_counter()
        self.spent.append(f"{name} {now - self.t:.2f}s")
        if key is not None:
            self.seconds[key] += now - self.t
        self.t = now

    def report(self) -> None:
        if os.environ.get("OPBENCH_VERBOSE"):
            print(f"{self.label}: " + ", ".join(self.spent), file=sys.stderr)


def warm_up(backend, fn, args, seconds: float) -> None:
    """Call until `seconds` have passed (at least twice): clocks, caches, lazy plans settle before timing."""
    t0 = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - t0 < seconds:
        backend.call(fn, args)
        backend.sync()
        calls += 1


def timed_reps(timer, opts, cuda: bool, clock: Phases | None = None, window=None,
               probe=None) -> tuple[list[float], list[float] | None]:
    """A workload's recorded times: settle, adaptive reps, then the cold single calls (graph mode only; when a
    replay holds one call, its reps already are those). benchmarks/fidelity.py times through this too. clock, if
    given, is marked after each of the three (a repeated window adds to the same steps). window: an
    opbench.clocks.Window, started after the settle and stopped after the last rep (whatever happens). probe: the
    window's NVML probe, which lets the settle end early (see `settle`)."""
    mark = clock.mark if clock is not None else (lambda name, key=None: None)
    settle(timer.run, opts.settle(cuda), probe)
    mark("settle", "settle_s")
    if window is not None:
        window.start()
    try:
        raw = adaptive_reps(timer.run, opts, cuda)
        mark("reps", "reps_s")
        if timer.cold:
            cold = timer.cold(COLD_REPS)
            mark("cold", "cold_s")
            return raw, cold
        return raw, (raw if timer.mode == "graph" else None)
    finally:
        if window is not None:
            window.stop()


def clocked_reps(timer, opts, cuda: bool, probe, clock: Phases | None = None
                 ) -> tuple[list[float], list[float] | None, Clocks | None]:
    """timed_reps with the GPU's clocks read around the recorded reps (probe: opbench.clocks.probe_for; None, as on
    the CPU or without NVML: no reading). A throttled window is timed once more, and the repeat's times are the
    record's; the clocks say whether it was repeated and whether the repeat was throttled too (flagged)."""
    if probe is None:
        return (*timed_reps(timer, opts, cuda, clock), None)
    windows = [clocks.Window(probe)]
    raw, cold = timed_reps(timer, opts, cuda, clock, windows[0], probe)
    if clocks.throttled(windows[0].readings):
        windows.append(clocks.Window(probe))
        raw, cold = timed_reps(timer, opts, cuda, clock, windows[1], probe)
    return raw, cold, clocks.verdict([w.readings for w in windows])


SETTLE_MIN_S = 0.1  # with NVML, the settle may end after this long once the clocks are steady (see `settle`)


def settle(run_reps: Callable[[int], list[float]], seconds: float, probe=None) -> None:
    """Run the timed pattern itself, unrecorded, for `seconds`: the GPU's clocks leave idle (or the warm-up's
    host-gapped load) and reach the steady state of back-to-back work before the first recorded rep.

    With an NVML probe it ends as soon as SETTLE_MIN_S have passed and the GPU reads steady: two readings, the
    last taken at least SETTLE_MIN_S/2 after the first, both busy at ≥ clocks.SAG of the max clock with no throttle
    reason. A kernel that meets the power cap (its steady state) settles the full `seconds`, as without NVML; the
    window after the settle says whether the timed reps were throttled all the same."""
    t0 = time.perf_counter()
    first_steady: float | None = None
    while time.perf_counter() - t0 < seconds:
        run_reps(5)
        if probe is None:
            continue
        now = time.perf_counter()
        reading = probe.read()
        if reading is None or not clocks.steady(reading):
            first_steady = None
        elif first_steady is None:
            first_steady = now
        elif now - first_steady >= SETTLE_MIN_S / 2 and now - t0 >= SETTLE_MIN_S:
            return


def adaptive_reps(run_reps: Callable[[int], list[float]], opts, cuda: bool) -> list[float]:
    """Reps in batches until the median's 95% CI is within ±rel_ci, max_reps, or the time cap (≥ 5 reps)."""
    t0 = time.perf_counter()
    raw = run_reps(3)
    per_rep = max((time.perf_counter() - t0) / 3, 1e-6)  # wall time of a rep (flush and batching included)
    batch = int(min(100, max(5, 0.05 / per_rep)))  # about 50 ms per batch between checks of the stopping rule
    cap = opts.time_cap(cuda)
    while len(raw) < opts.max_reps:
        if median_stable(raw, opts.rel_ci, opts.min_reps):
            break
        if time.perf_counter() - t0 >= cap and len(raw) >= 5:
            break
        raw += run_reps(min(batch, opts.max_reps - len(raw)))
    return raw
