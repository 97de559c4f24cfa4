"""summary.txt: the impl x workload table for a terminal (p50 ms and TFLOP/s, marks for best, wrong and unstable),
one block per shape group, rows ranked by the geomean column they show. ASCII only."""

from __future__ import annotations

from report_axis import fmt_ms
from report_model import Model, Series
from report_records import UNSTABLE_SPREAD

WIDTH = 120
CELL = 15
GEO = 11  # the geomean column
COLS_MAX = 8  # workload columns per block (also per HTML table)


def _rate(t: float | None) -> str:
    """TFLOP/s in 5 characters; below 1 as GFLOP/s with a G ('4.12G'), never '0.0'."""
    if t is None or not t > 0:
        return "    -"
    if t >= 1:
        return f"{t:5.0f}" if t >= 10 else f"{t:5.1f}"
    g = t * 1000
    return f"{g:.3g}G".rjust(5) if g >= 0.01 else "  <0G"


def _cell(s: Series, wl: str, best: dict, width: int = CELL) -> str:
    r = s.points.get(wl)
    if r is None:
        bad = next((p for p in s.problems if p.workload == wl), None)
        return (bad.status if bad else "-").rjust(width)
    mark = "!" if r.ok is False else "*" if best.get(wl) is s else " "
    return f"{mark}{'~' if r.unstable else ''}{fmt_ms(r.p50)}{_rate(r.tflops)}".rjust(width)


def best_per_workload(m: Model) -> dict:
    """The fastest series per workload among results that are not known to be wrong."""
    best = {}
    for w in m.workloads:
        cands = [s for s in m.series if w.name in s.points and s.points[w.name].ok is not False]
        if cands:
            best[w.name] = min(cands, key=lambda s: (s.points[w.name].p50, s.label))
    return best


def summary(m: Model, n_warnings: int) -> str:
    """The whole text; rows ranked by the geomean p50 column over the workloads every ranked impl shares, one
    block of columns per shape group (split so each fits WIDTH)."""
    rk = m.ranking
    rows = list(rk.rows())
    best = best_per_workload(m)
    name_w = max([len(s.label) for s in rows] + [14]) + 1
    shape = m.common_shape() if len(m.groups) <= 1 else ""
    head = " - ".join(p for p in (m.device, shape) if p) or "results"
    out = [f"Benchmark summary: {head}",
           "cells: p50 ms, TFLOP/s (G: GFLOP/s);  * fastest correct result   ! wrong result (differs from the fp32 "
           f"reference)   ~ unstable (wide CI or spread; older records: p10-p90 > {UNSTABLE_SPREAD:.0%} of p50)",
           f"geomean: p50 geomean in ms; rows {rk.caption()}" if rows else "", ""]
    geo = {s.slug: (fmt_ms(rk.geomean(s)) if rk.geomean(s) is not None else "-") for s in rows}
    for g in m.groups if rows else ():
        names = [w.name for w in g.workloads]
        cell = max([CELL] + [len(n) + 2 for n in names])  # whole workload names, never cut
        per_block = max(1, min(COLS_MAX, (WIDTH - name_w - GEO) // cell))
        if len(m.groups) > 1:
            out.append(f"[{g.title}]")
        for start in range(0, len(names), per_block):
            block = names[start:start + per_block]
            out.append("impl".ljust(name_w) + "geomean".rjust(GEO) + "".join(n.rjust(cell) for n in block))
            out.append("-" * (name_w + GEO + cell * len(block)))
            for s in rows:
                if any(w in s.points or any(p.workload == w for p in s.problems) for w in block):
                    out.append(s.label.ljust(name_w) + geo[s.slug].rjust(GEO)
                               + "".join(_cell(s, w, best, cell) for w in block))
            out.append("")
    if not rows:
        out += ["no impl produced a measurement", ""]
    if m.missing:
        out.append("not measured:")
        out += [f"  {x.name}: {x.status}: {x.reason or 'no reason given'}" for x in m.missing]
        out.append("")
    problems = [(s.label, p) for s in m.series for p in s.problems]
    if problems:
        out.append("workloads without a result:")
        out += [f"  {name} {p.workload}: {p.status}: {p.reason or 'no reason given'}" for name, p in problems]
        out.append("")
    if n_warnings:
        out += [f"{n_warnings} input warning(s): see warnings.txt", ""]
    return "\n".join(out).encode("ascii", "replace").decode("ascii")
