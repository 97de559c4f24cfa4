"""summary.txt: for each op and mode, the impl x workload table for a terminal (p50 ms and the op's headline rate, TFLOP/s
or GB/s, with marks for best, wrong and unstable), one block per chart group, rows ranked by the geomean column
they show. ASCII only."""

from __future__ import annotations

from report_format import fmt_ms
from report_model import Model, Section, Series
from report_records import UNSTABLE_SPREAD

WIDTH = 120
CELL = 15
GEO = 11  # the geomean column
COLS_MAX = 8  # workload columns per block (also per HTML table)


def _rate(t: float | None, metric: str) -> str:
    """The rate in 5 characters: TFLOP/s (below 1 as GFLOP/s with a G, '4.12G', never '0.0') or GB/s."""
    if t is None or not t > 0:
        return "    -"
    if metric == "gbps" or t >= 10:
        return f"{t:5.0f}" if t >= 10 else f"{t:5.1f}"
    if t >= 1:
        return f"{t:5.1f}"
    g = t * 1000
    return f"{g:.3g}G".rjust(5) if g >= 0.01 else "  <0G"


def _cell(sec: Section, s: Series, wid: str, best: dict, width: int = CELL) -> str:
    r = s.points.get(wid)
    if r is None:
        bad = next((p for p in s.problems if p.wid == wid), None)
        return (bad.status if bad else "-").rjust(width)
    mark = "!" if r.ok is False else "*" if best.get(wid) is s else " "
    rate = "   L2" if r.resident and sec.metric == "gbps" else _rate(sec.rate(r), sec.metric)
    return f"{mark}{'~' if r.unstable else ''}{'#' if r.throttled else ''}{fmt_ms(r.p50)}{rate}".rjust(width)


def best_per_workload(sec: Section) -> dict:
    """The fastest series per workload among results that are not known to be wrong."""
    best = {}
    for w in sec.workloads:
        cands = [s for s in sec.series if w.wid in s.points and s.points[w.wid].ok is not False]
        if cands:
            best[w.wid] = min(cands, key=lambda s: (s.points[w.wid].p50, s.label))
    return best


def section_text(sec: Section, device: str) -> list[str]:
    rk = sec.ranking
    rows = list(rk.rows())
    best = best_per_workload(sec)
    name_w = max([len(s.label) for s in rows] + [14]) + 1
    shape = sec.common_shape() if len(sec.groups) <= 1 else ""
    unit = "GB/s (L2: L2-resident, not a memory throughput)" if sec.metric == "gbps" else "TFLOP/s (G: GFLOP/s)"
    head = " - ".join(p for p in (device, shape) if p)
    out = [f"== {sec.title} ({sec.op}{'' if sec.mode == 'fwd' else ' ' + sec.mode}){': ' + head if head else ''}",
           f"cells: p50 ms, {unit}",
           f"geomean: p50 geomean in ms; rows {rk.caption()}" if rows else "", ""]
    geo = {s.slug: (fmt_ms(rk.geomean(s)) if rk.geomean(s) is not None else "-") for s in rows}
    for g in sec.groups if rows else ():
        names = [w.wid for w in g.workloads]
        cell = max([CELL] + [len(n) + 2 for n in names])  # whole workload names, never cut
        per_block = max(1, min(COLS_MAX, (WIDTH - name_w - GEO) // cell))
        if len(sec.groups) > 1:
            out.append(f"[{g.title}]")
        for start in range(0, len(names), per_block):
            block = names[start:start + per_block]
            out.append("impl".ljust(name_w) + "geomean".rjust(GEO) + "".join(n.rjust(cell) for n in block))
            out.append("-" * (name_w + GEO + cell * len(block)))
            for s in rows:
                if any(w in s.points or any(p.wid == w for p in s.problems) for w in block):
                    out.append(s.label.ljust(name_w) + geo[s.slug].rjust(GEO)
                               + "".join(_cell(sec, s, w, best, cell) for w in block))
            out.append("")
    if not rows:
        out += ["no impl produced a measurement", ""]
    problems = [(s.label, p) for s in sec.series for p in s.problems]
    if problems:
        out.append("workloads without a result:")
        out += [f"  {name} {p.wid}: {p.status}: {p.reason or 'no reason given'}" for name, p in problems]
        out.append("")
    return out


def summary(m: Model, n_warnings: int) -> str:
    """The whole text: one table per op (rows ranked by the geomean p50 column over the workloads every ranked
    impl of that op shares), then the impls not measured and the input warnings."""
    out = [f"Benchmark summary{': ' + m.device if m.device else ''}",
           "marks: * fastest correct result   ! wrong result (differs from the fp32 reference)   ~ unstable (wide CI "
           f"or spread; older records: p10-p90 > {UNSTABLE_SPREAD:.0%} of p50)   # throttled clocks (twice)", ""]
    for sec in m.sections:
        out += section_text(sec, "")
    if not m.sections:
        out += ["no impl produced a measurement", ""]
    if m.missing:
        out.append("not measured:")
        out += [f"  {x.name} ({x.where}): {x.status}: {x.reason or 'no reason given'}" for x in m.missing]
        out.append("")
    if n_warnings:
        out += [f"{n_warnings} input warning(s): see warnings.txt", ""]
    return "\n".join(out).encode("ascii", "replace").decode("ascii")
