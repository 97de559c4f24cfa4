# /// script
# requires-python = ">=3.10"
# dependencies = []
#
# [tool.orchestrator]
# gpu = false
# timeout = 600
# tags = { family = "stage" }
# ///
"""The combine stage: merge every upstream's result records into latency.csv (run by the orchestrator as a job).

Reads ORCH_UPSTREAMS (a JSON file: name -> status, reason, key, entry folder, tags) and every `*.jsonl` in each
upstream's artifact folder. Malformed lines are reported as file:line and skipped; upstreams that failed or
were not run still get a row, so nothing vanishes.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

COLUMNS = [
    "Implementation", "Impl ID", "Workload", "Batch", "Seq Length", "Heads", "KV Heads", "Head Dim", "Dtype", "Causal",
    "Mean (ms)", "P10 (ms)", "P50 (ms)", "P90 (ms)", "Reps", "Timing", "Peak Mem (MB)", "Backend", "Family",
    "TFLOP/s", "% of peak", "ok", "rel_l2", "status", "reason",
]


def read_records(folder: Path, warn) -> list[dict]:
    """Every JSON object line of every *.jsonl under folder; bad lines are reported and skipped."""
    records = []
    for path in sorted(folder.rglob("*.jsonl")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                warn(f"{path}:{lineno}: not JSON ({exc.msg}); line skipped")
                continue
            if not isinstance(rec, dict):
                warn(f"{path}:{lineno}: not a JSON object; line skipped")
                continue
            records.append(rec)
    return records


def _num(value, scale=1.0, digits=4):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return round(value * scale, digits)


def row_of(name: str, rec: dict, tags: dict) -> dict:
    wl = rec.get("wl") if isinstance(rec.get("wl"), dict) else {}
    lat = rec.get("lat_ms") if isinstance(rec.get("lat_ms"), dict) else {}
    rtags = rec.get("tags") if isinstance(rec.get("tags"), dict) else tags
    err = rec.get("err") if isinstance(rec.get("err"), dict) else {}
    return {
        "Implementation": rec.get("impl", name), "Impl ID": name, "Workload": wl.get("name", ""),
        "Batch": wl.get("batch", ""), "Seq Length": wl.get("seq_len", ""), "Heads": wl.get("heads", ""),
        "KV Heads": wl.get("kv_heads", ""), "Head Dim": wl.get("head_dim", ""), "Dtype": wl.get("dtype", ""),
        "Causal": wl.get("causal", ""), "Mean (ms)": _num(lat.get("mean")), "P10 (ms)": _num(lat.get("p10")),
        "P50 (ms)": _num(lat.get("p50")), "P90 (ms)": _num(lat.get("p90")), "Reps": lat.get("reps", ""),
        "Timing": lat.get("mode", ""), "Peak Mem (MB)": _num(rec.get("peak_bytes"), 1e-6, 2),
        "Backend": rtags.get("backend", ""), "Family": rtags.get("family", ""), "TFLOP/s": _num(rec.get("tflops"), 1, 1),
        "% of peak": _num(rec.get("pct_peak"), 1, 1), "ok": rec.get("ok", ""), "rel_l2": _num(err.get("rel_l2"), 1, 6),
        "status": rec.get("status", "ok"), "reason": rec.get("reason", "") or "",
    }


def collect(upstreams: dict, warn) -> list[dict]:
    rows = []
    for name in sorted(upstreams):
        up = upstreams[name]
        tags = up.get("tags") or {}
        records = read_records(Path(up["entry"]), warn) if up.get("entry") else []
        if not records:
            status = up.get("status", "missing")
            reason = up.get("reason") or ("produced no records" if status == "ok" else "")
            rows.append(row_of(name, {"status": "error" if status == "ok" else status, "reason": reason}, tags))
        rows.extend(row_of(name, rec, tags) for rec in records)
    return rows


def main() -> int:
    out = Path(os.environ.get("ORCH_OUT", "."))
    upstreams = json.loads(Path(os.environ["ORCH_UPSTREAMS"]).read_text())
    warnings: list[str] = []
    rows = collect(upstreams, warnings.append)
    with open(out / "latency.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    (out / "warnings.txt").write_text("".join(w + "\n" for w in warnings))
    print(f"combined {len(rows)} rows from {len(upstreams)} jobs into {out / 'latency.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
