"""Each op's charts as plain specs (what to draw, not how): latency, throughput against the op's ceiling (the
matmul peak for compute-bound ops, the measured copy bandwidth for memory-bound ones), speedup over the baseline,
one of each per chart group, plus a detail chart where a few far-off impls squash the rest."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from report_format import fmt, fmt_ms, fmt_rate
from report_model import Group, Section, Series, Style
from report_records import Rec


@dataclass(frozen=True)
class Point:
    i: int  # the workload's position on the x axis
    y: float
    lo: float | None
    hi: float | None
    wrong: bool
    tip: str
    unstable: bool = False


@dataclass(frozen=True)
class Line:
    slug: str
    label: str
    style: Style
    kind: str  # 'family / backend, compile …'
    packages: str
    points: tuple[Point, ...]
    suffix: str = ""  # '(3/6)' when it has fewer points than the chart has workloads

    @property
    def wrong(self) -> bool:
        return any(p.wrong for p in self.points)


@dataclass(frozen=True)
class Chart:
    name: str  # unique in the page, the file's stem under charts/
    title: str
    subtitle: str
    ylabel: str
    categories: tuple[tuple[str, str], ...]  # (workload id, its x label)
    lines: tuple[Line, ...]
    refs: tuple[tuple[float, str], ...] = ()  # horizontal lines: (value, label)
    notes: tuple[tuple[str, str, str], ...] = ()  # (impl, what, why): impls not drawn here
    message: str = ""  # shown instead of lines when there are none
    better: str = "lower"
    unit: str = "ms"
    zero: bool = True  # a linear axis starts at zero


def point_tip(sec: Section, r: Rec) -> str:
    lat = r.lat
    lines = [f"{r.wid}",
             f"p50 {fmt_ms(lat.get('p50'))} ms (p10 {fmt_ms(lat.get('p10'))} – p90 {fmt_ms(lat.get('p90'))}"
             + (f", {r.reps} reps" if r.reps else "") + (f", {r.timing}" if r.timing else "") + ")"]
    if r.tflops is not None:
        lines.append(fmt_rate(r.tflops) + (f" ({r.pct_peak:.3g}% of peak)" if r.pct_peak is not None else ""))
    if r.gbps is not None:
        where = " — L2-resident, not memory throughput" if r.resident else \
            f" ({r.pct_bandwidth:.3g}% of copy bandwidth)" if r.pct_bandwidth is not None else ""
        lines.append(fmt_rate(r.gbps, "GB/s") + where)
    if r.l2.get("policy"):
        lines.append(f"L2 {r.l2['policy']}: {r.l2.get('method', '')}")
    if r.ok is not None:
        rel = f" (rel_l2 {r.rel_l2:.2e})" if r.rel_l2 is not None else ""
        lines.append(("correct" if r.ok else "✗ WRONG vs fp32 reference") + rel)
    if r.unstable:
        lines.append(f"~ unstable: wide confidence interval or p10–p90 spread ({(r.spread or 0):.0%} of the median)")
    if r.throttled:
        lines.append(f"# throttled clocks, twice: {', '.join(r.throttle) or 'SM clock below 90 % of its max'}")
    return "\n".join(lines)


def _geomean(values: list[float]) -> float:
    vals = [v for v in values if v > 0]
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else 0.0


def _line(sec: Section, g: Group, s: Series, value, lo=None, hi=None) -> Line:
    """One series' points over one group; value(rec) gives y (None: no point), lo/hi the whisker ends."""
    pts = []
    for i, w in enumerate(g.workloads):
        r = s.points.get(w.wid)
        y = value(r) if r is not None else None
        if y is not None and y > 0:
            pts.append(Point(i, y, lo(r) if lo else None, hi(r) if hi else None, r.ok is False, point_tip(sec, r),
                             r.unstable))
    suffix = f"({len(pts)}/{len(g.workloads)})" if 0 < len(pts) < len(g.workloads) else ""
    return Line(s.slug, s.label, s.style, s.describe(), s.packages(), tuple(pts), suffix)


def _ordered(lines: list[Line]) -> tuple:
    """Highest geometric mean first, so the legend reads top-down like the lines at the right of the plot."""
    return tuple(sorted((ln for ln in lines if ln.points), key=lambda ln: (-_geomean([p.y for p in ln.points]),
                                                                          ln.label)))


def _name(sec: Section, kind: str, g: Group) -> str:
    return f"{sec.key}-{kind}" if len(sec.groups) <= 1 else f"{g.slug}-{kind}"


