"""The result record: one JSON line per (impl, workload, mode), with its provenance.

Versioned: `schema` 2 adds `op`, the work counts (`gbps`, `pct_bandwidth`), the L2 policy (`l2`) and the device's
measured ceilings (`env.peak_tflops`, `env.copy_gbps`); 3 adds `mode` (fwd, bwd or fwd_bwd) and `grad_err` (the
rel-L2 of every gradient checked); `clocks` (NVML's clocks and heat over the timed reps, null without NVML) is
optional within version 3: a reader that does not know it misreads no number (see `opbench.schema`). A line
without `schema` is version 1: an attention record from before ops existed, read as such (versions 1 and 2 are
forwards). This module is the one definition: the combine stage, `compare` and every test fixture read and write
records through it (the rules: `opbench.schema`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opbench.accuracy import Accuracy
from opbench.schema import DEFAULT_MODE, MODES, SCHEMA, record_mode, record_op
from opbench.stats import Latency
from opbench.suite import Workload

STATUSES = ("ok", "skipped", "error")
L2_POLICIES = ("cold", "hot")


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
    peak_tflops: float | None = None  # the device's measured bf16 matmul rate (pct_peak's denominator)
    copy_gbps: float | None = None  # the device's measured copy bandwidth (pct_bandwidth's denominator)

    def to_json(self) -> dict:
        return {
            "device": self.device, "sm": self.sm, "driver": self.driver, "cuda": self.cuda,
            "torch": self.torch, "python": self.python, "packages": dict(sorted(self.packages.items())),
            "peak_tflops": self.peak_tflops, "copy_gbps": self.copy_gbps,
        }

    @classmethod
    def from_json(cls, data: dict) -> Env:
        return cls(**{k: data[k] for k in ENV_FIELDS if k in data})  # type: ignore[arg-type]


ENV_FIELDS = ("device", "sm", "driver", "cuda", "torch", "python", "packages", "peak_tflops", "copy_gbps")


@dataclass(frozen=True)
class L2:
    """How the timed calls met the L2 cache. policy: cold (inputs come from memory) or hot (they may sit in L2);
    method: how that was arranged; copies: input sets rotated through; resident: the result implies more than
    the measured copy bandwidth, so it was (at least partly) served from L2 and is not a memory throughput."""

    policy: str
    method: str
    copies: int = 1
    resident: bool = False

    def to_json(self) -> dict:
        return {"policy": self.policy, "method": self.method, "copies": self.copies, "resident": self.resident}

    @classmethod
    def from_json(cls, data: dict) -> L2:
        return cls(policy=data["policy"], method=data["method"], copies=int(data.get("copies", 1)),
                   resident=bool(data.get("resident", False)))


@dataclass(frozen=True)
class Clocks:
    """The GPU's clocks and heat over the timed reps (opbench.clocks, through NVML): the lowest and highest SM clock
    seen while busy and its max (MHz), the memory clock (MHz), the highest temperature (C) and power (W), the
    throttle reasons seen; repeated: the first window was throttled and was timed again (these are the repeat's
    numbers); flagged: the window recorded was throttled (below 90 % of the max SM clock, or a counting reason)."""

    sm_mhz_min: int | None = None
    sm_mhz_max_seen: int | None = None
    sm_mhz_limit: int | None = None
    mem_mhz: int | None = None
    temp_c: float | None = None
    power_w: float | None = None
    throttle: list[str] = field(default_factory=list)
    repeated: bool = False
    flagged: bool = False

    def to_json(self) -> dict:
        return {"sm_mhz_min": self.sm_mhz_min, "sm_mhz_max_seen": self.sm_mhz_max_seen,
                "sm_mhz_limit": self.sm_mhz_limit, "mem_mhz": self.mem_mhz, "temp_c": self.temp_c,
                "power_w": self.power_w, "throttle": list(self.throttle), "repeated": self.repeated,
                "flagged": self.flagged}

    @classmethod
    def from_json(cls, data: dict) -> Clocks:
        return cls(**{k: data[k] for k in CLOCKS_FIELDS if k in data})


CLOCKS_FIELDS = ("sm_mhz_min", "sm_mhz_max_seen", "sm_mhz_limit", "mem_mhz", "temp_c", "power_w", "throttle",
                 "repeated", "flagged")


@dataclass(frozen=True)
class Record:
    """One (impl, workload, mode) result. status: ok (measured; `ok` says whether it was also correct) | skipped |
    error. mode: what was timed (fwd, bwd, fwd_bwd); grad_err: {gradient name: rel_l2} where gradients were checked
    (None is a non-finite one), `err` then being the worst of them."""

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
    gbps: float | None = None
    pct_bandwidth: float | None = None
    l2: L2 | None = None
    ok: bool | None = None
    err: Accuracy | None = None
    reason: str | None = None
    mode: str = DEFAULT_MODE
    grad_err: dict[str, float | None] | None = None
    clocks: Clocks | None = None  # NVML's view of the timed reps; None without NVML (CPU, no pynvml)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA,
            "op": self.wl.op,
            "mode": self.mode,
            "impl": self.impl,
            "wl": self.wl.to_json(),
            "lat_ms": self.lat_ms.to_json() if self.lat_ms else None,
            "compile_ms": self.compile_ms,
            "peak_bytes": self.peak_bytes,
            "tflops": self.tflops,
            "pct_peak": self.pct_peak,
            "gbps": self.gbps,
            "pct_bandwidth": self.pct_bandwidth,
            "l2": self.l2.to_json() if self.l2 else None,
            "ok": self.ok,
            "err": self.err.to_json() if self.err else None,
            "grad_err": dict(self.grad_err) if self.grad_err is not None else None,
            "tags": self.tags,
            "env": self.env.to_json(),
            "status": self.status,
            "reason": self.reason,
            "clocks": self.clocks.to_json() if self.clocks else None,  # last: added within schema 3
        }

    def to_line(self) -> str:
        """The JSON line; NaN/Inf are refused so every line is strict JSON."""
        return json.dumps(self.to_json(), allow_nan=False, sort_keys=False)

    @classmethod
    def from_json(cls, data: dict) -> Record:
        """A record from its JSON object (schema 1, 2 or 3); KeyError/ValueError naming what is wrong."""
        op = record_op(data)
        err = data.get("err")
        return cls(
            impl=data["impl"],
            wl=Workload.from_json(data["wl"], op),
            status=data["status"],
            tags=data.get("tags") or {},
            env=Env.from_json(data["env"]),
            lat_ms=Latency.from_json(data["lat_ms"]) if data.get("lat_ms") else None,
            compile_ms=data.get("compile_ms"),
            peak_bytes=data.get("peak_bytes"),
            tflops=data.get("tflops"),
            pct_peak=data.get("pct_peak"),
            gbps=data.get("gbps"),
            pct_bandwidth=data.get("pct_bandwidth"),
            l2=L2.from_json(data["l2"]) if data.get("l2") else None,
            ok=data.get("ok"),
            err=Accuracy(err["max_abs"], err["rel_l2"], err["tol"], bool(data.get("ok")), err["rel_l2"] is not None)
            if err
            else None,
            reason=data.get("reason"),
            mode=record_mode(data),
            grad_err=dict(data["grad_err"]) if data.get("grad_err") is not None else None,
            clocks=Clocks.from_json(data["clocks"]) if isinstance(data.get("clocks"), dict) else None,
        )

