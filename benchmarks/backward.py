"""The training modes' figures from a results folder: attention backward (and forward+backward) TFLOP/s per impl on
the `kernel` suite at D=128, S 4096 and 8192, causal and not, with our Triton kernel against SDPA FLASH (goal: >=
at S >= 4096) and flash_attn4 (moonshot: >= 80 %); per family, the best impl's backward GB/s and % of the measured
copy bandwidth on `large`, and each impl's ratio to it.

    python benchmarks/backward.py results/h200          # reads every *.jsonl under it (records of any mode)

Records are read with the harness's own reader (opbench.record.Record.from_json); only correct, measured results
count. The FLOP and byte counts are the harness's (`Op.work(wl, mode)`), already in each record.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "shared"))

from opbench import ops  # noqa: E402
from opbench.record import Record  # noqa: E402

FAMILIES = ("rms_norm", "layer_norm", "rotary", "swiglu")
TRAINING = ("bwd", "fwd_bwd")


def load(folder: Path) -> dict:
    """(op, suite, mode) -> impl -> {workload: record} for every good record under folder (file stem = suite)."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    for path in sorted(folder.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            data = json.loads(line)
            if data.get("status") != "ok":
                continue
            rec = Record.from_json(data)
            if rec.ok:
                suite = path.stem.split(".")[0]  # <suite>.jsonl, or <suite>.<modes>.jsonl (collect_results.py)
                out[(rec.wl.op, suite, data.get("mode", "fwd"))][rec.impl][rec.wl.name] = rec
    return out


def attention(data) -> list[str]:
    lines = []
    for mode in ("fwd", *TRAINING):
        impls = data.get(("attention", "kernel", mode), {})
        names = sorted({wl for recs in impls.values() for wl, r in recs.items() if r.wl.fields.get("head_dim") == 128})
        lines.append(f"\n## attention `kernel` suite, D=128, mode {mode}: TFLOP/s")
        if not names:
            lines.append("no results")
            continue
        lines.append("| impl | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for impl in sorted(impls, key=lambda i: -max((r.tflops or 0) for r in impls[i].values())):
            cells = [f"{impls[impl][n].tflops:.0f}" if n in impls[impl] and impls[impl][n].tflops else "—" for n in names]
            lines.append(f"| {impl} | " + " | ".join(cells) + " |")
        ours = impls.get("triton_flash", {})
        for other, goal in (("torch_flash", 1.0), ("flash_attn4", 0.8)):
            theirs = impls.get(other, {})
            shared = [n for n in names if n in ours and n in theirs]
            if not shared:
                lines.append(f"triton_flash vs {other}: no workload in common")
                continue
            ratios = {n: ours[n].tflops / theirs[n].tflops for n in shared}
            met = all(r >= goal for r in ratios.values())
            lines.append(f"triton_flash / {other}: " + ", ".join(f"{n} {r:.2f}" for n, r in ratios.items())
                         + f" (goal >= {goal:.2f} everywhere: {'met' if met else 'NOT met'})")
    return lines


def families(data) -> list[str]:
    lines = []
    for mode in TRAINING:
        for op in FAMILIES:
            large = data.get((op, "large", mode), {})
            lines.append(f"\n## {ops.get(op).title} ({op}), `large`, mode {mode}")
            if not large:
                lines.append("no results")
                continue
            bw = next(iter(next(iter(large.values())).values())).env.copy_gbps
            best_of = {impl: max(r.gbps for r in recs.values() if r.gbps) for impl, recs in large.items()}
            top = max(best_of, key=best_of.get)
            lines.append(f"best impl {top}: {best_of[top]:.0f} GB/s = {100 * best_of[top] / bw:.1f} % of the "
                         f"measured copy ({bw:.0f} GB/s)")
            lines.append("| impl | best GB/s | % of copy | ratio to best |")
            lines.append("|---|---|---|---|")
            for impl in sorted(best_of, key=best_of.get, reverse=True):
                lines.append(f"| {impl} | {best_of[impl]:.0f} | {100 * best_of[impl] / bw:.1f} | "
                             f"{best_of[impl] / best_of[top]:.3f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    args = p.parse_args()
    data = load(args.results)
    print("\n".join(attention(data) + families(data)).strip())


if __name__ == "__main__":
    main()
