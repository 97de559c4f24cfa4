"""report.html: one self-contained page (no external fetch): the charts inline, a summary table, the impls that
were not measured with their reasons and log tails, per-impl provenance, and a small tooltip script."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from html import escape

import report_svg
from report_axis import fmt_ms, fmt_rate
from report_charts import detail
from report_model import Group, Model, Series
from report_records import UNSTABLE_SPREAD, Upstream
from report_text import COLS_MAX, best_per_workload

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;margin:24px auto;
max-width:1160px;padding:0 16px;color:#111;font-size:14px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 12px}.banner{background:#fff4e5;border:1px solid #f0b35a;padding:8px 12px;margin:12px 0}
figure{margin:16px 0;overflow-x:auto}svg.chart{display:block;max-width:100%;height:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}td,th{border:1px solid #ddd;padding:3px 7px}
th{background:#f6f6f6;text-align:left}td.num{text-align:right;white-space:nowrap}td.best{font-weight:700;background:#eefbea}
td.wrong{color:#c00;background:#fff0f0}td.none{color:#999;text-align:center}.tf{color:#666;font-size:12px}
td.unstable{background-image:repeating-linear-gradient(135deg,#0000 0 6px,#f3e3b0 6px 8px)}
table.group{margin:6px 0 14px}table.group caption{text-align:left;font-weight:700;padding:4px 0}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:middle}
.status{font-weight:700;text-transform:uppercase;font-size:11px;padding:1px 5px;border-radius:3px;color:#fff}
.status.failed,.status.error,.status.missing{background:#c00}.status.skipped{background:#b07000}.status.ok{background:#2a7d2a}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px;max-height:260px;margin:2px 0;white-space:pre-wrap;
word-break:break-all}code{font-size:12px}
details{margin:6px 0;border:1px solid #e4e4e4;padding:6px 10px}summary{cursor:pointer}
dl{display:grid;grid-template-columns:120px minmax(0,1fr);gap:2px 12px;margin:8px 0}dt{color:#555}dd{margin:0;min-width:0}
.scroll{overflow-x:auto}
#tooltip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:6px 9px;border-radius:4px;
font-size:12px;line-height:1.45;max-width:460px;white-space:pre-line;z-index:10;box-shadow:0 2px 8px #0004}
#tooltip b{font-size:13px}.warn{color:#a00;font-family:monospace;font-size:12px}
"""

# Moves each SVG <title> into data-tip (so only one tooltip shows), then shows #tooltip for the element hovered:
# a point (its numbers and its series' impl, backend, versions), a series, a legend entry or a note.
SCRIPT = """
(function () {
  var tip = document.getElementById('tooltip');
  document.querySelectorAll('svg.chart title').forEach(function (t) {
    if (t.parentNode.tagName.toLowerCase() !== 'svg') t.parentNode.setAttribute('data-tip', t.textContent);
    t.parentNode.removeChild(t);
  });
  function seriesOf(el) {
    var slug = el.getAttribute('data-series'), svg = el.closest('svg');
    return slug && svg ? svg.querySelector('.series[data-series="' + slug + '"]') : null;
  }
  function seriesLines(g) {
    if (!g) return [];
    var d = g.dataset, kind = [d.family, d.backend].filter(Boolean).join(' / ');
    if (d.compile && d.compile !== 'none') kind += ', compile ' + d.compile;
    return [d.label, kind, d.packages].filter(Boolean);
  }
  function show(lines, e) {
    tip.textContent = '';
    lines.forEach(function (line, i) {
      var node = i === 0 ? document.createElement('b') : document.createTextNode(line);
      if (i === 0) node.textContent = line;
      tip.appendChild(node);
      if (i < lines.length - 1) tip.appendChild(document.createTextNode('\\n'));
    });
    tip.hidden = false;
    move(e);
  }
  function move(e) {
    if (tip.hidden) return;
    var x = e.clientX + 14, y = e.clientY + 14, r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth) x = e.clientX - r.width - 14;
    if (y + r.height > window.innerHeight) y = e.clientY - r.height - 14;
    tip.style.left = Math.max(0, x) + 'px';
    tip.style.top = Math.max(0, y) + 'px';
  }
  document.addEventListener('mouseover', function (e) {
    var t = e.target, el = t.closest ? t.closest('.pt, .series, .legend-entry, [data-tip]') : null;
    if (!el) { tip.hidden = true; return; }
    if (el.classList.contains('pt')) {
      var g = seriesOf(el.closest('[data-series]')), own = (el.getAttribute('data-tip') || '').split('\\n');
      show(seriesLines(g).concat(own.slice(1).length ? [own[0].split(' · ').pop()].concat(own.slice(1)) : []), e);
    } else if (el.classList.contains('series') || el.classList.contains('legend-entry')) {
      show(seriesLines(seriesOf(el)).concat(el.classList.contains('legend-entry') && el.querySelector('.wrong-label')
        ? ['✗ some results differ from the fp32 reference'] : []), e);
    } else {
      show((el.getAttribute('data-tip') || '').split('\\n'), e);
    }
  });
  document.addEventListener('mousemove', move);
})();
"""


