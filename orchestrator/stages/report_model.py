"""What the report shows, computed once from the upstreams: workloads in shape groups, one series per impl with
data (its colour, marker and dash derived from its name), the ranking, the impls that have none and why, the
device and its peak."""

from __future__ import annotations

import hashlib
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from report_records import Rec, Upstream

# Distinct hues (no pure red: red is kept for "wrong result"); a series picks colour, marker shape and dash
# pattern from independent bytes of its name's hash, so adding an impl never restyles another.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#393b79", "#b8860b", "#006d5b", "#000000", "#9c9ede", "#637939", "#7b4173", "#e7969c", "#3182bd",
           "#31a354", "#756bb1", "#fd8d3c", "#843c39")
MARKERS = ("circle", "square", "triangle", "diamond", "tri_down", "plus", "hexagon")
DASHES = ("", "7 3", "2 3", "9 3 2 3")
KEY_PACKAGES = ("torch", "triton", "flash", "xformers", "jax", "sage", "kernels", "cudnn", "transformer")
FIXED = ("batch", "heads", "kv_heads", "head_dim", "dtype", "causal")  # a shape family: all but seq_len


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    dash: str


def style_of(name: str) -> Style:
    h = hashlib.sha256(name.encode("utf-8", "replace")).digest()
    return Style(PALETTE[h[0] % len(PALETTE)], MARKERS[h[1] % len(MARKERS)], DASHES[h[2] % len(DASHES)])


@dataclass(frozen=True)
class Workload:
    name: str
    shape: dict

    def sublabel(self) -> str:
        seq = self.shape.get("seq_len")
        return f"S={seq}" if seq is not None else ""


@dataclass(frozen=True)
class Series:
    """One impl's measured points (workload name -> Rec) and what the tooltips say about it."""

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


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip().lower())


@dataclass(frozen=True)
class Missing:
    """An impl with nothing to plot, and why."""

    name: str
    status: str
    reason: str
    log_tail: str


def common_shape(workloads) -> str:
    """The shape fields all the workloads share, e.g. 'B=1 H=24 D=128 bfloat16 non-causal'."""
    if not workloads:
        return ""
    names = (("batch", "B="), ("heads", "H="), ("kv_heads", "KV="), ("head_dim", "D="), ("seq_len", "S="),
             ("dtype", ""), ("causal", ""))
    parts = []
    for key, prefix in names:
        values = {repr(w.shape.get(key)) for w in workloads}
        value = workloads[0].shape.get(key)
        if len(values) != 1 or value is None or (key == "kv_heads" and value == workloads[0].shape.get("heads")):
            continue
        parts.append(("causal" if value else "non-causal") if key == "causal" else f"{prefix}{value}")
    return " ".join(parts)


@dataclass(frozen=True)
class Group:
    """Workloads of one shape family (equal in every field but seq_len), in growing seq_len: one chart each."""

    slug: str
    title: str  # its fixed fields, e.g. 'B=1 H=24 D=128 bfloat16 non-causal'
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
    order = [w.name for w in workloads]
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
class Model:
    workloads: tuple[Workload, ...]
    groups: tuple[Group, ...]
    series: tuple[Series, ...]
    ranking: Ranking
    missing: tuple[Missing, ...]
    upstreams: tuple[Upstream, ...]
    baseline: str
    device: str
    peak: float | None

    def common_shape(self) -> str:
        return common_shape(self.workloads)


def slugify(name: str, taken: set) -> str:
    base = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "series"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def workload_order(recs: list[Rec]) -> tuple[Workload, ...]:
    """The order of the longest per-impl list (the full suite, as its impl ran it), then any others as met."""
    per_impl: dict = {}
    shapes: dict = {}
    for r in recs:
        seq = per_impl.setdefault((r.upstream, r.impl), [])
        if r.workload not in seq:
            seq.append(r.workload)
        if r.shape and r.workload not in shapes:
            shapes[r.workload] = r.shape
    order: list[str] = []
    for key in sorted(per_impl, key=lambda k: (-len(per_impl[k]), k)):
        order.extend(w for w in per_impl[key] if w not in order)
    # Suites merged from several runs (seed + long) read left to right by shape, sequence length last.
    order.sort(key=lambda w: _shape_key(shapes.get(w)))
    return tuple(Workload(w, shapes.get(w, {})) for w in order)


