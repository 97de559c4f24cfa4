"""Scales for the charts: linear or log value axes with readable 1-2-5 ticks, number formatting, marker shapes."""

from __future__ import annotations

import math
from dataclasses import dataclass

LOG_SPAN = 10.0  # values spanning more than this factor get a log axis


def fmt(v: float) -> str:
    """Compact, exact-looking tick text: 0.03, 0.5, 12, 1500, 2e+05."""
    if v == 0:
        return "0"
    return f"{float(f'{v:.3g}'):g}"


def fmt_ms(v: float | None) -> str:
    """Milliseconds with three significant digits but never fewer than needed to tell 0.0312 from 0.0315."""
    if v is None:
        return "-"
    return f"{v:.3g}" if v >= 100 else f"{v:.4f}" if v < 1 else f"{v:.3f}"


def fmt_rate(tflops: float | None, unit: str = "F/s") -> str:
    """A throughput that never reads 0.0: '504 TF/s', '1.23 TF/s', '4.12 GF/s' (CPU), '—' where there is none."""
    if tflops is None or not tflops > 0:
        return "—"
    if tflops >= 1:
        return f"{tflops:.0f} T{unit}" if tflops >= 100 else f"{tflops:.3g} T{unit}"
    g = tflops * 1000
    return f"{g:.3g} G{unit}" if g >= 0.01 else f"{g:.1e} G{unit}"


def _nice(x: float) -> float:
    """The 1, 2 or 5 times a power of ten nearest above x."""
    e = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10 ** e >= x * 0.999:
            return m * 10 ** e
    return 10 ** (e + 1)


@dataclass(frozen=True)
class Scale:
    """Maps a value range onto pixels [bottom, top] (top < bottom: SVG's y grows downwards)."""

    lo: float
    hi: float
    log: bool
    bottom: float
    top: float
    step: float = 0.0  # linear tick spacing

    def y(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.bottom - f * (self.bottom - self.top)

    def ticks(self) -> list[tuple[float, bool]]:
        """(value, labelled) pairs: every 1-2-5 step on a log axis, labels thinned so none collide."""
        if not self.log:
            step = self.step or _nice((self.hi - self.lo) / 6)
            first = math.ceil(self.lo / step - 1e-9)
            return [(round(k * step, 12), True) for k in range(first, int(math.floor(self.hi / step + 1e-9)) + 1)]
        out = []
        for e in range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1):
            for m in (1, 2, 5):
                v = float(f"{m}e{e}")
                if self.lo * 0.9999 <= v <= self.hi * 1.0001:
                    out.append((v, m))
        decade_px = (self.bottom - self.top) / (math.log10(self.hi) - math.log10(self.lo))
        labelled = {1, 2, 5} if decade_px >= 90 else {1}
        return [(v, m in labelled) for v, m in out]


def make_scale(values: list[float], bottom: float, top: float, refs: tuple = (), force_log: bool | None = None,
               zero: bool = True) -> Scale:
    """A log scale when the positive values span more than LOG_SPAN, else a linear one (from zero if `zero`).
    Reference values widen the range only when they lie within 3x of the data."""
    vals = [v for v in values if v is not None and v > 0]
    if vals:  # a reference line far from the data (1x under 100x speedups) would squash it: leave it out
        vals += [r for r in refs if min(vals) / 3 <= r <= max(vals) * 3]
    else:
        vals = [r for r in refs if r > 0]
    if not vals:
        return Scale(0.0, 1.0, False, bottom, top)
    lo, hi = min(vals), max(vals)
    log = force_log if force_log is not None else hi / lo > LOG_SPAN
    if log:
        pad = (hi / lo) ** 0.04 if hi > lo else 2.0
        lo, hi = lo / max(pad, 1.15), hi * max(pad, 1.15)
        return Scale(lo, hi, True, bottom, top)
    lo = 0.0 if zero else lo
    span = hi - lo or abs(hi) or 1.0
    step = _nice(span / 6)
    lo = max(0.0, math.floor((lo - span * 0.04) / step) * step) if not zero else 0.0
    hi = math.ceil(hi * 1.04 / step) * step
    return Scale(lo, hi if hi > lo else lo + step, False, bottom, top, step)


def marker(shape: str, x: float, y: float, r: float = 4.5) -> str:
    """SVG path data for one marker shape centred on (x, y)."""
    def poly(pts):
        return "M" + " L".join(f"{x + dx:.2f},{y + dy:.2f}" for dx, dy in pts) + " Z"

    if shape == "square":
        s = r * 0.85
        return poly([(-s, -s), (s, -s), (s, s), (-s, s)])
    if shape == "triangle":
        return poly([(0, -r * 1.15), (r * 1.05, r * 0.75), (-r * 1.05, r * 0.75)])
    if shape == "tri_down":
        return poly([(0, r * 1.15), (r * 1.05, -r * 0.75), (-r * 1.05, -r * 0.75)])
    if shape == "diamond":
        return poly([(0, -r * 1.2), (r, 0), (0, r * 1.2), (-r, 0)])
    if shape == "plus":
        a, b = r * 0.38, r * 1.05
        return poly([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a),
                     (-b, -a), (-a, -a)])
    if shape == "hexagon":
        return poly([(r * math.cos(math.pi / 3 * k), r * math.sin(math.pi / 3 * k)) for k in range(6)])
    return (f"M{x - r:.2f},{y:.2f} a{r:.2f},{r:.2f} 0 1,0 {2 * r:.2f},0 "
            f"a{r:.2f},{r:.2f} 0 1,0 {-2 * r:.2f},0 Z")
