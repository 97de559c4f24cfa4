"""The three charts of the report (latency, throughput, speedup) as Chart specs built from the model."""

from __future__ import annotations

import math
from dataclasses import replace

from report_axis import fmt, fmt_ms, fmt_rate
from report_model import Group, Model, Series
from report_records import Rec
from report_svg import Chart, Line, Point


def series_tip(s: Series) -> tuple[tuple, str]:
    """The data-* attributes and the tooltip text that name a series: impl, family, backend, versions."""
    t = s.tags
    attrs = (("impl", s.label), ("family", t.get("family", "")), ("backend", t.get("backend", "")),
             ("compile", t.get("compile", "")), ("packages", s.packages()))
    head = " / ".join(str(v) for v in (t.get("family"), t.get("backend")) if v)
    comp = f", compile {t['compile']}" if t.get("compile") not in (None, "", "none") else ""
    tip = f"{s.label} — {head or 'no tags'}{comp}"
    return attrs, tip + (f"\n{s.packages()}" if s.packages() else "")


def point_tip(s: Series, r: Rec) -> str:
    lat = r.lat
    lines = [f"{s.label} · {r.workload}",
             f"p50 {fmt_ms(lat.get('p50'))} ms (p10 {fmt_ms(lat.get('p10'))} – p90 {fmt_ms(lat.get('p90'))}"
             + (f", {r.reps} reps" if r.reps else "") + (f", {r.mode}" if r.mode else "") + ")"]
    if r.tflops is not None:
        lines.append(fmt_rate(r.tflops, "FLOP/s") + (f" ({r.pct_peak:.3g}% of peak)" if r.pct_peak is not None else ""))
    if r.ok is not None:
        rel = f" (rel_l2 {r.rel_l2:.2e})" if r.rel_l2 is not None else ""
        lines.append(("correct" if r.ok else "✗ WRONG vs fp32 reference") + rel)
    if r.unstable:
        lines.append(f"~ unstable: wide confidence interval or p10–p90 spread ({(r.spread or 0):.0%} of the median)")
    return "\n".join(lines)


def _geomean(values: list[float]) -> float:
    vals = [v for v in values if v > 0]
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else 0.0


def _line(g: Group, s: Series, value, lo=None, hi=None) -> Line:
    """One series' points over one shape group; value(rec) gives y (None: no point), lo/hi the whisker ends."""
    attrs, tip = series_tip(s)
    pts = []
    for i, w in enumerate(g.workloads):
        r = s.points.get(w.name)
        y = value(r) if r is not None else None
        if y is not None and y > 0:
            pts.append(Point(i, y, lo(r) if lo else None, hi(r) if hi else None, r.ok is False, point_tip(s, r),
                             r.unstable))
    suffix = f"({len(pts)}/{len(g.workloads)})" if 0 < len(pts) < len(g.workloads) else ""
    return Line(s.slug, s.label, s.style, attrs, tip, tuple(pts), suffix)


def _ordered(lines: list[Line]) -> tuple:
    """Highest geometric mean first, so the legend reads top-down like the lines at the right of the plot."""
    return tuple(sorted(lines, key=lambda ln: (-_geomean([p.y for p in ln.points]), ln.label)))


def _absent(m: Model) -> tuple:
    return tuple((x.name, x.status, x.reason) for x in m.missing)


def _name(m: Model, kind: str, g: Group) -> str:
    return kind if len(m.groups) <= 1 else f"{kind}-{g.slug}"


def _title(what: str, g: Group, better: str) -> str:
    return f"{what}{' · ' + g.title if g.title else ''} — {better} is better"


def _subtitle(m: Model, what: str) -> str:
    return " · ".join(p for p in (m.device, what) if p)


def _categories(g: Group) -> tuple:
    return tuple((w.name, w.sublabel()) for w in g.workloads)


def _groups(m: Model) -> tuple:
    return m.groups or (Group("none", "", ()),)


