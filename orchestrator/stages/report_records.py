"""Reading the combine stage's inputs: the upstreams file, each upstream's manifest and its result records.

A record is read by the harness's own schema (`opbench.schema`: its version, its op, its mode, the op's workload
fields), so the stage, `compare` and the tests share one idea of a record; a line of an unknown schema, op or mode
is skipped with a warning.

Every problem in the inputs (a line that is not JSON, a field of the wrong type, a file the manifest does not
list) becomes one warning naming file:line and is otherwise ignored, so a partial, damaged or forged result never
stops the report. Every string read is cleaned once, here (see `clean`), so no output has to defend itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from opbench import ops, schema

LAT = schema.LAT_FIELDS
TEXT_MAX = 2000  # characters kept of any one string in a record or manifest (a log tail keeps more)
LOG_MAX = 20000
# The harness flags an unstable median in the record (lat_ms.unstable: wide 95 % CI or p90/p10 spread, one rule in
# opbench.stats). Records written before it did are judged by their p10-p90 spread alone, above this fraction.
UNSTABLE_SPREAD = 0.25
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # a byte of a non-UTF-8 file name, as os.fsdecode keeps it
        return f"\\x{c - 0xDC00:02x}"
    if 0xD800 <= c <= 0xDFFF or c in (0xFFFE, 0xFFFF):
        return "\ufffd"
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def clean(text: str, limit: int = TEXT_MAX) -> str:
    """Text safe for every output: terminal escape sequences dropped, control characters (but newline and tab),
    bidi overrides and lone surrogates shown as escapes, valid in UTF-8 and XML, and at most `limit` characters."""
    if len(text) > limit * 4:
        text = text[: limit * 4]  # never run the regexes over megabytes that will be cut anyway
        cut = True
    else:
        cut = False
    text = UNSAFE.sub(_escape, ANSI.sub("", text))
    if cut or len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def one_line(text: str) -> str:
    return " ".join(text.split())


def clean_json(value, limit: int = TEXT_MAX):
    """The same JSON value with every string (and key) cleaned."""
    if isinstance(value, str):
        return clean(value, limit)
    if isinstance(value, dict):
        return {clean(str(k), 200): clean_json(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v, limit) for v in value]
    return value


def shown(path) -> str:
    """A path as text for a warning or the page, whatever bytes its name holds."""
    return clean(os.fsdecode(path), 500)


@dataclass(frozen=True)
class Rec:
    """One result record, every field checked: numbers are finite floats or None, text is str."""

    upstream: str
    impl: str
    workload: str
    where: str  # file:line it came from
    status: str = "ok"
    reason: str = ""
    op: str = ops.DEFAULT
    mode: str = "fwd"  # fwd, bwd or fwd_bwd: what was timed
    shape: dict = field(default_factory=dict)  # the op's workload fields and dtype
    lat: dict = field(default_factory=dict)  # LAT keys -> float | None
    flagged_unstable: bool | None = None  # the record's own lat_ms.unstable, where it has one
    clocks_flagged: bool | None = None  # the record's clocks.flagged (throttled twice); None without NVML readings
    throttle: tuple[str, ...] = ()  # the throttle reasons its clocks reading names
    reps: int | None = None
    timing: str = ""  # graph, events or host
    compile_ms: float | None = None
    peak_bytes: float | None = None
    tflops: float | None = None
    pct_peak: float | None = None
    gbps: float | None = None
    pct_bandwidth: float | None = None  # of the measured copy bandwidth; None where L2-resident or unmeasured
    l2: dict = field(default_factory=dict)  # policy, method, copies, resident (the current rule applied)
    ok: bool | None = None
    rel_l2: float | None = None
    max_abs: float | None = None
    tags: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    @property
    def wid(self) -> str:
        """The workload's id in tables and charts: its name, with the mode unless it is the forward."""
        return self.workload if self.mode == "fwd" else f"{self.workload} [{self.mode}]"

    @property
    def resident(self) -> bool:
        return self.l2.get("resident") is True

    @property
    def p50(self) -> float | None:
        return self.lat.get("p50")

    @property
    def measured(self) -> bool:
        """A latency that can be plotted: status ok and a positive median."""
        return self.status == "ok" and self.p50 is not None and self.p50 > 0

    @property
    def spread(self) -> float | None:
        """Run-to-run spread of the reps, (p90 - p10) / p50; None where the record lacks those."""
        p10, p90 = self.lat.get("p10"), self.lat.get("p90")
        if not self.measured or p10 is None or p90 is None:
            return None
        return max(p90 - p10, 0.0) / self.p50

    @property
    def throttled(self) -> bool:
        """The harness found the GPU's clocks throttled over the timed reps, and again over their repeat."""
        return self.measured and self.clocks_flagged is True

    @property
    def unstable(self) -> bool:
        """The harness's verdict where the record carries one, else the spread rule for older records."""
        if self.flagged_unstable is not None:
            return self.measured and self.flagged_unstable
        return self.spread is not None and self.spread > UNSTABLE_SPREAD


