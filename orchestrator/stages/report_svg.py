"""One hand-written SVG line chart: categories on x, one styled series per impl, a legend that names the impls
with no data and why. Every series is `<g id="series--SLUG" class="series" data-series="SLUG">` and its legend
entry carries the same data-series, so CSS (hover) and scripts can tie the two together."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from report_axis import Scale, fmt, make_scale, marker
from report_model import Style

W, LEFT, TOP, PLOT_H, LEGEND_W, GAP = 1100, 80, 74, 420, 330, 28
PLOT_W = W - LEFT - LEGEND_W - GAP
FONT = "system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif"
WRONG = "#d62728"
LABEL_MAX = 24  # workload names longer than this are cut (full name in the tooltip)


@dataclass(frozen=True)
class Point:
    x: int  # category index
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
    attrs: tuple  # (name, value) pairs put on the series group as data-NAME
    tip: str
    points: tuple
    suffix: str = ""

    @property
    def wrong(self) -> bool:
        return any(p.wrong for p in self.points)


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    subtitle: str
    y_label: str
    categories: tuple  # (name, sublabel)
    lines: tuple
    refs: tuple = ()  # (value, label) horizontal reference lines
    notes: tuple = ()  # (name, status, reason) of impls not drawn in this chart only (off scale, no TFLOP/s)
    message: str = ""  # shown in the plot area when there is nothing to draw
    zero: bool = True  # a linear axis starts at zero
    better: str = "lower"  # which way is better: lower | higher
    unit: str = ""
    absent: tuple = ()  # (name, status, reason) of impls measured nowhere: listed once per file or page
    kind: str = ""  # latency | throughput | speedup: the file it goes into


def a(v) -> str:
    return escape(str(v), quote=True)


def style_block(slugs: list[str]) -> str:
    """Hover: hovering a series, its points or its legend entry thickens its line and fades the others (pure
    CSS via :has, so it works in the bare SVG file too)."""
    rules = [
        ".series .line{fill:none;stroke-width:1.9;stroke-linejoin:round}",
        ".series .hit{fill:none;stroke:transparent;stroke-width:12}",
        ".legend-entry{cursor:default}.legend-entry:hover text{font-weight:700}",
        ".series,.points,.legend-entry{transition:opacity .12s}",
        ".tick{font-size:11px;fill:#444}.grid{stroke:#e4e4e4}.grid.minor{stroke:#f2f2f2}",
    ]
    for s in slugs:
        rules.append(f'svg:has([data-series="{s}"]:hover) [data-series]:not([data-series="{s}"]){{opacity:.15}}')
        rules.append(f'svg:has([data-series="{s}"]:hover) .series[data-series="{s}"] .line{{stroke-width:3.6}}')
    return "<style>" + "".join(rules) + "</style>"


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _wrap(text: str, width: int, lines: int) -> list[str]:
    out, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    out.append(cur)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = _cut(out[-1] + " …", width)
    return [_cut(s, width) for s in out]


def render_file(charts: list[Chart]) -> str:
    """One SVG file for charts of one kind: the chart itself, or (one per shape group) panels stacked in one
    image, each with its own ids, axis and title; impls measured nowhere are listed once, in the first panel."""
    if len(charts) == 1:
        return render(charts[0])
    panels, y = [], 0
    for i, c in enumerate(charts):
        panels.append(render(c, prefix=f"{c.name}-", show_absent=i == 0, y=y).rstrip("\n"))
        y += height(c, i == 0)
    title = f"{charts[0].title.split(' · ')[0]}: {len(charts)} shape groups"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="panels" width="{W}" height="{y}" '
            f'viewBox="0 0 {W} {y}">\n<title>{a(title)}</title>\n' + "\n".join(panels) + "\n</svg>\n")


def _x_layout(c: Chart) -> tuple[float, bool, float]:
    n_cat = max(len(c.categories), 1)
    band = PLOT_W / n_cat
    longest = max((len(_cut(n, LABEL_MAX)) for n, _ in c.categories), default=0)
    rotate = longest * 6.4 > band - 8
    return band, rotate, (longest * 6.4 * 0.72 + 24) if rotate else 40


def height(c: Chart, show_absent: bool = True) -> int:
    _, _, x_h = _x_layout(c)
    return int(max(TOP + PLOT_H + x_h + 34, TOP + _legend(c, 0, TOP, show_absent)[1] + 16))


def render(c: Chart, prefix: str = "", show_absent: bool = True, y: int | None = None) -> str:
    """The chart's SVG text; `prefix` makes its ids unique when several charts share one HTML page or file,
    `show_absent` lists the impls measured nowhere (once per page), `y` places it as a panel in a larger SVG."""
    band, rotate, _ = _x_layout(c)
    legend = _legend(c, LEFT + PLOT_W + GAP, TOP, show_absent)
    h = height(c, show_absent)
    ys = [v for ln in c.lines for p in ln.points for v in (p.y, p.lo, p.hi) if v is not None]
    scale = make_scale(ys, TOP + PLOT_H, TOP, tuple(v for v, _ in c.refs), zero=c.zero)
    place = f' x="0" y="{y}"' if y is not None else ""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{prefix}chart" data-chart="{a(c.name)}"{place} '
        f'width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="{a(FONT)}" font-size="12" '
        f'role="img" aria-label="{a(c.title)}">',
        f"<title>{a(c.title)}</title>",
        style_block([ln.slug for ln in c.lines]),
        f'<rect width="{W}" height="{h}" fill="#fff"/>',
        f'<text x="{LEFT}" y="26" font-size="17" font-weight="700" fill="#111">{a(c.title)}</text>',
        f'<text x="{LEFT}" y="46" font-size="12" fill="#555">{a(c.subtitle)}</text>',
    ]
    out += _axes(c, scale, band, rotate, prefix)
    if c.message:
        out.append(f'<text class="message" x="{LEFT + PLOT_W / 2:.1f}" y="{TOP + PLOT_H / 2:.1f}" '
                   f'text-anchor="middle" font-size="14" fill="#a00">{a(c.message)}</text>')
    out.append(f'<g clip-path="url(#{prefix}clip)">')
    n = len(c.lines)
    step = min(7.0, band * 0.55 / max(n - 1, 1))
    dx = [(i - (n - 1) / 2) * step for i in range(n)]
    for i, ln in enumerate(c.lines):
        out += _series(ln, scale, band, dx[i], prefix)
    for i, ln in enumerate(c.lines):  # all markers above all lines, so no line hides another series' point
        out += _points(ln, scale, band, dx[i])
    out.append("</g>")
    out += legend[0]
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _axes(c: Chart, s: Scale, band: float, rotate: bool, prefix: str) -> list[str]:
    bottom, right = TOP + PLOT_H, LEFT + PLOT_W
    out = [f'<defs><clipPath id="{prefix}clip"><rect x="{LEFT - 8}" y="{TOP - 8}" width="{PLOT_W + 16}" '
           f'height="{PLOT_H + 16}"/></clipPath></defs>']
    for v, labelled in s.ticks():
        y = s.y(v)
        out.append(f'<line class="grid{"" if labelled else " minor"}" x1="{LEFT}" x2="{right}" y1="{y:.2f}" y2="{y:.2f}"/>')
        if labelled:
            out.append(f'<text class="tick" x="{LEFT - 7}" y="{y + 4:.2f}" text-anchor="end">{fmt(v)}</text>')
    for i, (name, sub) in enumerate(c.categories):
        x = LEFT + band * (i + 0.5)
        out.append(f'<line class="grid minor" x1="{x:.2f}" x2="{x:.2f}" y1="{TOP}" y2="{bottom}"/>')
        tip = f"<title>{a(name)}{(' (' + a(sub) + ')') if sub else ''}</title>"
        if rotate:
            out.append(f'<text class="tick xlabel" x="{x:.2f}" y="{bottom + 14}" text-anchor="end" '
                       f'transform="rotate(-45 {x:.2f} {bottom + 14})">{tip}{a(_cut(name, LABEL_MAX))}</text>')
        else:
            out.append(f'<text class="tick xlabel" x="{x:.2f}" y="{bottom + 17}" text-anchor="middle">{tip}{a(name)}</text>')
            if sub:
                out.append(f'<text class="tick" x="{x:.2f}" y="{bottom + 31}" text-anchor="middle" fill="#888">{a(sub)}</text>')
    for v, label in c.refs:
        if not s.lo <= v <= s.hi:
            above = v > s.hi
            out.append(f'<text class="ref-label" x="{right - 4}" y="{TOP + 14 if above else bottom - 6}" '
                       f'text-anchor="end" font-size="11" fill="#c00">{"↑" if above else "↓"} {a(label)} '
                       f'({"above" if above else "below"} the axis)</text>')
            continue
        y = s.y(v)
        out.append(f'<line class="ref" x1="{LEFT}" x2="{right}" y1="{y:.2f}" y2="{y:.2f}" stroke="#c00" '
                   f'stroke-width="1.2" stroke-dasharray="5 4"/>')
        out.append(f'<text class="ref-label" x="{right - 4}" y="{y - 5:.2f}" text-anchor="end" font-size="11" '
                   f'fill="#c00">{a(label)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#999"/>')
    mid = TOP + PLOT_H / 2
    out.append(f'<text x="20" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 20 {mid:.1f})" '
               f'font-size="12" fill="#333">{a(c.y_label)}{" (log scale)" if s.log else ""}</text>')
    return out


def _xy(p: Point, s: Scale, band: float, dx: float) -> tuple[float, float]:
    return LEFT + band * (p.x + 0.5) + dx, s.y(p.y)


def _series(ln: Line, s: Scale, band: float, dx: float, prefix: str) -> list[str]:
    """The series group: its line (with a wide invisible twin that catches the pointer) and what names it."""
    path, prev = [], None
    for p in sorted(ln.points, key=lambda p: p.x):
        x, y = _xy(p, s, band, dx)
        path.append(f"{'L' if prev is not None and p.x == prev + 1 else 'M'}{x:.2f},{y:.2f}")
        prev = p.x
    data = "".join(f' data-{a(k)}="{a(v)}"' for k, v in ln.attrs)
    dash = f' stroke-dasharray="{ln.style.dash}"' if ln.style.dash else ""
    out = [f'<g id="{prefix}series--{ln.slug}" class="series" data-series="{ln.slug}" data-label="{a(ln.label)}"{data}>',
           f"<title>{a(ln.tip)}</title>"]
    if len(path) > 1:
        d = " ".join(path)
        out.append(f'<path class="hit" d="{d}"/>')
        out.append(f'<path class="line" d="{d}" stroke="{ln.style.color}"{dash}/>')
    return out + ["</g>"]


def _points(ln: Line, s: Scale, band: float, dx: float) -> list[str]:
    """The series' markers and p10-p90 whiskers, in their own group tied to the series by data-series."""
    color = ln.style.color
    out = [f'<g class="points" data-series="{ln.slug}" data-label="{a(ln.label)}">']
    for p in sorted(ln.points, key=lambda p: p.x):
        x, y = _xy(p, s, band, dx)
        cls = "pt" + (" wrong" if p.wrong else "") + (" unstable" if p.unstable else "")
        out.append(f'<g class="{cls}" data-x="{p.x}"><title>{a(p.tip)}</title>')
        if p.lo is not None and p.hi is not None and p.hi > p.lo:
            y0, y1 = s.y(p.lo), s.y(p.hi)
            out.append(f'<path class="whisker" d="M{x:.2f},{y0:.2f} V{y1:.2f} M{x - 2.5:.2f},{y0:.2f} h5 '
                       f'M{x - 2.5:.2f},{y1:.2f} h5" stroke="{color}" stroke-width="1" fill="none"/>')
        fill = "#fff" if p.wrong else color
        stroke = f' stroke="{color}" stroke-width="2"' if p.wrong else ' stroke="#fff" stroke-width="0.8"'
        out.append(f'<path class="marker" d="{marker(ln.style.marker, x, y)}" fill="{fill}"{stroke}/>')
        if p.unstable:  # a dotted ring: this median moved a lot from rep to rep
            out.append(f'<circle class="unstable-ring" cx="{x:.2f}" cy="{y:.2f}" r="8" fill="none" stroke="{color}" '
                       f'stroke-width="1" stroke-dasharray="1.5 2"/>')
        if p.wrong:
            out.append(f'<path class="wrong-x" d="M{x - 2.2:.2f},{y - 2.2:.2f} l4.4,4.4 m0,-4.4 l-4.4,4.4" '
                       f'stroke="{WRONG}" stroke-width="1.4"/>')
        out.append("</g>")
    return out + ["</g>"]


