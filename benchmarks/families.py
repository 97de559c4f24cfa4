"""The operation families' figures from a results folder: per op, the best impl's GB/s and % of the measured copy
bandwidth on `large`, each impl's ratio to it, and our Triton kernel against the best (goal >= 95 %) and against
torch eager on every workload (goal: never slower).

    python benchmarks/families.py results/h200            # reads <impl>/*.jsonl through opbench.record

Records are read with the harness's own reader (opbench.record.Record.from_json): one definition of a record.
Only correct (`ok`), measured, non-L2-resident results count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "shared"))

from opbench import ops  # noqa: E402
from opbench.record import Record  # noqa: E402
from opbench.schema import l2_resident  # noqa: E402

FAMILIES = ("rms_norm", "layer_norm", "rotary", "swiglu")
GOAL_BEST, GOAL_OURS = 90.0, 95.0


def load(folder: Path) -> dict[str, dict[str, dict[str, Record]]]:
    """op -> suite -> impl -> {workload: record} for every good forward record under folder (file stem = suite)."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for path in sorted(folder.rglob("*.jsonl")):
        suite = path.stem.split(".")[0] if path.stem != "results" else "?"
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            data = json.loads(line)
            if data.get("status") != "ok":
                continue  # skipped before running (no workload) or an error: nothing to count
            rec = Record.from_json(data)
            # the harness's current rule (opbench.schema.l2_resident), whatever flag the record was written with
            resident = l2_resident(rec.gbps, rec.env.copy_gbps, data.get("l2"))
            if rec.mode != "fwd":
                continue  # the forward's figures (a backward's are another table, never mixed in here)
            if rec.wl.op in FAMILIES and rec.status == "ok" and rec.ok and rec.gbps and not resident:
                out[rec.wl.op][suite][rec.impl][rec.wl.name] = rec
    return out


def report(data) -> str:
    lines = []
    for op in FAMILIES:
        large = data.get(op, {}).get("large", {})
        lines.append(f"\n## {ops.get(op).title} ({op}), `large`")
        if not large:
            lines.append("no results")
            continue
        bw = next(iter(next(iter(large.values())).values())).env.copy_gbps
        # an impl's figure: its best workload's GB/s (the one closest to the ceiling) and the geomean over all
        best_of = {impl: max(r.gbps for r in recs.values()) for impl, recs in large.items()}
        top = max(best_of, key=best_of.get)
        lines.append(f"measured copy bandwidth {bw:.0f} GB/s; best impl {top}: {best_of[top]:.0f} GB/s = "
                     f"{100 * best_of[top] / bw:.1f} % (goal >= {GOAL_BEST:.0f} %: "
                     f"{'met' if 100 * best_of[top] / bw >= GOAL_BEST else 'NOT met'})")
        lines.append("| impl | best GB/s | % of copy | ratio to best | geomean GB/s over workloads |")
        lines.append("|---|---|---|---|---|")
        for impl in sorted(best_of, key=best_of.get, reverse=True):
            g = statistics.geometric_mean([r.gbps for r in large[impl].values()])
            lines.append(f"| {impl} | {best_of[impl]:.0f} | {100 * best_of[impl] / bw:.1f} | "
                         f"{best_of[impl] / best_of[top]:.3f} | {g:.0f} |")
        ours, eager = f"{op}_triton", f"{op}_torch"
        if ours in best_of:
            ratio = 100 * best_of[ours] / best_of[top]
            lines.append(f"our Triton: {ratio:.1f} % of the best impl's GB/s (goal >= {GOAL_OURS:.0f} %: "
                         f"{'met' if ratio >= GOAL_OURS else 'NOT met'})")
        slower = []
        for suite, impls in sorted(data.get(op, {}).items()):
            for wl, rec in sorted(impls.get(ours, {}).items()):
                base = impls.get(eager, {}).get(wl)
                if base is not None and rec.lat_ms.p50 > base.lat_ms.p50:
                    slower.append(f"{suite}/{wl} ({rec.lat_ms.p50 * 1e3:.1f} µs vs eager {base.lat_ms.p50 * 1e3:.1f} µs)")
        compared = sum(1 for impls in data.get(op, {}).values() for wl in impls.get(ours, {}) if wl in impls.get(eager, {}))
        lines.append(f"our Triton slower than torch eager on {len(slower)} of {compared} workloads"
                     + (": " + ", ".join(slower) if slower else ""))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    args = p.parse_args()
    print(report(load(args.results)).strip())


if __name__ == "__main__":
    main()
