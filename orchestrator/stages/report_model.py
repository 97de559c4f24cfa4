"""What the report shows, computed once from the upstreams: workloads in order, one series per impl with data
(each with a fixed colour, marker and dash), the impls that have none and why, the device and its peak."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass

from report_records import Rec, Upstream

# Distinct hues (no pure red: red is kept for "wrong result"), cycled with 7 marker shapes and 4 dash patterns.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#393b79", "#b8860b", "#006d5b", "#000000", "#9c9ede", "#637939", "#7b4173")
MARKERS = ("circle", "square", "triangle", "diamond", "tri_down", "plus", "hexagon")
DASHES = ("", "7 3", "2 3", "9 3 2 3")
KEY_PACKAGES = ("torch", "triton", "flash", "xformers", "jax", "sage", "kernels", "cudnn", "transformer")


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    dash: str


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
        """The versions that matter for a kernel, from the records' env, else from the manifest's package list."""
        env = next((r.env for r in self.points.values() if r.env), {})
        pairs = {}
        if isinstance(env.get("torch"), str):
            pairs["torch"] = env["torch"]
        if isinstance(env.get("cuda"), str):
            pairs["cuda"] = env["cuda"]
        pkgs = env.get("packages") if isinstance(env.get("packages"), dict) else {}
        pairs.update({str(k): str(v) for k, v in pkgs.items()})
        if not pkgs:
            for line in self.upstream.manifest.get("packages") or []:
                name, _, ver = str(line).partition("==")
                if any(k in name.lower() for k in KEY_PACKAGES):
                    pairs.setdefault(name, ver)
        return ", ".join(f"{k} {v}" for k, v in sorted(pairs.items()))


@dataclass(frozen=True)
class Missing:
    """An impl with nothing to plot, and why."""

    name: str
    status: str
    reason: str
    log_tail: str


@dataclass(frozen=True)
class Model:
    workloads: tuple[Workload, ...]
    series: tuple[Series, ...]
    missing: tuple[Missing, ...]
    upstreams: tuple[Upstream, ...]
    baseline: str
    device: str
    peak: float | None

    def common_shape(self) -> str:
        """The shape fields every workload shares, e.g. 'B=1 H=24 D=128 bfloat16 non-causal'."""
        if not self.workloads:
            return ""
        names = (("batch", "B="), ("heads", "H="), ("kv_heads", "KV="), ("head_dim", "D="), ("seq_len", "S="),
                 ("dtype", ""), ("causal", ""))
        parts = []
        for key, prefix in names:
            values = {repr(w.shape.get(key)) for w in self.workloads}
            value = self.workloads[0].shape.get(key)
            if len(values) != 1 or value is None or (key == "kv_heads" and value == self.workloads[0].shape.get("heads")):
                continue
            parts.append(("causal" if value else "non-causal") if key == "causal" else f"{prefix}{value}")
        return " ".join(parts)


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


def _shape_key(shape: dict | None) -> tuple:
    """Group by everything but the sequence length, then grow it; workloads without a shape keep their place last."""
    if not shape:
        return (1,)
    fields = ("dtype", "causal", "head_dim", "heads", "kv_heads", "batch")
    return (0, *(str(shape.get(f)) if not isinstance(shape.get(f), (int, float)) else shape.get(f) for f in fields),
            shape.get("seq_len") or 0)


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
        i = len(series)
        style = Style(PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], DASHES[i % len(DASHES)])
        series.append(Series(slugify(label, taken), label, by_up[up], style, measured, problems))
    for u in upstreams:
        if not u.records:
            reason = u.reason or ("produced no records" if u.status == "ok" else "")
            missing.append(Missing(u.name, "error" if u.status == "ok" else u.status, reason, u.log_tail))
    devices = Counter(r.env.get("device") for r in recs if r.measured and isinstance(r.env.get("device"), str))
    peaks = [r.tflops / (r.pct_peak / 100) for r in recs if r.measured and r.tflops and r.pct_peak and r.pct_peak > 0]
    return Model(
        workloads=workload_order([r for r in recs if r.measured] or recs), series=tuple(series),
        missing=tuple(sorted(missing, key=lambda m: m.name)), upstreams=tuple(upstreams), baseline=baseline,
        device=min(devices, key=lambda d: (-devices[d], d)) if devices else "",
        peak=round(statistics.median(peaks), 1) if peaks else None,
    )
