"""report.html from a Jinja2 template (report.html.j2, autoescaped): an index, then one section per op and mode with its
charts, ranking and tables, then what was not measured, provenance and input warnings. This module only shapes
the model into rows; every string reaches the page through the template's escaping (the charts' SVG is built
by ElementTree, which escapes its own text and attributes, and is the one thing passed as markup)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup

from report_figures import Chart
from report_format import fmt_ms, fmt_rate
from report_model import Model, Section, Series
from report_records import UNSTABLE_SPREAD, Upstream
from report_text import COLS_MAX, best_per_workload

TEMPLATE = "report.html.j2"


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent)),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


def _device(d: dict) -> str:
    if not isinstance(d, dict) or not d:
        return ""
    gpus = d.get("gpus") or []
    names = [g.get("name", "") if isinstance(g, dict) else str(g) for g in gpus] if isinstance(gpus, list) else []
    parts = [f"{len(names)}× {names[0]}" if len(set(names)) == 1 and len(names) > 1 else ", ".join(names)]
    parts += [f"driver {d['driver']}" if d.get("driver") else "", f"CPU {d['cpu']}" if d.get("cpu") else ""]
    return " · ".join(p for p in parts if p)


def _when(t) -> str:
    """A manifest time (epoch seconds) as ISO-8601 UTC; text is shown as it is."""
    if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and 0 <= t < 1e11:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(t) if t not in (None, "") else "?"


def _run(man: dict) -> str:
    start, end = man.get("started"), man.get("finished")
    if start in (None, ""):
        return ""
    took = ""
    if all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end)) and end >= start:
        took = f" ({end - start:.1f} s)"
    return f"{_when(start)} → {_when(end)}{took}"


def _verdict(s: Series) -> tuple[str, str]:
    checked = [r.ok for r in s.points.values() if r.ok is not None]
    bad = checked.count(False)
    if bad:
        return "wrong", f"✗ wrong {bad}/{len(s.points)}"
    return ("", "✓") if checked else ("none", "not checked")


def _speedup(sec: Section, s: Series) -> str:
    """Geomean speedup over the baseline on the ranking's shared workloads: the figure the rows are ranked by."""
    base = sec.baseline
    g, gb = sec.ranking.geomean(s), sec.ranking.geomean(base) if base is not None else None
    return f"{gb / g:.3g}×" if g and gb else "-"


def _ranking_rows(sec: Section) -> list[dict]:
    rk = sec.ranking
    rows = []
    for i, s in enumerate(rk.rows(), 1):
        g = rk.geomean(s)
        best_rate = max((sec.rate(r) or 0 for r in s.points.values() if not r.resident), default=0)
        cls, verdict = _verdict(s)
        rows.append({"slug": s.slug, "rank": i if g is not None else "–", "label": s.label, "color": s.style.color,
                     "backend": s.tags.get("backend", ""), "geomean": fmt_ms(g) if g is not None else "not ranked",
                     "speedup": _speedup(sec, s), "measured": f"{len(s.points)}/{len(sec.workloads)}",
                     "unstable": sum(r.unstable for r in s.points.values()),
                     "throttled": sum(r.throttled for r in s.points.values()),
                     "best": fmt_rate(best_rate, sec.unit) if best_rate else "—",
                     "verdict_class": cls, "verdict": verdict})
    return rows


def _cell(sec: Section, s: Series, wid: str, best: dict) -> dict:
    r = s.points.get(wid)
    if r is None:
        bad = next((p for p in s.problems if p.wid == wid), None)
        return {"missing": True, "status": bad.status if bad else "-", "reason": bad.reason if bad else ""}
    short = "GB/s" if sec.metric == "gbps" else "TF/s"  # narrow cells: eight columns fit the page
    rate = "L2-resident" if r.resident and sec.metric == "gbps" else fmt_rate(sec.rate(r), short)
    pct = sec.pct(r)
    classes = ["num"] + (["wrong"] if r.ok is False else ["best"] if best.get(wid) is s else []) \
        + (["unstable"] if r.unstable else []) + (["throttled"] if r.throttled else [])
    return {"missing": False, "cls": " ".join(classes), "ms": fmt_ms(r.p50), "wrong": r.ok is False,
            "unstable": r.unstable, "spread": f"{(r.spread or 0):.0%}", "rate": rate,
            "throttled": r.throttled, "throttle": ", ".join(r.throttle) or "SM clock below 90 % of its max",
            "pct": f"{pct:.0f}%" if pct is not None else ""}