def latency(m: Model) -> list[Chart]:
    """One latency chart per shape group: a line never joins workloads whose fixed fields differ."""
    charts = []
    for g in _groups(m):
        lines = [ln for ln in (_line(g, s, lambda r: r.p50, lambda r: r.lat.get("p10"), lambda r: r.lat.get("p90"))
                               for s in m.series) if ln.points]
        charts.append(Chart(
            _name(m, "latency", g), _title("Latency", g, "lower"),
            _subtitle(m, "p50, whiskers p10–p90; hollow ✗ marker = wrong result"), "latency p50 (ms)",
            _categories(g), _ordered(lines), absent=_absent(m),
            message="" if lines else "no impl produced a measurement", unit="ms", kind="latency",
        ))
    return charts


def throughput(m: Model) -> list[Chart]:
    charts = []
    for g in _groups(m):
        lines, extra = [], []
        for s in m.series:
            ln = _line(g, s, lambda r: r.tflops)
            if ln.points:
                lines.append(ln)
            elif any(w.name in s.points for w in g.workloads):
                extra.append((s.label, "no TFLOP/s", "its records carry no tflops"))
        refs = ((m.peak, f"measured peak {fmt(m.peak)} TFLOP/s (bf16 matmul)"),) if m.peak else ()
        charts.append(Chart(
            _name(m, "throughput", g), _title("Throughput", g, "higher"),
            _subtitle(m, "TFLOP/s of the attention FLOPs; hollow ✗ marker = wrong result"), "TFLOP/s",
            _categories(g), _ordered(lines), refs, tuple(sorted(extra)), absent=_absent(m),
            message="" if lines else "no record carries a TFLOP/s value", better="higher", unit="TFLOP/s",
            kind="throughput",
        ))
    return charts


def speedup(m: Model) -> list[Chart]:
    base = next((s for s in m.series if s.upstream.name == m.baseline or s.label == m.baseline), None)
    charts = []
    for g in _groups(m):
        name, title = _name(m, "speedup", g), _title(f"Speedup over {m.baseline}", g, "higher")
        if base is None or not any(w.name in base.points for w in g.workloads):
            gone = next((x for x in m.missing if x.name == m.baseline), None)
            why = f" ({gone.status}: {gone.reason})" if gone and gone.reason else f" ({gone.status})" if gone else \
                " (not on these workloads)" if base is not None else " (no such impl in this run)"
            charts.append(Chart(name, title, _subtitle(m, "no speedups: the baseline has no data"), "speedup (×)",
                                _categories(g), (), absent=_absent(m),
                                message=f"baseline {m.baseline} has no measurements{why}", better="higher", unit="×",
                                kind="speedup"))
            continue

        def ratio(r: Rec):
            b = base.points.get(r.workload)
            return b.p50 / r.p50 if b is not None and r.p50 else None

        def bound(key):
            def f(r: Rec):
                b, v = base.points.get(r.workload), r.lat.get(key)
                return b.p50 / v if b is not None and v else None
            return f

        lines = [_line(g, s, ratio, bound("p90"), bound("p10")) for s in m.series if s is not base]
        charts.append(Chart(
            name, title, _subtitle(m, f"{m.baseline} p50 ÷ impl p50; whiskers from the impl's p90/p10"),
            "speedup (×)", _categories(g), _ordered([ln for ln in lines if ln.points]),
            ((1.0, f"1× = {m.baseline}"),), absent=_absent(m), zero=False, better="higher", unit="×", kind="speedup",
        ))
    return charts


def detail(c: Chart, factor: float = 5.0) -> Chart | None:
    """The same chart restricted to the impls within `factor` of the best (geometric means), when a few far-off
    impls squash the rest; those are listed as off scale with their range. None when nothing would change."""
    if len(c.lines) < 3:
        return None
    g = {ln.slug: _geomean([p.y for p in ln.points]) for ln in c.lines}
    lower = c.better == "lower"
    best = min(g.values()) if lower else max(g.values())
    keep = [ln for ln in c.lines if (g[ln.slug] <= best * factor if lower else g[ln.slug] >= best / factor)]
    if len(keep) == len(c.lines) or len(keep) < 2:
        return None
    off = tuple((ln.label, "off scale", f"{fmt(min(p.y for p in ln.points))}–{fmt(max(p.y for p in ln.points))} "
                 f"{c.unit}".strip()) for ln in c.lines if ln not in keep)
    head, _, tail = c.title.partition(" — ")
    title = f"{head} — detail: within {fmt(factor)}× of the best"
    return replace(c, name=f"{c.name}-detail", title=title, lines=tuple(keep), notes=off + c.notes, zero=False)