@dataclass(frozen=True)
class Upstream:
    """One upstream job as the orchestrator reported it, with its manifest and records."""

    name: str
    op: str
    status: str
    reason: str
    key: str | None
    cached: bool
    entry: str | None
    tags: dict
    log_tail: str
    manifest: dict
    records: tuple[Rec, ...]
    label: str = ""  # a version-matrix variant's name in the report (`impl @ package version`); "": its name

    @property
    def shown_as(self) -> str:
        return self.label or self.name


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
        """A one-line string (any other JSON value as its JSON text), cleaned."""
        value = data.get(key)
        if value is None:
            return default
        return one_line(clean(value if isinstance(value, str) else json.dumps(value, sort_keys=True)))


def to_rec(upstream: str, tags: dict, data: dict, where: str, warn, op_hint: str | None = None) -> Rec:
    """A checked Rec from one parsed line; missing optional fields stay None. ValueError (naming the field) for a
    line of a schema, op or mode this reader does not know: the caller skips it. A line without a schema is an
    attention record, or the orchestrator's own skip record of an older run: that one takes its upstream's op."""
    op = schema.record_op(data)
    if "schema" not in data and "wl" not in data and op_hint:
        op = op_hint
    mode = schema.record_mode(data)  # schema 3's mode; a record of an older schema is a forward
    c = Checker(where, warn)
    wl, lat, err, env = c.obj(data, "wl"), c.obj(data, "lat_ms"), c.obj(data, "err"), c.obj(data, "env")
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
    gbps, copy = c.num(data, "gbps"), c.num(env, "copy_gbps", "env.copy_gbps")
    l2 = c.obj(data, "l2")
    l2 = {"policy": c.text(l2, "policy"), "method": c.text(l2, "method"), "copies": c.num(l2, "copies", "l2.copies"),
          "resident": schema.l2_resident(gbps, copy, l2)} if l2 or gbps is not None else {}
    pct_bw = 100.0 * gbps / copy if gbps is not None and copy and not l2.get("resident") else None
    fields = schema.shape_fields(op)[1:]
    clk = c.obj(data, "clocks")
    reasons = clk.get("throttle")
    throttle = tuple(one_line(x)[:40] for x in reasons if isinstance(x, str)) if isinstance(reasons, list) else ()
    return Rec(
        upstream=upstream, impl=c.text(data, "impl", upstream) or upstream, workload=c.text(wl, "name", "?") or "?",
        where=where, status=status, reason=reason.strip(), op=op, mode=mode,
        shape={k: one_line(wl[k]) if isinstance(wl[k], str) else wl[k] for k in fields
               if isinstance(wl.get(k), (str, int, float, bool))
               and not (isinstance(wl[k], float) and not math.isfinite(wl[k]))},
        lat=stats, reps=int(reps) if reps is not None else None, timing=c.text(lat, "mode"),
        flagged_unstable=lat.get("unstable") if isinstance(lat.get("unstable"), bool) else None,
        clocks_flagged=schema.clocks_flagged(data), throttle=throttle,
        compile_ms=c.num(data, "compile_ms"), peak_bytes=c.num(data, "peak_bytes"), tflops=c.num(data, "tflops"),
        pct_peak=c.num(data, "pct_peak"), gbps=gbps, pct_bandwidth=pct_bw, l2=l2, ok=ok,
        rel_l2=c.num(err, "rel_l2", "err.rel_l2"), max_abs=c.num(err, "max_abs", "err.max_abs"),
        tags=c.obj(data, "tags") or tags, env=env,
    )


def jsonl_files(folder: Path) -> list[Path]:
    """Every *.jsonl under folder, sorted, not following links and not looking into the orchestrator's _logs."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "_logs")
        found.extend(Path(dirpath, f) for f in filenames if f.endswith(".jsonl"))
    return sorted(found)


def listed_results(folder: Path, manifest: dict, warn) -> list[tuple[Path, str]]:
    """(path, sha256) of the result files the manifest lists, and a warning for every *.jsonl it does not list:
    an entry holds exactly its manifest's files, so a file planted there after commit is never read."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        if jsonl_files(folder):
            warn(f"{shown(folder / 'manifest.json')}: no files list in the manifest; the folder's results are not read")
        return []
    listed = []
    for rel, digest in sorted(files.items()):
        parts = Path(rel).parts
        if not rel.endswith(".jsonl") or not parts or parts[0] == "_logs":
            continue
        if Path(rel).is_absolute() or ".." in parts or not isinstance(digest, str):
            warn(f"{shown(folder / 'manifest.json')}: files: {clean(rel, 300)!r} is not a file inside the entry; "
                 "not read")
            continue
        listed.append((folder / rel, digest))
    known = {p for p, _ in listed}
    for path in jsonl_files(folder):
        if path not in known:
            warn(f"{shown(path)}: not listed in its manifest; not read")
    return listed


