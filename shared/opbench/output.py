"""Files a job leaves in $ORCH_OUT: results.jsonl (one line per workload, flushed as it comes) and skipped.txt."""

from __future__ import annotations

from pathlib import Path

from opbench.record import Record

RESULTS = "results.jsonl"
SKIPPED = "skipped.txt"


class ResultsWriter:
    """Writes records to results.jsonl, each flushed at once so a job killed mid-suite keeps what it measured."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / RESULTS

    def __enter__(self) -> ResultsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", encoding="utf-8")
        return self

    def write(self, record: Record) -> None:
        self._fh.write(record.to_line() + "\n")
        self._fh.flush()

    def __exit__(self, *exc) -> None:
        self._fh.close()


def write_skipped(out_dir: Path, records: list[Record], reason: str) -> None:
    """One skipped record per workload, and the one-line reason in skipped.txt."""
    with ResultsWriter(out_dir) as results:
        for record in records:
            results.write(record)
    (Path(out_dir) / SKIPPED).write_text(reason.replace("\n", " ").strip() + "\n", encoding="utf-8")


def summary_line(record: Record) -> str:
    """A human line for the job's log."""
    mode = "" if record.mode == "fwd" else f" [{record.mode}]"
    head = f"{record.impl} {record.wl.name}{mode}:"
    if record.status != "ok":
        return f"{head} {record.status}: {record.reason}"
    lat, err = record.lat_ms, record.err
    assert lat is not None, "an ok record has a latency"
    if record.wl.spec.memory_bound and record.gbps is not None:
        rate = f"{record.gbps:.1f} GB/s"
        pct = f" ({record.pct_bandwidth:.1f}% of copy bandwidth)" if record.pct_bandwidth is not None else ""
        pct += " L2-resident" if record.l2 and record.l2.resident else ""
    else:
        rate = f"{record.tflops:.2f} TFLOP/s" if record.tflops is not None else "-"
        pct = f" ({record.pct_peak:.1f}% of peak)" if record.pct_peak is not None else ""
    rel = f"{err.rel_l2:.2e}" if err and err.rel_l2 is not None else "n/a"
    verdict = "ok" if record.ok else "WRONG"
    return (
        f"{head} p50 {lat.p50:.4f} ms [{lat.mode}, {lat.reps} reps, p10 {lat.p10:.4f} p90 {lat.p90:.4f}] "
        f"{rate}{pct} first call {record.compile_ms:.1f} ms, rel_l2 {rel} {verdict}"
    )
