"""From an artifacts folder's manifests: when each GPU job ran and on which GPU. Checks that GPUs worked side by
side and that no two jobs ever held one GPU at once; with --baseline, compares each impl x workload median
with another run (e.g. the same suite on one GPU).

    python scripts/gpu_timeline.py artifacts [--baseline artifacts-1gpu] [--suite seed]

A job that took its GPU when it asked for it (phases `gated`: started and checked first, orchestrator/run/gate.py)
counts from its `held` start to end; one that skipped before asking never held the GPU and is left out.
From the manifests' `phases` it also prints where the GPUs' time went: per job its env, lock wait, start-up,
held and timed seconds, and per run the busy fraction (the jobs' timed work: first call, warm-up, settle, reps,
cold calls) against the idle rest (held outside timed work, or held by no job), from the first job's env readying
to the last job's end. On a machine without a GPU the timed jobs' slot is `host` (the machine's timing slot).
The run's stored references (`.references`, made once per suite beside its first job) are rows of their own: their
hold of the GPU counts as held outside timed work, and they are not counted as jobs.

Exit 1 when two jobs overlapped on one GPU. Used for issue "Several GPUs" on a multi-GPU host (local
`--gpus 0,1` or the Ray executor: Ray's `node_id` is part of a GPU's identity).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def gpu_jobs(artifacts: Path, suite: str | None) -> list[dict]:
    """One row per committed GPU job (or one that held the host's timing slot): name, (node, gpu) slots, start,
    end, entry folder, phases (empty in manifests made before phases were recorded)."""
    rows = []
    for manifest_path in sorted(artifacts.glob("*/*/manifest.json")):
        m = json.loads(manifest_path.read_text())
        runner = m.get("runner") or {}
        phases = m.get("phases") or {}
        gpus = runner.get("gpus") or ([phases["lock"]] if phases.get("lock") == "host" else [])
        if not gpus or (suite and m.get("inputs", {}).get("workloads", {}).get("name") != suite):
            continue
        node = runner.get("node_id") or runner.get("host") or "local"
        start, end = m["started"], m["finished"]
        if phases.get("gated"):  # it took its GPU when it asked (orchestrator/run/gate.py): the hold is what counts
            if not phases.get("held"):
                continue  # skipped after its start and check: it never held the GPU
            start, end = phases["held"]
        rows.append({"name": m["name"], "slots": [(node, str(g)) for g in gpus], "start": start, "end": end,
                     "launched": m["started"], "entry": manifest_path.parent, "phases": phases})
    return rows


def overlaps_on_one_gpu(rows: list[dict]) -> list[tuple[str, str, tuple]]:
    """Pairs of jobs that held the same GPU at the same moment (must be empty)."""
    bad = []
    by_slot: dict[tuple, list[dict]] = {}
    for r in rows:
        for slot in r["slots"]:
            by_slot.setdefault(slot, []).append(r)
    for slot, jobs in by_slot.items():
        jobs.sort(key=lambda r: r["start"])
        bad += [(a["name"], b["name"], slot) for a, b in zip(jobs, jobs[1:]) if b["start"] < a["end"]]
    return bad


def side_by_side_seconds(rows: list[dict]) -> float:
    """Seconds during which jobs on two or more different GPUs were running at once."""
    events = sorted([(r["start"], 1) for r in rows] + [(r["end"], -1) for r in rows])
    busy, last, total = 0, None, 0.0
    for t, delta in events:
        if busy >= 2 and last is not None:
            total += t - last
        busy += delta
        last = t
    return total


REFERENCES = ".references"  # orchestrator/run/references.py: a suite's fp32 references, not a job
TIMED = ("first_call_s", "warmup_s", "settle_s", "reps_s", "cold_s")  # what keeps a GPU busy in phases.json


def timed_seconds(phases: dict) -> float | None:
    """A job's seconds of timed work, summed over its workloads and modes; None without the harness's phases."""
    harness = phases.get("harness")
    if not isinstance(harness, dict) or not isinstance(harness.get("workloads"), dict):
        return None
    return sum(float(steps.get(k) or 0.0) for modes in harness["workloads"].values() if isinstance(modes, dict)
               for steps in modes.values() if isinstance(steps, dict) for k in TIMED)


def gpu_time_lines(rows: list[dict]) -> list[str]:
    """Per job where its time went, then the run's GPU time split into busy (timed work) and idle (the rest)."""
    def num(r, k):
        v = r["phases"].get(k)
        return f"{v:8.2f}" if isinstance(v, (int, float)) else f"{'-':>8}"

    lines = [f"\n{'job':32} {'env s':>8} {'wait s':>8} {'start s':>8} {'held s':>8} {'timed s':>8} {'busy':>6}"]
    for r in sorted(rows, key=lambda r: r["start"]):
        held, timed = r["end"] - r["start"], timed_seconds(r["phases"])
        busy = f"{100 * timed / held:5.1f}%" if timed is not None and held > 0 else f"{'-':>6}"
        shown = f"{timed:8.2f}" if timed is not None else f"{'-':>8}"
        lines.append(f"{r['name']:32} {num(r, 'env_s')} {num(r, 'wait_s')} {num(r, 'start_s')} {held:8.2f} {shown} {busy}")
    first = min(min(r["start"] - float(r["phases"].get("wait_s") or 0.0), r["launched"])
                - float(r["phases"].get("env_s") or 0.0) for r in rows)
    wall = max(r["end"] for r in rows) - first
    slots = {s for r in rows for s in r["slots"]}
    total = wall * len(slots)
    busy = sum(timed_seconds(r["phases"]) or 0.0 for r in rows)
    held = sum((r["end"] - r["start"]) * len(r["slots"]) for r in rows)
    pct = (lambda x: 100 * x / total) if total > 0 else (lambda x: 0.0)
    lines.append(f"GPU time {total:.1f} s ({wall:.1f} s x {len(slots)} GPU(s)): busy {busy:.1f} s ({pct(busy):.1f} %), "
                 f"idle {total - busy:.1f} s ({pct(total - busy):.1f} %: held outside timed work {held - busy:.1f} s, "
                 f"held by no job {total - held:.1f} s)")
    unknown = [r["name"] for r in rows if timed_seconds(r["phases"]) is None and r["name"] != REFERENCES]
    if unknown:
        lines.append(f"({len(unknown)} job(s) without the harness's phases, their time counted idle: "
                     f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''})")
    return lines