def e(v) -> str:
    return escape(str(v), quote=True)


def _device(d: dict) -> str:
    if not isinstance(d, dict) or not d:
        return ""
    gpus = d.get("gpus") or []
    names = [g.get("name", "") if isinstance(g, dict) else str(g) for g in gpus] if isinstance(gpus, list) else []
    parts = [f"{len(names)}× {names[0]}" if len(set(names)) == 1 and len(names) > 1 else ", ".join(names)]
    parts += [f"driver {d['driver']}" if d.get("driver") else "", f"CPU {d['cpu']}" if d.get("cpu") else ""]
    return " · ".join(p for p in parts if p)


def _speedup(m: Model, s: Series) -> str:
    """Geomean speedup over the baseline on the ranking's shared workloads: the figure the rows are ranked by."""
    base = next((b for b in m.series if b.upstream.name == m.baseline or b.label == m.baseline), None)
    g, gb = m.ranking.geomean(s), m.ranking.geomean(base) if base is not None else None
    return f"{gb / g:.3g}×" if g and gb else "-"


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


def _verdict(s: Series) -> str:
    checked = [r.ok for r in s.points.values() if r.ok is not None]
    bad = checked.count(False)
    if bad:
        return f"<td class='wrong'>✗ wrong {bad}/{len(s.points)}</td>"
    return "<td>✓</td>" if checked else "<td class='none'>not checked</td>"


def _impl_cell(s: Series) -> str:
    return f"<td><span class='sw' style='background:{s.style.color}'></span>{e(s.label)}</td>"


def summary_table(m: Model) -> str:
    """The ranking (the figure rows are ordered by, over the workloads they all share), then one table per
    shape group with a column per workload, at most COLS_MAX columns wide so no table outgrows the page."""
    rk = m.ranking
    gm_head = f"geomean p50 (ms)<br><span class='tf'>over {len(rk.shared)} shared workloads</span>"
    out = ["<div class='scroll'><table id='summary'><thead><tr><th>#</th><th>impl</th><th>backend</th>",
           f"<th>{gm_head}</th><th>geomean speedup<br><span class='tf'>vs {e(m.baseline)}, same workloads</span></th>"
           "<th>measured</th><th>correct</th></tr></thead><tbody>"]
    total = len(m.workloads)
    for i, s in enumerate(rk.rows(), 1):
        g = rk.geomean(s)
        unstable = sum(r.unstable for r in s.points.values())
        flag = f" <span class='tf' title='the median moved too much to quote: wide 95 % CI or p10–p90 spread'>~{unstable} " \
               "unstable</span>" if unstable else ""
        out.append(f"<tr data-series='{e(s.slug)}'><td class='num'>{i if g is not None else '–'}</td>{_impl_cell(s)}"
                   f"<td class='tf'>{e(s.tags.get('backend', ''))}</td>"
                   f"<td class='num geomean'>{fmt_ms(g) if g is not None else 'not ranked'}</td>"
                   f"<td class='num'>{_speedup(m, s)}</td><td class='num'>{len(s.points)}/{total}{flag}</td>"
                   f"{_verdict(s)}</tr>")
    out.append(f"</tbody></table></div><p class='sub' id='ranking'>Rows {e(rk.caption())}.</p>")
    best = best_per_workload(m)
    for g in m.groups:
        for start in range(0, len(g.workloads), COLS_MAX):
            out.append(_group_table(m, g, g.workloads[start:start + COLS_MAX], best))
    out.append(f"<p class='sub'>p50 latency in ms and throughput; bold green: fastest correct result per workload; "
               f"red ✗: differs from the fp32 reference beyond tolerance; striped ~: unstable (the harness found the "
               f"median's 95 % CI or its p10–p90 spread too wide; older records: spread above {UNSTABLE_SPREAD:.0%}).</p>")
    return "".join(out)


def _group_table(m: Model, g: Group, workloads, best: dict) -> str:
    rows = [s for s in m.ranking.rows() if any(w.name in s.points or any(p.workload == w.name for p in s.problems)
                                               for w in workloads)]
    head = "".join(f"<th>{e(w.name)}<br><span class='tf'>{e(w.sublabel())}</span></th>" for w in workloads)
    out = [f"<div class='scroll'><table class='group'><caption>{e(g.title)}</caption><thead><tr><th>impl</th>",
           head, "</tr></thead><tbody>"]
    for s in rows:
        out.append(f"<tr data-series='{e(s.slug)}'>{_impl_cell(s)}")
        for w in workloads:
            r = s.points.get(w.name)
            if r is None:
                bad = next((p for p in s.problems if p.workload == w.name), None)
                out.append(f"<td class='none' title='{e(bad.reason if bad else '')}'>{e(bad.status if bad else '-')}</td>")
                continue
            cls = "num wrong" if r.ok is False else "num best" if best.get(w.name) is s else "num"
            title = f" title='unstable: wide confidence interval or p10–p90 spread ({(r.spread or 0):.0%} of the median)'" if r.unstable else ""
            out.append(f"<td class='{cls}{' unstable' if r.unstable else ''}'{title}>{fmt_ms(r.p50)}"
                       f"{' ✗' if r.ok is False else ''}{' ~' if r.unstable else ''}<br>"
                       f"<span class='tf'>{fmt_rate(r.tflops)}</span></td>")
        out.append("</tr>")
    return "".join(out) + "</tbody></table></div>"


