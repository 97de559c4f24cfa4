"""Reading the combine stage's inputs: the upstreams file, each upstream's manifest and its result records.

Every problem in the inputs (a line that is not JSON, a field of the wrong type) becomes one warning naming
file:line and is otherwise ignored, so a partial or damaged result never stops the report.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

SHAPE = ("batch", "seq_len", "heads", "kv_heads", "head_dim", "dtype", "causal")
LAT = ("mean", "p10", "p50", "p90", "min", "max", "std")


@dataclass(frozen=True)
class Rec:
    """One result record, every field checked: numbers are finite floats or None, text is str."""

    upstream: str
    impl: str
    workload: str
    where: str  # file:line it came from
    status: str = "ok"
    reason: str = ""
    shape: dict = field(default_factory=dict)
    lat: dict = field(default_factory=dict)  # LAT keys -> float | None
    reps: int | None = None
    mode: str = ""
    compile_ms: float | None = None
    peak_bytes: float | None = None
    tflops: float | None = None
    pct_peak: float | None = None
    ok: bool | None = None
    rel_l2: float | None = None
    max_abs: float | None = None
    tags: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    @property
    def p50(self) -> float | None:
        return self.lat.get("p50")

    @property
    def measured(self) -> bool:
        """A latency that can be plotted: status ok and a positive median."""
        return self.status == "ok" and self.p50 is not None and self.p50 > 0


@dataclass(frozen=True)
class Upstream:
    """One upstream job as the orchestrator reported it, with its manifest and records."""

    name: str
    status: str
    reason: str
    key: str | None
    cached: bool
    entry: str | None
    tags: dict
    log_tail: str
    manifest: dict
    records: tuple[Rec, ...]


class Checker:
    """Typed reads of one JSON object; a wrong type is warned about as where: field and read as missing."""

    def __init__(self, where: str, warn):
        self.where, self.warn = where, warn

    def obj(self, data: dict, key: str) -> dict:
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            self.warn(f"{self.where}: {key} is not an object; ignored")
        return value if isinstance(value, dict) else {}

    def num(self, data: dict, key: str, label: str = "") -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.warn(f"{self.where}: {label or key} is not a finite number ({value!r}); ignored")
            return None
        return float(value)

    def text(self, data: dict, key: str, default: str = "") -> str:
        value = data.get(key)
        if value is None:
            return default
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def to_rec(upstream: str, tags: dict, data: dict, where: str, warn) -> Rec:
    """A checked Rec from one parsed line; missing optional fields stay None."""
    c = Checker(where, warn)
    wl, lat, err = c.obj(data, "wl"), c.obj(data, "lat_ms"), c.obj(data, "err")
    stats = {k: c.num(lat, k, f"lat_ms.{k}") for k in LAT}
    raw = lat.get("raw")
    if raw is not None and not (isinstance(raw, list) and all(isinstance(x, (int, float)) for x in raw)):
        warn(f"{where}: lat_ms.raw is not a list of numbers; ignored")
    ok = data.get("ok")
    if ok is not None and not isinstance(ok, bool):
        warn(f"{where}: ok is not true/false ({ok!r}); ignored")
        ok = None
    status, reason = c.text(data, "status", "ok"), c.text(data, "reason")
    if status == "ok" and stats["p50"] is None:
        status, reason = "error", reason or "no lat_ms.p50 in the record"
    reps = c.num(lat, "reps")
    return Rec(
        upstream=upstream, impl=c.text(data, "impl", upstream) or upstream, workload=c.text(wl, "name", "?") or "?",
        where=where, status=status, reason=reason.strip(),
        shape={k: wl[k] for k in SHAPE if isinstance(wl.get(k), (str, int, float, bool))},
        lat=stats, reps=int(reps) if reps is not None else None, mode=c.text(lat, "mode"),
        compile_ms=c.num(data, "compile_ms"), peak_bytes=c.num(data, "peak_bytes"), tflops=c.num(data, "tflops"),
        pct_peak=c.num(data, "pct_peak"), ok=ok, rel_l2=c.num(err, "rel_l2", "err.rel_l2"),
        max_abs=c.num(err, "max_abs", "err.max_abs"), tags=c.obj(data, "tags") or tags, env=c.obj(data, "env"),
    )


def jsonl_files(folder: Path) -> list[Path]:
    """Every *.jsonl under folder, sorted, not following links and not looking into the orchestrator's _logs."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "_logs")
        found.extend(Path(dirpath, f) for f in filenames if f.endswith(".jsonl"))
    return sorted(found)


def read_jsonl(path: Path, warn) -> list[tuple[str, dict]]:
    """(file:line, object) for each good line of one file; bad lines are warned about and skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        warn(f"{path}: cannot read ({exc.strerror}); file skipped")
        return []
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            warn(f"{where}: not JSON ({getattr(exc, 'msg', exc)}); line skipped")
            continue
        if not isinstance(data, dict):
            warn(f"{where}: not a JSON object; line skipped")
            continue
        out.append((where, data))
    return out


def read_manifest(folder: Path, warn) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warn(f"{path}: unreadable manifest ({exc}); provenance not shown")
        return {}
    return data if isinstance(data, dict) else {}


def load_upstreams(path: Path, warn) -> list[Upstream]:
    """Every upstream named in the ORCH_UPSTREAMS file, sorted by name, with its manifest and records."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a JSON object of upstreams")
    ups = []
    for name in sorted(doc):
        info = doc[name] if isinstance(doc[name], dict) else {}
        c = Checker(f"{path}: {name}", warn)
        tags = c.obj(info, "tags")
        entry = c.text(info, "entry") or None
        folder = Path(entry) if entry else None
        records: list[Rec] = []
        manifest: dict = {}
        if folder is not None and folder.is_dir():
            manifest = read_manifest(folder, warn)
            for f in jsonl_files(folder):
                records.extend(to_rec(name, tags, data, where, warn) for where, data in read_jsonl(f, warn))
        elif folder is not None:
            warn(f"{path}: {name}: artifact folder {folder} does not exist; no records")
        ups.append(Upstream(
            name=name, status=c.text(info, "status", "missing"), reason=c.text(info, "reason").strip(),
            key=c.text(info, "key") or None, cached=info.get("cached") is True, entry=entry, tags=tags,
            log_tail=c.text(info, "log_tail"), manifest=manifest, records=tuple(records),
        ))
    return ups