def _title(sec: Section, what: str, g: Group, better: str) -> str:
    return f"{sec.title} {what}{' · ' + g.title if g.title else ''} — {better} is better"


def _categories(sec: Section, g: Group) -> tuple:
    return tuple((w.wid, w.x_label(sec.x)) for w in g.workloads)


def _groups(sec: Section) -> tuple:
    return sec.groups or (Group(f"{sec.key}-none", "", ()),)


def latency(sec: Section, device: str) -> list[Chart]:
    """One latency chart per group: a line never joins workloads whose fixed fields (or mode) differ."""
    out = []
    for g in _groups(sec):
        lines = _ordered([_line(sec, g, s, lambda r: r.p50, lambda r: r.lat.get("p10"), lambda r: r.lat.get("p90"))
                          for s in sec.series])
        out.append(Chart(_name(sec, "latency", g), _title(sec, "latency", g, "lower"),
                         _sub(device, "p50, whiskers p10–p90; ✗ = wrong result, ringed = unstable"),
                         "latency p50 (ms)", _categories(sec, g), lines,
                         message="" if lines else "no impl produced a measurement"))
    return out


def throughput(sec: Section, device: str) -> list[Chart]:
    unit = sec.unit
    ceiling, ceiling_label = sec.ceiling
    what = "GB/s of the op's minimal bytes (each input read once, each output written once)" \
        if sec.metric == "gbps" else "TFLOP/s of the op's FLOPs"
    out = []
    for g in _groups(sec):
        lines = _ordered([_line(sec, g, s, lambda r: None if r.resident else sec.rate(r)) for s in sec.series])
        drawn = {ln.slug for ln in lines}
        notes = []
        for s in sec.series:
            here = [s.points[w.wid] for w in g.workloads if w.wid in s.points]
            if here and s.slug not in drawn:
                resident = any(r.resident for r in here)
                notes.append((s.label, "L2-resident" if resident else f"no {unit}",
                              "implies more than the measured copy bandwidth with inputs that fit in L2" if resident
                              else f"its records carry no {unit}"))
        out.append(Chart(_name(sec, "throughput", g), _title(sec, "throughput", g, "higher"),
                         _sub(device, f"{what}; ✗ = wrong result"), unit, _categories(sec, g), lines,
                         ((ceiling, ceiling_label),) if ceiling else (), tuple(sorted(notes)),
                         message="" if lines else f"no record carries a {unit} value", better="higher", unit=unit))
    return out


def speedup(sec: Section, device: str) -> list[Chart]:
    base = sec.baseline
    out = []
    for g in _groups(sec):
        name = _name(sec, "speedup", g)
        if base is None or not any(w.wid in base.points for w in g.workloads):
            why = "no baseline impl among this op's results" if base is None else \
                f"baseline {base.label} has no measurements on these workloads"
            out.append(Chart(name, _title(sec, "speedup", g, "higher"), _sub(device, "no speedups: " + why),
                             "speedup (×)", _categories(sec, g), (), message=why, better="higher", unit="×",
                             zero=False))
            continue

        def ratio(r: Rec):
            b = base.points.get(r.wid)
            return b.p50 / r.p50 if b is not None and r.p50 else None

        def bound(key):
            def f(r: Rec):
                b, v = base.points.get(r.wid), r.lat.get(key)
                return b.p50 / v if b is not None and v else None
            return f

        lines = _ordered([_line(sec, g, s, ratio, bound("p90"), bound("p10")) for s in sec.series if s is not base])
        out.append(Chart(name, f"{sec.title} speedup over {base.label}{' · ' + g.title if g.title else ''} — higher "
                         "is better", _sub(device, f"{base.label} p50 ÷ impl p50; whiskers from the impl's p90/p10"),
                         "speedup (×)", _categories(sec, g), lines, ((1.0, f"1× = {base.label}"),), better="higher",
                         unit="×", zero=False))
    return out


def _sub(device: str, what: str) -> str:
    return " · ".join(p for p in (device, what) if p)


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
    head = c.title.partition(" — ")[0]
    return replace(c, name=f"{c.name}-detail", title=f"{head} — detail: within {fmt(factor)}× of the best",
                   lines=tuple(keep), notes=off + c.notes, zero=False)


def section_charts(sec: Section, device: str) -> list[tuple[Chart, Chart | None]]:
    """Every chart of one section with its detail chart (or None), latency first, group by group."""
    per_kind = [latency(sec, device), throughput(sec, device), speedup(sec, device)]
    return [(c, detail(c) if c.lines else None) for charts in zip(*per_kind) for c in charts]