def missing_section(m: Model) -> str:
    out = ["<section id='not-measured'><h2>Not measured</h2>"]
    if not m.missing and not any(s.problems for s in m.series):
        return out[0] + "<p>Every impl produced results.</p></section>"
    for x in m.missing:
        out.append(f"<div class='missing' data-impl='{e(x.name)}'><p><b>{e(x.name)}</b> "
                   f"<span class='status {e(x.status)}'>{e(x.status)}</span> {e(x.reason or 'no reason given')}</p>")
        if x.log_tail.strip():
            out.append(f"<pre>{e(x.log_tail.rstrip())}</pre>")
        out.append("</div>")
    problems = [(s.label, p) for s in m.series for p in s.problems]
    if problems:
        out.append("<h3>Workloads without a result</h3><table><tr><th>impl</th><th>workload</th><th>status</th>"
                   "<th>reason</th></tr>")
        out += [f"<tr><td>{e(n)}</td><td>{e(p.workload)}</td><td>{e(p.status)}</td><td>{e(p.reason)}</td></tr>"
                for n, p in problems]
        out.append("</table>")
    return "".join(out) + "</section>"


def _provenance(u: Upstream, s: Series | None) -> str:
    man = u.manifest
    pkgs = [str(p) for p in man.get("packages") or []]
    key_pkgs = s.packages() if s else ""
    items = [("status", f"{u.status}{' (cached)' if u.cached else ''}{': ' + u.reason if u.reason else ''}"),
             ("device", _device(man.get("device") or {})), ("cache key", u.key or ""),
             ("run", _run(man)),
             ("key versions", key_pkgs), ("artifacts", u.entry or "")]
    body = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in items if v)
    if pkgs:
        body += (f"<dt>packages</dt><dd><details><summary>{len(pkgs)} installed</summary>"
                 f"<pre>{e(chr(10).join(pkgs))}</pre></details></dd>")
    repro = man.get("reproduce")
    if repro:
        body += f"<dt>reproduce</dt><dd><pre><code>{e(repro)}</code></pre></dd>"
    return (f"<details class='prov' id='prov-{e(u.name)}' open><summary><b>{e(u.name)}</b> "
            f"<span class='status {e(u.status)}'>{e(u.status)}</span> {e((u.key or '')[:12])}</summary><dl>{body}</dl></details>")


def page(m: Model, charts: list, warnings: list[str]) -> str:
    """The report's HTML; `charts` are rendered inline with per-chart id prefixes, each followed by its detail
    chart (the impls near the best, on their own axis) when a few far-off impls squash the others."""
    by_up = {s.upstream.name: s for s in m.series}
    wrong = [s.label for s in m.series if s.wrong]
    banner = []
    if m.missing:
        names = ", ".join(f"{x.name} ({x.status})" for x in m.missing)
        banner.append(f"<div class='banner'>Not measured: {e(names)} — <a href='#not-measured'>reasons and logs</a></div>")
    if wrong:
        banner.append(f"<div class='banner'>Wrong results (differ from the fp32 reference): {e(', '.join(wrong))}</div>")
    shown = [x for c in charts for x in (c, detail(c)) if x is not None]
    figures = "".join(f"<figure id='{c.name}'>{report_svg.render(c, prefix=c.name + '-', show_absent=i == 0)}</figure>"
                      for i, c in enumerate(shown))
    warn = ("<h2>Input warnings</h2>" + "".join(f"<div class='warn'>{e(w)}</div>" for w in warnings)) if warnings else ""
    shape = m.common_shape() if len(m.groups) <= 1 else f"{len(m.groups)} shape groups"
    sub = " · ".join(p for p in (m.device, shape, f"{len(m.series)} impls measured, {len(m.missing)} not") if p)
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Benchmark report</title>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        "<link rel='icon' href='data:,'>",  # no favicon request (and no console error) from file://
        f"<style>{CSS}</style></head><body>",
        f"<h1>Attention benchmark report</h1><p class='sub'>{e(sub)}</p>", *banner, figures,
        "<h2>Summary</h2>", summary_table(m) if m.series else "<p>No measurements.</p>", missing_section(m),
        "<h2>Provenance</h2>", "".join(_provenance(u, by_up.get(u.name)) for u in m.upstreams), warn,
        "<div id='tooltip' role='tooltip' hidden></div>", f"<script>{SCRIPT}</script></body></html>\n",
    ])
