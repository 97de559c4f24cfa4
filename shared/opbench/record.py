"""The result record: one JSON line per (impl, workload), with its provenance."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opbench.accuracy import Accuracy
from opbench.stats import Latency
from opbench.suite import Workload

STATUSES = ("ok", "skipped", "error")


@dataclass(frozen=True)
class Env:
    """Where a number was measured: device, its compute capability, driver, CUDA, torch, Python, packages."""

    device: str
    sm: str | None
    driver: str | None
    cuda: str | None
    torch: str | None
    python: str
    packages: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "device": self.device, "sm": self.sm, "driver": self.driver, "cuda": self.cuda,
            "torch": self.torch, "python": self.python, "packages": dict(sorted(self.packages.items())),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Env":
        return cls(**data)


@dataclass(frozen=True)
class Record:
    """One (impl, workload) result. status: ok (measured; `ok` says whether it was also correct) | skipped | error."""

    impl: str
    wl: Workload
    status: str
    tags: dict[str, Any]
    env: Env
    lat_ms: Latency | None = None
    compile_ms: float | None = None
    peak_bytes: int | None = None
    tflops: float | None = None
    pct_peak: float | None = None
    ok: bool | None = None
    err: Accuracy | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_json(self) -> dict:
        return {
            "impl": self.impl,
            "wl": self.wl.to_json(),
            "lat_ms": self.lat_ms.to_json() if self.lat_ms else None,
            "compile_ms": self.compile_ms,
            "peak_bytes": self.peak_bytes,
            "tflops": self.tflops,
            "pct_peak": self.pct_peak,
            "ok": self.ok,
            "err": self.err.to_json() if self.err else None,
            "tags": self.tags,
            "env": self.env.to_json(),
            "status": self.status,
            "reason": self.reason,
        }

    def to_line(self) -> str:
        """The JSON line; NaN/Inf are refused so every line is strict JSON."""
        return json.dumps(self.to_json(), allow_nan=False, sort_keys=False)

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        err = data.get("err")
        return cls(
            impl=data["impl"],
            wl=Workload.from_json(data["wl"]),
            status=data["status"],
            tags=data.get("tags") or {},
            env=Env.from_json(data["env"]),
            lat_ms=Latency.from_json(data["lat_ms"]) if data.get("lat_ms") else None,
            compile_ms=data.get("compile_ms"),
            peak_bytes=data.get("peak_bytes"),
            tflops=data.get("tflops"),
            pct_peak=data.get("pct_peak"),
            ok=data.get("ok"),
            err=Accuracy(err["max_abs"], err["rel_l2"], err["tol"], bool(data.get("ok")), err["rel_l2"] is not None)
            if err
            else None,
            reason=data.get("reason"),
        )
