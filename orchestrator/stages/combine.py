# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "matplotlib", "jinja2"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = false
# timeout = 600
# tags = { family = "stage" }
# ///
"""The combine stage: merge every upstream's result records into latency.csv, one SVG chart per op, chart group
and kind under charts/, report.html and summary.txt (run by the orchestrator as a job; same input -> same bytes).

Reads ORCH_UPSTREAMS (a JSON file: name -> op, status, reason, key, entry folder, tags, log tail) and the `*.jsonl`
files each upstream's manifest lists (with matching sha256; any other file is named in a warning and not read),
through the harness's record schema (opbench.schema). ORCH_BASELINE names the speedup charts' baseline (default
torch_math; an op without it is compared with its torch eager impl). Malformed lines are reported as file:line
(stderr and warnings.txt) and skipped; upstreams that failed or were not run still get a row and a place in the
report, so nothing vanishes. Charts are drawn by matplotlib, the page by a Jinja2 template.
"""

from __future__ import annotations

import atexit
import csv
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
if "MPLCONFIGDIR" not in os.environ:  # matplotlib's config and font cache: this run's own, never under $HOME
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="combine-matplotlib-")
    atexit.register(shutil.rmtree, os.environ["MPLCONFIGDIR"], True)

from opbench import ops  # noqa: E402

import report_figures  # noqa: E402 - the sibling modules live beside this script
import report_page  # noqa: E402
import report_plot  # noqa: E402
import report_text  # noqa: E402
from report_model import DEFAULT_BASELINE, build  # noqa: E402
from report_records import Rec, Upstream, load_upstreams  # noqa: E402


def _field_columns() -> list[tuple[str, str]]:
    """(field, column) for every op's workload fields, in the registry's order (attention's come first)."""
    seen: dict[str, str] = {}
    for name in ops.NAMES:
        for f in ops.get(name).fields:
            seen.setdefault(f.name, f.label or f.name)
    return list(seen.items())


FIELDS = _field_columns()
COLUMNS = [
    "Implementation", "Impl ID", "Op", "Mode", "Workload", *(c for _, c in FIELDS), "Dtype",
    "Mean (ms)", "P10 (ms)", "P50 (ms)", "P90 (ms)", "Reps", "Timing", "L2", "Peak Mem (MB)", "Backend", "Family",
    "TFLOP/s", "% of peak", "GB/s", "% of bandwidth", "L2-resident", "ok", "rel_l2", "Spread", "Unstable", "status",
    "reason", "Clocks",
]


def _num(value, scale=1.0, digits=4):
    return "" if value is None else round(value * scale, digits)


def _sig(value, digits=4):
    """Significant digits, so a CPU's 0.0041 TFLOP/s is not written as 0.0."""
    return "" if value is None else float(f"{value:.{digits}g}")


def row_of(r: Rec) -> dict:
    sh, lat, tags = r.shape, r.lat, r.tags
    return {
        "Implementation": r.impl, "Impl ID": r.upstream, "Op": r.op, "Mode": r.mode if r.workload else "",
        "Workload": r.workload, **{c: sh.get(f, "") for f, c in FIELDS}, "Dtype": sh.get("dtype", ""),
        "Mean (ms)": _num(lat.get("mean")), "P10 (ms)": _num(lat.get("p10")), "P50 (ms)": _num(lat.get("p50")),
        "P90 (ms)": _num(lat.get("p90")), "Reps": "" if r.reps is None else r.reps, "Timing": r.timing,
        "L2": r.l2.get("policy", ""), "Peak Mem (MB)": _num(r.peak_bytes, 1e-6, 2), "Backend": tags.get("backend", ""),
        "Family": tags.get("family", ""), "TFLOP/s": _sig(r.tflops), "% of peak": _sig(r.pct_peak, 3),
        "GB/s": _sig(r.gbps), "% of bandwidth": _sig(r.pct_bandwidth, 3), "L2-resident": r.resident if r.l2 else "",
        "ok": "" if r.ok is None else r.ok, "rel_l2": _num(r.rel_l2, 1, 6), "Spread": _num(r.spread, 1, 3),
        "Unstable": "" if r.spread is None else r.unstable, "status": r.status, "reason": r.reason,
        "Clocks": "" if r.clocks_flagged is None else "flagged" if r.clocks_flagged else "ok",
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
            rec = Rec(u.name, u.shown_as, "", "", status=status, reason=reason, op=u.op, tags=u.tags)
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
    charts = {sec.key: report_figures.section_charts(sec, model.device) for sec in model.sections}
    write(out, "latency.csv", csv_text(upstreams))
    (out / "charts").mkdir(exist_ok=True)
    svgs = {}
    total = sum(1 + (d is not None) for pairs in charts.values() for _, d in pairs)
    done = 0
    for pairs in charts.values():
        for c, d in pairs:
            for chart in (c, d):
                if chart is None:
                    continue
                root = report_plot.svg_of(chart)
                write(out / "charts", f"{chart.name}.svg", report_plot.file_text(root))
                svgs[chart.name] = report_plot.inline(root, chart.name)
                done += 1
                if done % 10 == 0 or done == total:
                    print(f"combine: drew {done}/{total} charts", file=sys.stderr, flush=True)
    write(out, "report.html", report_page.page(model, charts, svgs, warnings))
    write(out, "summary.txt", report_text.summary(model, len(warnings)))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    write(out, "warnings.txt", "".join(w + "\n" for w in warnings))
    rows = sum(max(len(u.records), 1) for u in upstreams)
    print(f"combined {rows} rows from {len(upstreams)} jobs into {out / 'latency.csv'}, "
          f"{len(model.series)} impls of {len(model.sections)} ops charted in {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
