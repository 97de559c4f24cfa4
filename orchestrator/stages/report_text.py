"""summary.txt: the impl x workload table for a terminal (p50 ms and TFLOP/s, marks for best and wrong), ASCII only."""

from __future__ import annotations

import math

from report_axis import fmt_ms
from report_model import Model, Series

WIDTH = 120
CELL = 15


def _cell(s: Series, wl: str, best: dict, width: int = CELL) -> str:
    r = s.points.get(wl)
    if r is None:
        bad = next((p for p in s.problems if p.workload == wl), None)
        return (bad.status if bad else "-").rjust(width)
    mark = "!" if r.ok is False else "*" if best.get(wl) is s else " "
    rate = "    -" if r.tflops is None else f"{r.tflops:5.0f}" if r.tflops >= 10 else f"{r.tflops:5.1f}"
    return f"{mark}{fmt_ms(r.p50)}{rate}".rjust(width)


def _speed(s: Series) -> float:
    vals = [r.p50 for r in s.points.values() if r.p50]
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else math.inf


def best_per_workload(m: Model) -> dict:
    """The fastest series per workload among results that are not known to be wrong."""
    best = {}
    for w in m.workloads:
        cands = [s for s in m.series if w.name in s.points and s.points[w.name].ok is not False]
        if cands:
            best[w.name] = min(cands, key=lambda s: (s.points[w.name].p50, s.label))
    return best


def summary(m: Model, n_warnings: int) -> str:
    """The whole text; rows fastest first (geometric mean of p50), columns split into blocks that fit WIDTH."""
    rows = sorted(m.series, key=lambda s: (_speed(s), s.label))
    best = best_per_workload(m)
    name_w = max([len(s.label) for s in rows] + [14]) + 1
    head = " - ".join(p for p in (m.device, m.common_shape()) if p) or "results"
    out = [f"Benchmark summary: {head}",
           "cells: p50 ms, TFLOP/s;  * fastest correct result   ! wrong result (differs from the fp32 reference)", ""]
    names = [w.name for w in m.workloads]
    cell = max([CELL] + [len(n) + 2 for n in names])  # whole workload names, never cut
    per_block = max(1, (WIDTH - name_w) // cell)
    for start in range(0, len(names), per_block) if rows else ():
        block = names[start:start + per_block]
        out.append("impl".ljust(name_w) + "".join(n.rjust(cell) for n in block))
        out.append("-" * (name_w + cell * len(block)))
        for s in rows:
            out.append(s.label.ljust(name_w) + "".join(_cell(s, w, best, cell) for w in block))
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