def _legend(c: Chart, x0: float, y0: float, show_absent: bool = True) -> tuple[list[str], float]:
    """The legend's SVG lines and its height: one entry per series, then the impls measured nowhere (when
    show_absent) and those left out of this chart only."""
    out = ['<g class="legend">']
    y = y0
    for ln in c.lines:
        dash = f' stroke-dasharray="{ln.style.dash}"' if ln.style.dash else ""
        fill = "#fff" if ln.wrong else ln.style.color
        stroke = f' stroke="{ln.style.color}" stroke-width="1.8"' if ln.wrong else ""
        label = _cut(ln.label, 30)
        out.append(f'<g class="legend-entry" data-series="{ln.slug}" data-label="{a(ln.label)}" '
                   f'transform="translate({x0:.1f},{y:.1f})"><title>{a(ln.tip)}</title>')
        out.append(f'<rect class="hit" x="-4" y="-9" width="{LEGEND_W}" height="19" fill="transparent"/>')
        out.append(f'<line x1="0" x2="30" y1="0" y2="0" stroke="{ln.style.color}" stroke-width="2"{dash}/>')
        out.append(f'<path d="{marker(ln.style.marker, 15, 0)}" fill="{fill}"{stroke}/>')
        out.append(f'<text x="38" y="4" fill="#111">{a(label)}'
                   + (f'<tspan fill="#777"> {a(ln.suffix)}</tspan>' if ln.suffix else "")
                   + (f'<tspan class="wrong-label" fill="{WRONG}" font-weight="700"> ✗ wrong</tspan>' if ln.wrong else "")
                   + "</text></g>")
        y += 19
    for head, notes in (("Not in this chart:", c.absent if show_absent else ()), ("Not drawn here:", c.notes)):
        if not notes:
            continue
        y += 12
        out.append(f'<text x="{x0 - 4:.1f}" y="{y:.1f}" font-weight="700" fill="#a00">{head}</text>')
        y += 17
        for name, status, reason in notes:
            lines = _wrap(f"{name} — {status}: {reason or 'no reason given'}", 50, 2)
            out.append(f'<g class="missing-entry" data-impl="{a(name)}" data-status="{a(status)}">'
                       f"<title>{a(name)} — {a(status)}: {a(reason)}</title>")
            for k, text in enumerate(lines):
                out.append(f'<text x="{x0 + (0 if k == 0 else 10):.1f}" y="{y:.1f}" font-size="11" '
                           f'fill="#444">{a(text)}</text>')
                y += 14
            out.append("</g>")
            y += 3
    out.append("</g>")
    return out, y - y0
