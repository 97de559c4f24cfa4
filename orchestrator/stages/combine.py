# /// script
# requires-python = ">=3.10"
# dependencies = []
#
# [tool.orchestrator]
# gpu = false
# timeout = 600
# tags = { family = "stage" }
# ///
"""The combine stage: merge every upstream's result records into latency.csv, three SVG charts, report.html and
summary.txt (run by the orchestrator as a job, standard library only, same input -> same bytes).

Reads ORCH_UPSTREAMS (a JSON file: name -> status, reason, key, entry folder, tags, log tail) and the `*.jsonl`
files each upstream's manifest lists (with matching sha256; any other file is named in a warning and not read);
ORCH_BASELINE names the speedup chart's baseline (default torch_math). Malformed lines are reported as file:line
(stderr and warnings.txt) and skipped; upstreams that failed or were not run still get a row and a place in the
charts' legends, so nothing vanishes. Charts come one per shape group (all fields but seq_len equal).
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report_charts  # noqa: E402 - the sibling modules live beside this script
import report_html  # noqa: E402
import report_svg  # noqa: E402
import report_text  # noqa: E402
from report_model import build  # noqa: E402
from report_records import Rec, Upstream, load_upstreams  # noqa: E402

DEFAULT_BASELINE = "torch_math"
COLUMNS = [
    "Implementation", "Impl ID", "Workload", "Batch", "Seq Length", "Heads", "KV Heads", "Head Dim", "Dtype", "Causal",
    "Mean (ms)", "P10 (ms)", "P50 (ms)", "P90 (ms)", "Reps", "Timing", "Peak Mem (MB)", "Backend", "Family",
    "TFLOP/s", "% of peak", "ok", "rel_l2", "Spread", "Unstable", "status", "reason",
]


def _num(value, scale=1.0, digits=4):
    return "" if value is None else round(value * scale, digits)


def _sig(value, digits=4):
    """Significant digits, so a CPU's 0.0041 TFLOP/s is not written as 0.0."""
    return "" if value is None else float(f"{value:.{digits}g}")


def row_of(r: Rec) -> dict:
    sh, lat, tags = r.shape, r.lat, r.tags
    return {
        "Implementation": r.impl, "Impl ID": r.upstream, "Workload": r.workload, "Batch": sh.get("batch", ""),
        "Seq Length": sh.get("seq_len", ""), "Heads": sh.get("heads", ""), "KV Heads": sh.get("kv_heads", ""),
        "Head Dim": sh.get("head_dim", ""), "Dtype": sh.get("dtype", ""), "Causal": sh.get("causal", ""),
        "Mean (ms)": _num(lat.get("mean")), "P10 (ms)": _num(lat.get("p10")), "P50 (ms)": _num(lat.get("p50")),
        "P90 (ms)": _num(lat.get("p90")), "Reps": "" if r.reps is None else r.reps, "Timing": r.mode,
        "Peak Mem (MB)": _num(r.peak_bytes, 1e-6, 2), "Backend": tags.get("backend", ""), "Family": tags.get("family", ""),
        "TFLOP/s": _sig(r.tflops), "% of peak": _sig(r.pct_peak, 3), "ok": "" if r.ok is None else r.ok,
        "rel_l2": _num(r.rel_l2, 1, 6), "Spread": _num(r.spread, 1, 3),
        "Unstable": "" if r.spread is None else r.unstable,
        "status": r.status, "reason": r.reason,
    }


def csv_text(upstreams: list[Upstream]) -> str:
    """One row per record; an upstream with no records gets one row carrying its status and reason."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for u in upstreams:
        if not u.records:
            status = "error" if u.status == "ok" else u.status
            reason = u.reason or ("produced no records" if u.status == "ok" else "")
            rec = Rec(u.name, u.name, "", "", status=status, reason=reason, tags=u.tags)
            writer.writerow(row_of(rec))
        writer.writerows(row_of(r) for r in u.records)
    return buf.getvalue()


def write(out: Path, name: str, text: str) -> None:
    (out / name).write_text(text, encoding="utf-8", newline="\n")


def main() -> int:
    out = Path(os.environ.get("ORCH_OUT", "."))
    src = os.environ.get("ORCH_UPSTREAMS")
    if not src:
        print("combine: ORCH_UPSTREAMS is not set; the orchestrator sets it to the upstreams JSON file", file=sys.stderr)
        return 2
    warnings: list[str] = []
    try:
        upstreams = load_upstreams(Path(src), warnings.append)
    except (OSError, ValueError) as exc:
        print(f"combine: {src}: cannot read the upstreams file ({exc})", file=sys.stderr)
        return 2
    model = build(upstreams, os.environ.get("ORCH_BASELINE") or DEFAULT_BASELINE)
    kinds = {"latency": report_charts.latency(model), "throughput": report_charts.throughput(model),
             "speedup": report_charts.speedup(model)}
    charts = [c for cs in kinds.values() for c in cs]
    write(out, "latency.csv", csv_text(upstreams))
    for kind, cs in kinds.items():
        write(out, f"{kind}.svg", report_svg.render_file(cs))
    write(out, "report.html", report_html.page(model, charts, warnings))
    write(out, "summary.txt", report_text.summary(model, len(warnings)))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    write(out, "warnings.txt", "".join(w + "\n" for w in warnings))
    rows = sum(max(len(u.records), 1) for u in upstreams)
    print(f"combined {rows} rows from {len(upstreams)} jobs into {out / 'latency.csv'}, "
          f"{len(model.series)} impls charted in {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