def read_jsonl(path: Path, warn, sha256: str | None = None) -> list[tuple[str, dict]]:
    """(file:line, object) for each good line of one file; bad lines are warned about and skipped. With sha256,
    a file whose bytes differ from it (or a link) is not read at all."""
    where0 = shown(path)
    digest = hashlib.sha256()
    out = []
    try:
        if sha256 is not None and path.is_symlink():
            warn(f"{where0}: a link, not the file its manifest lists; not read")
            return []
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                digest.update(raw)
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                where = f"{where0}:{lineno}"
                try:
                    data = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    warn(f"{where}: not JSON ({getattr(exc, 'msg', exc)}); line skipped")
                    continue
                if not isinstance(data, dict):
                    warn(f"{where}: not a JSON object; line skipped")
                    continue
                out.append((where, clean_json(data)))
    except OSError as exc:
        warn(f"{where0}: cannot read ({exc.strerror}); file skipped")
        return []
    if sha256 is not None and digest.hexdigest() != sha256:
        warn(f"{where0}: differs from its manifest sha256; not read")
        return []
    return out


def read_manifest(folder: Path, warn) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError, RecursionError) as exc:
        warn(f"{shown(path)}: unreadable manifest ({clean(str(exc), 300)}); provenance not shown")
        return {}
    return clean_json(data) if isinstance(data, dict) else {}


def _records(name: str, tags: dict, folder: Path, manifest: dict, warn, op: str | None) -> list[Rec]:
    records = []
    for path, digest in listed_results(folder, manifest, warn):
        for where, data in read_jsonl(path, warn, digest):
            try:
                records.append(to_rec(name, tags, data, where, warn, op))
            except ValueError as exc:
                warn(f"{where}: {clean(str(exc), 300)}; line skipped")
            except Exception as exc:  # noqa: BLE001 - one bad record must never stop the report for everyone
                warn(f"{where}: record not read ({type(exc).__name__}: {clean(str(exc), 300)})")
    return records


def load_upstreams(path: Path, warn) -> list[Upstream]:
    """Every upstream named in the ORCH_UPSTREAMS file, sorted by name, with its manifest and records (only the
    result files its manifest lists, with matching sha256)."""

    def say(message: str) -> None:
        warn(one_line(clean(message, 1000)))

    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a JSON object of upstreams")
    ups = []
    for raw_name in sorted(doc):
        info = doc[raw_name] if isinstance(doc[raw_name], dict) else {}
        name = one_line(clean(raw_name, 200)) or "?"
        c = Checker(f"{shown(path)}: {name}", say)
        tags = clean_json(c.obj(info, "tags"))
        entry = info.get("entry") if isinstance(info.get("entry"), str) and info.get("entry") else None
        folder = Path(entry) if entry else None  # the raw name: it may hold bytes that are not UTF-8
        declared = info.get("op")
        if declared is not None and declared not in ops.NAMES:
            say(f"{shown(path)}: {name}: op: unknown op {clean(str(declared), 100)!r}; shown as its records say")
            declared = None
        records: list[Rec] = []
        manifest: dict = {}
        if folder is not None and folder.is_dir():
            manifest = read_manifest(folder, say)
            records = _records(name, tags, folder, manifest, say, declared)
        elif folder is not None:
            say(f"{shown(path)}: {name}: artifact folder {shown(folder)} does not exist; no records")
        label = c.text(info, "label")
        if label:  # a variant runs as its impl: its records are named by the variant's label instead
            records = [replace(r, impl=label) for r in records]
        log_tail = info.get("log_tail")
        op = declared or (records[0].op if records else ops.DEFAULT)
        ups.append(Upstream(
            name=name, op=op, status=c.text(info, "status", "missing"), reason=c.text(info, "reason").strip(),
            key=c.text(info, "key") or None, cached=info.get("cached") is True,
            entry=shown(folder) if folder is not None else None, tags=tags,
            log_tail=clean(log_tail, LOG_MAX) if isinstance(log_tail, str) else "", manifest=manifest,
            records=tuple(records), label=label,
        ))
    return ups
