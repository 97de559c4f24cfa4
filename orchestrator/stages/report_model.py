"""What the report shows, computed once from the upstreams: one section per op and mode (its workloads in chart
groups, one series per impl with data, its ranking, baseline and ceiling), the impls that have nothing to show and
why, the device. A backward is never ranked, charted or compared with a forward: each mode is a section of its own
(the forward's keeps the op's name; a run without backward records has exactly the sections it always had). Series
are styled from their names (colour, marker, dash), so adding an impl never restyles another.
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from opbench import ops, schema
from report_records import Rec, Upstream

# Distinct hues (no pure red: red is kept for "wrong result").
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#393b79", "#b8860b", "#006d5b", "#000000", "#9c9ede", "#637939", "#7b4173", "#e7969c", "#3182bd",
           "#31a354", "#756bb1", "#fd8d3c", "#843c39")
MARKERS = ("o", "s", "^", "D", "v", "P", "h")
DASHES = ("-", "--", ":", "-.")
KEY_PACKAGES = ("torch", "triton", "flash", "xformers", "jax", "sage", "kernels", "cudnn", "transformer", "liger",
                "quack", "cutlass")
# Short names of workload fields in titles and axis labels (any other field is shown by its own name).
SHORT = {"batch": "B", "seq_len": "S", "heads": "H", "kv_heads": "KV", "head_dim": "D", "hidden": "D", "tokens": "T",
         "dim": "D"}
DEFAULT_BASELINE = "torch_math"
EAGER_FAMILY = "torch-eager"  # a family op's baseline when the run's baseline is not one of its impls
METRIC_UNIT = {"tflops": "TFLOP/s", "gbps": "GB/s"}
MODE_NAMES = {"fwd": "forward", "bwd": "backward", "fwd_bwd": "forward + backward"}


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    dash: str


def style_of(name: str) -> Style:
    h = hashlib.sha256(name.encode("utf-8", "replace")).digest()
    return Style(PALETTE[h[0] % len(PALETTE)], MARKERS[h[1] % len(MARKERS)], DASHES[h[2] % len(DASHES)])


def short(name: str) -> str:
    return SHORT.get(name, name)


SIZE = "bytes"  # the x axis of memory-bound ops' charts: the minimal bytes one call moves


@dataclass(frozen=True)
class Workload:
    wid: str  # name, plus the mode unless it is fwd
    name: str
    mode: str
    shape: dict
    mb: float | None = None  # MB one call moves (from its records' GB/s and p50), for memory-bound ops

    def x_label(self, x: str) -> str:
        if x == SIZE:
            return f"{self.mb:.3g} MB" if self.mb else ""
        value = self.shape.get(x)
        return f"{short(x)}={value}" if value is not None else ""

    def x_value(self, x: str):
        return self.mb if x == SIZE else self.shape.get(x)


@dataclass(frozen=True)
class Series:
    """One impl's measured points (workload id -> Rec) and what the tooltips say about it."""

    slug: str
    label: str
    upstream: Upstream
    style: Style
    points: dict
    problems: tuple[Rec, ...]  # workloads it skipped or errored on

    @property
    def tags(self) -> dict:
        first = next(iter(self.points.values()), None)
        return first.tags if first is not None and first.tags else self.upstream.tags

    @property
    def wrong(self) -> bool:
        return any(r.ok is False for r in self.points.values())

    def packages(self) -> str:
        """The versions that matter for this impl: what its requirements resolved to (the manifest's package list,
        `name==version (base|wheelhouse|index)` in host mode) that the harness saw at run time or that is a kernel
        package, plus the torch and CUDA it imported. Never the rest of a host-mode base image."""
        env = next((r.env for r in self.points.values() if r.env), {})
        seen = env.get("packages") if isinstance(env.get("packages"), dict) else {}
        seen = {_canon(k): (str(k), str(v)) for k, v in seen.items()}
        declared = {}
        for line in self.upstream.manifest.get("packages") or []:
            name, sep, ver = str(line).partition("==")
            if sep and not name.startswith("unmet:"):
                declared[_canon(name)] = (name.strip(), ver.split(" (")[0].strip())
        pairs = {}
        if declared:
            for key, (name, ver) in declared.items():
                if key in seen:
                    pairs[seen[key][0]] = seen[key][1]
                elif any(k in key for k in KEY_PACKAGES):
                    pairs[name] = ver
        else:  # no manifest package list (a results folder): the kernel packages the harness saw
            pairs = {n: v for k, (n, v) in seen.items() if any(p in k for p in KEY_PACKAGES)}
        if isinstance(env.get("torch"), str):
            pairs["torch"] = env["torch"]
        if isinstance(env.get("cuda"), str):
            pairs["cuda"] = env["cuda"]
        return ", ".join(f"{k} {v}" for k, v in sorted(pairs.items()))

    def describe(self) -> str:
        """'family / backend, compile mode': what kind of impl this is, for tooltips."""
        t = self.tags
        kind = " / ".join(str(v) for v in (t.get("family"), t.get("backend")) if v)
        if t.get("compile") not in (None, "", "none"):
            kind += f", compile {t['compile']}"
        return kind


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip().lower())