def medians(artifacts: Path, suite: str | None) -> dict[tuple[str, str], float]:
    out = {}
    for r in gpu_jobs(artifacts, suite):
        for jsonl in r["entry"].glob("*.jsonl"):
            for line in jsonl.read_text().splitlines():
                rec = json.loads(line)
                if rec.get("status") == "ok" and rec.get("lat_ms"):
                    out[(rec["impl"], rec["wl"]["name"])] = rec["lat_ms"]["p50"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", type=Path)
    ap.add_argument("--baseline", type=Path, help="another run's artifacts (e.g. one GPU) to compare medians with")
    ap.add_argument("--suite", help="only jobs of this workload suite")
    args = ap.parse_args(argv)
    rows = gpu_jobs(args.artifacts, args.suite)
    if not rows:
        print(f"error: {args.artifacts}: no committed GPU job (manifest runner.gpus empty everywhere)", file=sys.stderr)
        return 2
    t0 = min(r["start"] for r in rows)
    for r in sorted(rows, key=lambda r: r["start"]):
        slots = ",".join(f"{node[:8]}:{gpu}" for node, gpu in r["slots"])
        print(f"{r['name']:32} {slots:14} {r['start'] - t0:8.1f} → {r['end'] - t0:8.1f} s")
    slots = {s for r in rows for s in r["slots"]}
    refsets = sum(1 for r in rows if r["name"] == REFERENCES)
    also = f" (and {refsets} stored-reference set(s))" if refsets else ""
    print(f"\n{len(rows) - refsets} GPU jobs on {len(slots)} GPU(s){also}; side by side for "
          f"{side_by_side_seconds(rows):.1f} s of {max(r['end'] for r in rows) - t0:.1f} s")
    bad = overlaps_on_one_gpu(rows)
    for a, b, slot in bad:
        print(f"OVERLAP on {slot}: {a} and {b}")
    print("\n".join(gpu_time_lines(rows)))
    if args.baseline:
        here, base = medians(args.artifacts, args.suite), medians(args.baseline, args.suite)
        print(f"\n{'impl':28} {'workload':14} {'p50 here':>10} {'baseline':>10} {'ratio':>7}")
        for key in sorted(here.keys() & base.keys()):
            print(f"{key[0]:28} {key[1]:14} {here[key]:10.4f} {base[key]:10.4f} {here[key] / base[key]:7.3f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
