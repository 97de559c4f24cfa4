"""Charts drawn by matplotlib (SVG, no pyplot state), then annotated for the page's hover script.

Every artist of a series carries a gid: `series--<slug>` (its line), `points--<slug>` (its markers; wrong ones
`points--<slug>--wrong`), `whisk--<slug>`, `ring--<slug>` (unstable points), `legend--<slug>` (its legend text).
The SVG is then read back and those groups get `class` and `data-*` attributes: `.series`, `.points` whose markers
are `.pt` with their tooltip in `data-tip`, `.legend-entry`. Output is the same bytes for the same input:
`svg.hashsalt` fixes matplotlib's ids, the date is left out, text stays text (`svg.fonttype = none`).
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402 - after choosing the backend
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from report_figures import Chart  # noqa: E402

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG)
ET.register_namespace("xlink", XLINK)
for _prefix, _uri in (("dc", "http://purl.org/dc/elements/1.1/"), ("cc", "http://creativecommons.org/ns#"),
                     ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#")):
    ET.register_namespace(_prefix, _uri)
RC = {"svg.hashsalt": "opbench-report", "svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9,
      "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#e6e6e6",
      "grid.linewidth": 0.6, "axes.axisbelow": True}
METADATA = {"Date": None, "Creator": "opbench combine stage (matplotlib)"}
WRONG = "#c00000"
LABEL_MAX = 22  # characters of a workload id on the x axis (the tables keep the whole name)
GID = re.compile(r"^(series|points|whisk|ring|legend)--(.+?)(--wrong)?$")


def _cut(text: str, n: int = LABEL_MAX) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _cut_middle(text: str, n: int) -> str:
    """Cut from the middle: series often differ only at the end (`impl @ package 1.0.4` against `… 1.0.5`)."""
    if len(text) <= n:
        return text
    tail = (n - 1) // 2
    return text[: n - 1 - tail] + "…" + text[len(text) - tail:]


def _log_axis(values: list[float]) -> bool:
    pos = [v for v in values if v > 0]
    return bool(pos) and max(pos) / min(pos) > 20


def figure(c: Chart) -> Figure:
    """The chart as a matplotlib figure: one line, marker set and whisker set per series, a legend outside."""
    with matplotlib.rc_context({k: v for k, v in RC.items() if k in matplotlib.rcParams}):
        fig = Figure(figsize=(10.5, 4.6), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        fig.suptitle(c.title, x=0.01, ha="left", fontsize=11, fontweight="bold")
        ax.set_title(c.subtitle, loc="left", fontsize=8, color="#555555")
        xs = range(len(c.categories))
        rotate = len(c.categories) > 8 or any(len(w) > 12 for w, _ in c.categories)
        sep = " · " if rotate else "\n"  # a rotated label reads on one line
        ax.set_xticks(list(xs), [f"{_cut(w)}{sep}{x}" if x else _cut(w) for w, x in c.categories])
        if rotate:
            for t in ax.get_xticklabels():
                t.set_rotation(30)
                t.set_horizontalalignment("right")
        ax.set_xlim(-0.5, max(len(c.categories) - 0.5, 0.5))
        ax.set_ylabel(c.ylabel)
        values = [p.y for ln in c.lines for p in ln.points] + [v for v, _ in c.refs]
        log = _log_axis(values)
        if log:
            ax.set_yscale("log")
        elif values and c.zero:
            ax.set_ylim(0, max(values) * 1.08)
        handles, labels = [], []
        step = min(0.04, 0.5 / max(len(c.lines), 1))  # each series a little apart: no marker hides another
        for k, ln in enumerate(c.lines):
            st = ln.style
            dx = (k - (len(c.lines) - 1) / 2) * step
            pts = [replace(p, i=p.i + dx) for p in ln.points]
            ax.plot([p.i for p in pts], [p.y for p in pts], color=st.color, linestyle=st.dash, linewidth=1.5,
                    gid=f"series--{ln.slug}")
            whisk = [p for p in pts if p.lo is not None and p.hi is not None]
            if whisk:
                ax.vlines([p.i for p in whisk], [min(p.lo, p.hi) for p in whisk], [max(p.lo, p.hi) for p in whisk],
                          color=st.color, linewidth=0.9, alpha=0.7, gid=f"whisk--{ln.slug}")
            good = [p for p in pts if not p.wrong]
            bad = [p for p in pts if p.wrong]
            if good:
                ax.plot([p.i for p in good], [p.y for p in good], linestyle="none", marker=st.marker, markersize=5.5,
                        color=st.color, gid=f"points--{ln.slug}")
            if bad:
                ax.plot([p.i for p in bad], [p.y for p in bad], linestyle="none", marker="X", markersize=8,
                        markerfacecolor="white", markeredgecolor=WRONG, markeredgewidth=1.4,
                        gid=f"points--{ln.slug}--wrong")
            ringed = [p for p in pts if p.unstable]
            if ringed:
                ax.plot([p.i for p in ringed], [p.y for p in ringed], linestyle="none", marker="o", markersize=12,
                        markerfacecolor="none", markeredgecolor=st.color, markeredgewidth=1.0, gid=f"ring--{ln.slug}")
            handles.append(Line2D([], [], color=st.color, linestyle=st.dash, marker=st.marker, markersize=5))
            labels.append(_cut_middle(ln.label, 40) + (f" {ln.suffix}" if ln.suffix else "") + (" ✗ wrong" if ln.wrong else ""))
        for value, label in c.refs:
            ax.axhline(value, color="#888888", linestyle=(0, (5, 3)), linewidth=1.0, gid="ref")
            ax.annotate(label, (0.995, value), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                        fontsize=8, color="#555555")
        if c.message:
            ax.text(0.5, 0.5, c.message, transform=ax.transAxes, ha="center", va="center", fontsize=10, color="#777777")
            if not values:
                ax.set_yticks([])
        if handles:
            leg = fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
            for text, ln in zip(leg.get_texts(), c.lines):
                text.set_gid(f"legend--{ln.slug}")
                if ln.wrong:
                    text.set_color(WRONG)
        if log and values and max(values) / min(v for v in values if v > 0) < 1e4:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        return fig


def _attrs(c: Chart) -> dict:
    """slug -> (its data-* attributes, the tips of its points in drawing order, split good / wrong)."""
    out = {}
    for ln in c.lines:
        series_tip = "\n".join(p for p in (ln.label, ln.kind, ln.packages) if p)
        if ln.wrong:
            series_tip += "\n✗ some results differ from the fp32 reference"
        out[ln.slug] = ({"data-series": ln.slug, "data-label": ln.label, "data-tip": series_tip},
                        [p.tip for p in ln.points if not p.wrong], [p.tip for p in ln.points if p.wrong])
    return out


def annotate(svg_text: str, c: Chart) -> ET.Element:
    """The SVG's tree with the page's classes and data attributes on every series' groups."""
    root = ET.fromstring(svg_text)
    root.set("class", "chart")
    info = _attrs(c)
    for g in root.iter(f"{{{SVG}}}g"):
        m = GID.match(g.get("id", ""))
        if not m or m.group(2) not in info:
            continue
        kind, slug, wrong = m.group(1), m.group(2), bool(m.group(3))
        attrs, good_tips, bad_tips = info[slug]
        g.set("data-series", slug)
        if kind == "series":
            g.set("class", "series")
            for k, v in attrs.items():
                g.set(k, v)
        elif kind == "points":
            g.set("class", "points")
            marks = [u for u in g.iter(f"{{{SVG}}}use")]
            for u, tip in zip(marks, bad_tips if wrong else good_tips):
                u.set("class", "pt")
                u.set("data-tip", f"{attrs['data-label']}\n{tip}")
        elif kind == "legend":
            g.set("class", "legend-entry")
            g.set("data-tip", attrs["data-tip"])
        else:
            g.set("class", f"series-{kind}")
    return root


def svg_of(c: Chart) -> ET.Element:
    buf = io.StringIO()
    fig = figure(c)
    with matplotlib.rc_context({"svg.hashsalt": RC["svg.hashsalt"], "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata=METADATA)
    return annotate(buf.getvalue(), c)


def file_text(root: ET.Element) -> str:
    """A standalone SVG file."""
    return "<?xml version='1.0' encoding='utf-8'?>\n" + ET.tostring(root, encoding="unicode") + "\n"


def inline(root: ET.Element, name: str) -> str:
    """The SVG for the page, its own id `<name>-chart`: every id (and every reference to one) prefixed with the
    chart's name, so many charts share one page."""
    prefix = f"{name}-"
    page_root = ET.Element(root.tag, dict(root.attrib, id="chart"))
    page_root.extend(child for child in root if child.tag != f"{{{SVG}}}metadata")  # RDF: the file keeps it
    text = ET.tostring(page_root, encoding="unicode")
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    return text
