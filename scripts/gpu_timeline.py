"""From an artifacts folder's manifests: when each GPU job ran and on which GPU. Checks that GPUs worked side by
side and that no two jobs ever held one GPU at once; with --baseline, compares each impl x workload median
with another run (e.g. the same suite on one GPU).

    python scripts/gpu_timeline.py artifacts [--baseline artifacts-1gpu] [--suite seed]

Exit 1 when two jobs overlapped on one GPU. Used for issue "Several GPUs" on a multi-GPU host (local
`--gpus 0,1` or the Ray executor: Ray's `node_id` is part of a GPU's identity).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def gpu_jobs(artifacts: Path, suite: str | None) -> list[dict]:
    """One row per committed GPU job: name, (node, gpu) slots, start, end, entry folder."""
    rows = []
    for manifest_path in sorted(artifacts.glob("*/*/manifest.json")):
        m = json.loads(manifest_path.read_text())
        runner = m.get("runner") or {}
        gpus = runner.get("gpus") or []
        if not gpus or (suite and m.get("inputs", {}).get("workloads", {}).get("name") != suite):
            continue
        node = runner.get("node_id") or runner.get("host") or "local"
        rows.append({"name": m["name"], "slots": [(node, str(g)) for g in gpus], "start": m["started"],
                     "end": m["finished"], "entry": manifest_path.parent})
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
    print(f"\n{len(rows)} GPU jobs on {len(slots)} GPU(s); side by side for {side_by_side_seconds(rows):.1f} s "
          f"of {max(r['end'] for r in rows) - t0:.1f} s")
    bad = overlaps_on_one_gpu(rows)
    for a, b, slot in bad:
        print(f"OVERLAP on {slot}: {a} and {b}")
    if args.baseline:
        here, base = medians(args.artifacts, args.suite), medians(args.baseline, args.suite)
        print(f"\n{'impl':28} {'workload':14} {'p50 here':>10} {'baseline':>10} {'ratio':>7}")
        for key in sorted(here.keys() & base.keys()):
            print(f"{key[0]:28} {key[1]:14} {here[key]:10.4f} {base[key]:10.4f} {here[key] / base[key]:7.3f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