def _tables(sec: Section) -> list[dict]:
    """One table per chart group, at most COLS_MAX workload columns wide so no table outgrows the page."""
    best = best_per_workload(sec)
    out = []
    for g in sec.groups:
        for start in range(0, len(g.workloads), COLS_MAX):
            ws = g.workloads[start:start + COLS_MAX]
            rows = [s for s in sec.ranking.rows()
                    if any(w.wid in s.points or any(p.wid == w.wid for p in s.problems) for w in ws)]
            out.append({"title": g.title, "head": [(w.wid, w.x_label(sec.x)) for w in ws],
                        "rows": [{"slug": s.slug, "label": s.label, "color": s.style.color,
                                  "cells": [_cell(sec, s, w.wid, best) for w in ws]} for s in rows]})
    return out


def _figures(sec: Section, charts: list[tuple[Chart, Chart | None]], svgs: dict) -> list[dict]:
    out = []
    for i, (c, d) in enumerate(charts):
        for chart in (c, d):
            if chart is None:
                continue
            absent = [(m.name, m.status, m.reason) for m in sec.missing] if i == 0 and chart is c else []
            out.append({"id": chart.name, "svg": Markup(svgs[chart.name]), "notes": list(chart.notes),
                        "absent": absent})
    return out


def _problems(sec: Section) -> list[tuple[str, object]]:
    return [(s.label, p) for s in sec.series for p in s.problems]


def _provenance(u: Upstream, s: Series | None) -> dict:
    man = u.manifest
    items = [("op", u.op), ("status", f"{u.status}{' (cached)' if u.cached else ''}{': ' + u.reason if u.reason else ''}"),
             ("device", _device(man.get("device") or {})), ("cache key", u.key or ""), ("run", _run(man)),
             ("key versions", s.packages() if s else ""), ("artifacts", u.entry or "")]
    return {"name": u.name, "status": u.status, "key": (u.key or "")[:12], "fields": [(k, v) for k, v in items if v],
            "packages": [str(p) for p in man.get("packages") or []], "reproduce": man.get("reproduce") or ""}


def page(m: Model, charts: dict[str, list[tuple[Chart, Chart | None]]], svgs: dict[str, str], warnings: list[str]) -> str:
    """The whole page. charts: section key -> its (chart, detail) pairs; svgs: chart name -> inline SVG text."""
    by_up = {s.upstream.name: s for s in m.series}
    sections = []
    for sec in m.sections:
        ceiling, label = sec.ceiling
        sections.append({
            "op": sec.op, "key": sec.key, "mode": sec.mode, "title": sec.title,
            "shape": sec.common_shape() if len(sec.groups) <= 1 else
            f"{len(sec.groups)} chart groups", "metric": sec.unit, "ceiling": label,
            "n_series": len(sec.series), "n_missing": len(sec.missing),
            "figures": _figures(sec, charts.get(sec.key, []), svgs),
            "ranking": _ranking_rows(sec), "caption": sec.ranking.caption(),
            "baseline": sec.baseline.label if sec.baseline else "", "shared": len(sec.ranking.shared),
            "tables": _tables(sec), "problems": _problems(sec),
        })
    wrong = [s.label for s in m.series if s.wrong]
    sub = " · ".join(p for p in (m.device, f"{len(m.sections)} ops", f"{len(m.series)} impls measured, "
                                 f"{len(m.missing)} not") if p)
    return _env().get_template(TEMPLATE).render(
        subtitle=sub, sections=sections, missing=m.missing, wrong=wrong, unstable_spread=f"{UNSTABLE_SPREAD:.0%}",
        provenance=[_provenance(u, by_up.get(u.name)) for u in m.upstreams], warnings=warnings,
    )