@dataclass(frozen=True)
class Missing:
    """An impl with nothing to plot, and why; mode None: in every mode (it has no records at all)."""

    name: str
    op: str
    status: str
    reason: str
    log_tail: str
    mode: str | None = None

    @property
    def where(self) -> str:
        return self.op if self.mode in (None, "fwd") else f"{self.op} {self.mode}"


def common_shape(workloads, skip: tuple[str, ...] = ()) -> str:
    """The fields all the workloads share, e.g. 'B=1 H=24 D=128 bfloat16 non-causal', in the records' order."""
    if not workloads:
        return ""
    parts = []
    for key in workloads[0].shape:
        if key in skip:
            continue
        values = {repr(w.shape.get(key)) for w in workloads}
        value = workloads[0].shape.get(key)
        if len(values) != 1 or value is None or (key == "kv_heads" and value == workloads[0].shape.get("heads")):
            continue
        if key == "causal":
            parts.append("causal" if value else "non-causal")
        elif key == "dtype":
            parts.append(str(value))
        else:
            parts.append(f"{short(key)}={value}")
    modes = {w.mode for w in workloads}
    if len(modes) == 1:
        parts.append(next(iter(modes)))
    return " ".join(parts)


@dataclass(frozen=True)
class Group:
    """Workloads of one op and mode equal in every field but the op's x axis, in growing x: one chart each."""

    slug: str
    title: str  # its fixed fields, e.g. 'B=1 H=24 D=128 bfloat16 non-causal fwd'
    workloads: tuple[Workload, ...]


@dataclass(frozen=True)
class Ranking:
    """Rows in the order of the figure the tables show: the geomean p50 over `shared`, the workloads every ranked
    impl measured. Impls that share none with the others are `unranked` (listed after, by name)."""

    ranked: tuple[Series, ...]
    unranked: tuple[Series, ...]
    shared: tuple[str, ...]

    def geomean(self, s: Series) -> float | None:
        if s not in self.ranked or not self.shared:
            return None
        return math.exp(sum(math.log(s.points[w].p50) for w in self.shared) / len(self.shared))

    def rows(self) -> tuple[Series, ...]:
        return self.ranked + self.unranked

    def caption(self) -> str:
        if not self.ranked:
            return ""
        n = len(self.shared)
        what = f"the {n} workloads every ranked impl measured" if n > 1 else "the one workload every ranked impl measured"
        names = ", ".join(self.shared) if n <= 8 else ", ".join(self.shared[:8]) + ", ..."
        tail = f"; not ranked (no workload in common with them): {', '.join(s.label for s in self.unranked)}" \
            if self.unranked else ""
        return f"ranked by geomean p50 over {what} ({names}){tail}"


def rank(series: tuple[Series, ...], workloads: tuple[Workload, ...]) -> Ranking:
    """Rank over the workloads all ranked impls share; while no workload is shared, the impl with the fewest
    measured workloads (then the first by name) is set aside as unranked."""
    order = [w.wid for w in workloads]
    ranked = list(series)
    while ranked:
        shared = [w for w in order if all(w in s.points for s in ranked)]
        if shared:
            break
        ranked.remove(min(ranked, key=lambda s: (len(s.points), s.label)))
    else:
        shared = []
    r = Ranking(tuple(ranked), tuple(sorted((s for s in series if s not in ranked), key=lambda s: s.label)),
                tuple(shared))
    return Ranking(tuple(sorted(ranked, key=lambda s: (r.geomean(s), s.label))), r.unranked, r.shared)


