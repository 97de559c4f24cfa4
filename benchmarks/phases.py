"""Where a run's time went, from its manifests: per run (one artifacts folder each) the wall time from the first
job's launch to the last job's end, and each phase summed over its GPU jobs — process start to harness ready, the
wait for the GPU, the device ceilings, per workload inputs, reference, first call (compile), warm-up, settle, reps,
cold reps, check — and what is left of the processes' wall time (exit, and jobs without the harness's phases); and
the stored references' process (its wall time and how long it held the GPU), made once per run and suite.

    python benchmarks/phases.py BEFORE_ARTIFACTS AFTER_ARTIFACTS [--suite seed]

Side by side, so a change to the scheduling (the pipelined start) or to the harness's steps shows as seconds moved
between columns. The GPU-busy and idle fractions of each run: scripts/gpu_timeline.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STEPS = ("inputs_s", "reference_s", "first_call_s", "warmup_s", "setup_s", "settle_s", "reps_s", "cold_s", "check_s")
ROWS = ("wall_s", "jobs", "run_s", "start_s", "gate_wait_s", "ceilings_s", *STEPS, "rest_s", "refset_run_s",
        "refset_held_s")
REFERENCES = ".references"  # the run's stored references (orchestrator/run/references.py): not a job, its own rows


def breakdown(artifacts: Path, suite: str | None) -> dict[str, float]:
    """The run's phases summed over its committed GPU jobs (those that held a GPU or the host's timing slot)."""
    total = dict.fromkeys(ROWS, 0.0)
    starts, ends = [], []
    for path in sorted(artifacts.glob("*/*/manifest.json")):
        m = json.loads(path.read_text())
        ph = m.get("phases") or {}
        if ph.get("lock") is None or (suite and m.get("inputs", {}).get("workloads", {}).get("name") != suite):
            continue
        starts.append(m["started"])
        ends.append(m["finished"])
        if m.get("name") == REFERENCES:  # made once beside the first job: its process, and its hold of the GPU
            held = ph.get("held") or [0.0, 0.0]
            total["refset_run_s"] += float(ph.get("run_s") or 0.0)
            total["refset_held_s"] += float(held[1] - held[0])
            continue
        h = ph.get("harness") or {}
        row = dict.fromkeys(ROWS, 0.0)
        row["jobs"] = 1
        row["run_s"] = float(ph.get("run_s") or 0.0)
        row["start_s"] = float(h.get("ready_s") or 0.0)
        row["gate_wait_s"] = float(h.get("gate_wait_s") or 0.0)
        row["ceilings_s"] = float(h.get("ceilings_s") or 0.0)
        for modes in (h.get("workloads") or {}).values():
            for steps in modes.values():
                for k in STEPS:
                    row[k] += float(steps.get(k) or 0.0)
        row["rest_s"] = row["run_s"] - sum(row[k] for k in ("start_s", "gate_wait_s", "ceilings_s", *STEPS))
        for k in ROWS:
            total[k] += row[k]
    if not starts:
        raise SystemExit(f"error: {artifacts}: no committed GPU job with phases")
    total["wall_s"] = max(ends) - min(starts)
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", type=Path, nargs="+")
    ap.add_argument("--suite")
    args = ap.parse_args(argv)
    runs = [breakdown(a, args.suite) for a in args.artifacts]
    names = [str(a) for a in args.artifacts]
    width = max(12, *(len(n) for n in names))
    print(f"{'phase (s, summed over jobs)':28}" + "".join(f"{n[-width:]:>{width + 2}}" for n in names))
    for k in ROWS:
        fmt = (lambda v: f"{int(v):>{width + 2}}") if k == "jobs" else (lambda v: f"{v:>{width + 2}.1f}")
        print(f"{k:28}" + "".join(fmt(r[k]) for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