def _value(v) -> tuple:
    """A sort key for one shape field of any JSON type: numbers by value, anything else by its text."""
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, repr(v))


def family(shape: dict | None) -> tuple:
    """The fields a line may not change along its length (all but seq_len); empty for a workload with no shape."""
    return tuple(_value((shape or {}).get(f)) for f in FIXED) if shape else ()


def _shape_key(shape: dict | None) -> tuple:
    """Group by everything but the sequence length, then grow it; workloads without a shape keep their place last."""
    if not shape:
        return (1,)
    fields = ("dtype", "causal", "head_dim", "heads", "kv_heads", "batch")
    return (0, *(_value(shape.get(f)) for f in fields), _value(shape.get("seq_len")))


def groups_of(workloads: tuple[Workload, ...]) -> tuple[Group, ...]:
    """One group per shape family, the largest first (the main suite leads), workloads in growing seq_len."""
    found: dict = {}
    for w in workloads:
        found.setdefault(family(w.shape), []).append(w)
    out, taken = [], set()
    for fam, ws in sorted(found.items(), key=lambda kv: (not kv[0], -len(kv[1]), kv[0])):
        fixed = [Workload(w.name, {k: v for k, v in w.shape.items() if k != "seq_len"}) for w in ws]
        title = common_shape(fixed) if fam else "workloads without a shape"
        out.append(Group(slugify(title.replace("=", ""), taken), title, tuple(ws)))
    return tuple(out)


def build(upstreams: list[Upstream], baseline: str) -> Model:
    """The report's model; series are styled in name order so an impl keeps its look across charts and runs."""
    recs = [r for u in upstreams for r in u.records]
    groups: dict = {}
    for r in recs:
        groups.setdefault((r.upstream, r.impl), []).append(r)
    impl_names = Counter(impl for _, impl in groups)
    by_up = {u.name: u for u in upstreams}
    series, missing, taken = [], [], set()
    for (up, impl), rs in sorted(groups.items()):
        measured = {}
        for r in rs:
            if r.measured:
                measured.setdefault(r.workload, r)  # a repeated workload: the first line wins
        label = impl if impl_names[impl] == 1 else f"{up}/{impl}"
        if not measured:
            why = next((r for r in rs if r.reason), None)
            missing.append(Missing(label, rs[0].status, why.reason if why else by_up[up].reason, by_up[up].log_tail))
            continue
        problems = tuple(r for r in rs if not r.measured and r.workload not in measured)
        series.append(Series(slugify(label, taken), label, by_up[up], style_of(label), measured, problems))
    for u in upstreams:
        if not u.records:
            reason = u.reason or ("produced no records" if u.status == "ok" else "")
            missing.append(Missing(u.name, "error" if u.status == "ok" else u.status, reason, u.log_tail))
    devices = Counter(r.env.get("device") for r in recs if r.measured and isinstance(r.env.get("device"), str))
    peaks = [r.tflops / (r.pct_peak / 100) for r in recs if r.measured and r.tflops and r.pct_peak and r.pct_peak > 0]
    workloads = workload_order([r for r in recs if r.measured] or recs)
    return Model(
        workloads=workloads, groups=groups_of(workloads), series=tuple(series), ranking=rank(tuple(series), workloads),
        missing=tuple(sorted(missing, key=lambda m: m.name)), upstreams=tuple(upstreams), baseline=baseline,
        device=min(devices, key=lambda d: (-devices[d], d)) if devices else "",
        peak=round(statistics.median(peaks), 1) if peaks else None,
    )