@dataclass(frozen=True)
class Section:
    """One op's part of the report in one mode."""

    op: str
    title: str
    metric: str  # "tflops" or "gbps": the headline number
    x: str  # the workload field on the charts' x axis, or SIZE (memory-bound ops)
    workloads: tuple[Workload, ...]
    groups: tuple[Group, ...]
    series: tuple[Series, ...]
    ranking: Ranking
    baseline: Series | None
    missing: tuple[Missing, ...]
    peak: float | None  # the measured bf16 matmul peak, TFLOP/s
    bandwidth: float | None  # the measured copy bandwidth, GB/s
    mode: str = "fwd"

    @property
    def key(self) -> str:
        """Its id in the page and its charts' names: the op's name for the forward, `<op>-<mode>` otherwise."""
        return self.op if self.mode == "fwd" else f"{self.op}-{self.mode}"

    @property
    def unit(self) -> str:
        return METRIC_UNIT[self.metric]

    @property
    def ceiling(self) -> tuple[float | None, str]:
        """The line a throughput chart draws: the matmul peak for compute-bound ops, the copy for memory-bound."""
        if self.metric == "gbps":
            return self.bandwidth, f"measured copy bandwidth {self.bandwidth:.0f} GB/s" if self.bandwidth else ""
        return self.peak, f"measured peak {self.peak:.0f} TFLOP/s (bf16 matmul)" if self.peak else ""

    def rate(self, r: Rec) -> float | None:
        return r.gbps if self.metric == "gbps" else r.tflops

    def pct(self, r: Rec) -> float | None:
        return r.pct_bandwidth if self.metric == "gbps" else r.pct_peak

    def common_shape(self) -> str:
        return common_shape(self.workloads)


@dataclass(frozen=True)
class Model:
    sections: tuple[Section, ...]
    missing: tuple[Missing, ...]
    upstreams: tuple[Upstream, ...]
    baseline: str
    device: str

    @property
    def series(self) -> tuple[Series, ...]:
        return tuple(s for sec in self.sections for s in sec.series)


def slugify(name: str, taken: set) -> str:
    base = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "series"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _value(v) -> tuple:
    """A sort key for one shape field of any JSON type: numbers by value, anything else by its text."""
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, repr(v))


def _fixed(w: Workload, x: str) -> tuple:
    """The fields a chart's line may not change along its length: every field but x (only the dtype when x is the
    size: a memory-bound op's shapes line up by the bytes they move)."""
    keep = ("dtype",) if x == SIZE else tuple(k for k in w.shape if k != x)
    return tuple((k, _value(w.shape.get(k))) for k in sorted(keep))


def workload_order(recs: list[Rec], x: str) -> tuple[Workload, ...]:
    """Every workload met, grouped by mode and the fixed fields, growing x; workloads without a shape last."""
    found: dict = {}
    sizes: dict = {}
    for r in recs:
        if r.wid not in found or (r.shape and not found[r.wid].shape):
            found[r.wid] = Workload(r.wid, r.workload, r.mode, r.shape)
        if r.measured and r.gbps:
            sizes.setdefault(r.wid, []).append(r.gbps * r.p50)  # GB/s x ms = MB
    found = {wid: Workload(w.wid, w.name, w.mode, w.shape, round(statistics.median(sizes[wid]), 3)
                           if wid in sizes else None) for wid, w in found.items()}

    def key(w: Workload) -> tuple:
        if not w.shape:
            return (1, w.mode, w.wid)
        return (0, w.mode, _fixed(w, x), _value(w.x_value(x)), w.wid)

    return tuple(sorted(found.values(), key=key))


def family(w: Workload, x: str) -> tuple:
    """What a line may not change along its length: the mode and the fixed fields."""
    return (w.mode, _fixed(w, x)) if w.shape else ()


def groups_of(workloads: tuple[Workload, ...], x: str, prefix: str, taken: set) -> tuple[Group, ...]:
    """One group per family, the largest first (the main suite leads), workloads in growing x."""
    found: dict = {}
    for w in workloads:
        found.setdefault(family(w, x), []).append(w)
    out = []
    for fam, ws in sorted(found.items(), key=lambda kv: (not kv[0], -len(kv[1]), kv[0])):
        title = common_shape(ws, skip=(x,)) if fam else "workloads without a shape"
        out.append(Group(slugify(f"{prefix}-{title.replace('=', '')}", taken), title, tuple(ws)))
    return tuple(out)


def _median(values) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0]
    return round(statistics.median(vals), 1) if vals else None


