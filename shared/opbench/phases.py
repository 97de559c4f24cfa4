"""$ORCH_OUT/phases.json: where a job's time went, machine-readably — seconds from the process's start until the
harness was ready to measure (before it asked for its GPU), the wait for the GPU (gate_wait_s), the device
ceilings' measurement, and each workload's steps per mode (reps.PHASE_KEYS).
The orchestrator copies it into the manifest (`phases.harness`); it is no result file (results are `*.jsonl`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

PHASES = "phases.json"
FORMAT = 1
_IMPORTED = time.perf_counter()  # the fallback origin where /proc cannot say when the process started


def process_age() -> float:
    """Seconds since this process started: its start time in /proc/self/stat against /proc/uptime (clock ticks,
    10 ms), else since the harness was imported."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime; fields after `(comm)` start at 3
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


class PhaseLog:
    """phases.json, rewritten (atomically) after each workload so a job killed mid-suite keeps what it timed."""

    def __init__(self, out_dir: Path, ready_s: float, gate_wait_s: float = 0.0) -> None:
        self.path = Path(out_dir) / PHASES
        self.doc: dict = {"format": FORMAT, "ready_s": round(ready_s, 6), "gate_wait_s": round(gate_wait_s, 6),
                          "ceilings_s": 0.0, "workloads": {}}

    def ceilings(self, seconds: float) -> None:
        self.doc["ceilings_s"] = round(seconds, 6)
        self.write()

    def add(self, workload: str, mode: str, seconds: dict[str, float]) -> None:
        self.doc["workloads"].setdefault(workload, {})[mode] = {k: round(v, 6) for k, v in seconds.items()}
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(PHASES + ".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