def _baseline(series: tuple[Series, ...], name: str) -> Series | None:
    """The run's baseline where it is one of the op's impls, else the op's torch eager impl, else none."""
    for s in series:
        if name in (s.upstream.name, s.label):
            return s
    return next((s for s in series if s.tags.get("family") == EAGER_FAMILY), None)


def section(op: str, recs: list[Rec], upstreams: dict, missing: list[Missing], baseline: str, taken: set,
            mode: str = "fwd", slugs: dict | None = None) -> Section:
    """The section of `op` in `mode` from its records (those of that mode, and records of no workload: an impl
    skipped before any ran). slugs: (upstream, impl) -> slug, shared by an op's sections so an impl keeps its id."""
    spec = ops.get(op)
    slugs = {} if slugs is None else slugs
    grouped: dict = {}
    for r in recs:
        grouped.setdefault((r.upstream, r.impl), []).append(r)
    impl_names = Counter(impl for _, impl in grouped)
    series = []
    for (up, impl), rs in sorted(grouped.items()):
        measured: dict = {}
        for r in rs:
            if r.measured:
                measured.setdefault(r.wid, r)  # a repeated workload: the first line wins
        label = impl if impl_names[impl] == 1 else f"{up}/{impl}"
        if not measured:
            why = next((r for r in rs if r.reason), None)
            every = all(not r.shape for r in rs)  # skipped before any workload: the same in every mode, named once
            m = Missing(label, op, rs[0].status, why.reason if why else upstreams[up].reason, upstreams[up].log_tail,
                        None if every else mode)
            if m not in missing:
                missing.append(m)
            continue
        problems = tuple(r for r in rs if not r.measured and r.wid not in measured)
        if (up, impl) not in slugs:
            slugs[(up, impl)] = slugify(label, taken)
        series.append(Series(slugs[(up, impl)], label, upstreams[up], style_of(label), measured, problems))
    measured_recs = [r for r in recs if r.measured]
    x = SIZE if spec.metric == "gbps" else spec.x
    workloads = workload_order(measured_recs or recs, x)
    peaks = [r.tflops / (r.pct_peak / 100) for r in measured_recs if r.tflops and r.pct_peak and r.pct_peak > 0]
    peaks += [r.env.get("peak_tflops") for r in measured_recs]
    st = tuple(series)
    return Section(
        op=op, title=spec.title if mode == "fwd" else f"{spec.title}, {MODE_NAMES[mode]}", metric=spec.metric, x=x,
        workloads=workloads, groups=groups_of(workloads, x, op, taken), series=st, ranking=rank(st, workloads),
        baseline=_baseline(st, baseline),
        missing=tuple(sorted((m for m in missing if m.op == op and m.mode in (None, mode)), key=lambda m: m.name)),
        peak=_median(peaks), bandwidth=_median(r.env.get("copy_gbps") for r in measured_recs), mode=mode,
    )


def _modes(recs: list[Rec]) -> list[str]:
    """The modes an op's records were measured in, in the harness's order; the forward when none names one."""
    found = {r.mode for r in recs if r.shape}
    return [m for m in schema.MODES if m in found] or ["fwd"]


def build(upstreams: list[Upstream], baseline: str) -> Model:
    """The report's model: a section for every op that has an upstream, in the registry's order."""
    by_up = {u.name: u for u in upstreams}
    missing: list[Missing] = []
    for u in upstreams:
        if not u.records:
            reason = u.reason or ("produced no records" if u.status == "ok" else "")
            missing.append(Missing(u.shown_as, u.op, "error" if u.status == "ok" else u.status, reason, u.log_tail))
    recs = [r for u in upstreams for r in u.records]
    present = {r.op for r in recs} | {u.op for u in upstreams}
    taken: set = set()
    sections = []
    for op in ops.NAMES:
        if op not in present:
            continue
        of_op = [r for r in recs if r.op == op]
        slugs: dict = {}
        for mode in _modes(of_op):
            mine = [r for r in of_op if r.mode == mode or not r.shape]  # no workload: skipped before any mode ran
            sections.append(section(op, mine, by_up, missing, baseline, taken, mode, slugs))
    devices = Counter(r.env.get("device") for r in recs if r.measured and isinstance(r.env.get("device"), str))
    return Model(
        sections=tuple(sections), missing=tuple(sorted(missing, key=lambda m: (m.op, m.name, m.mode or ""))),
        upstreams=tuple(upstreams), baseline=baseline,
        device=min(devices, key=lambda d: (-devices[d], d)) if devices else "",
    )
