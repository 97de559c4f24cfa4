"""How numbers read in every output: milliseconds with the digits that matter, rates that never read 0.0."""

from __future__ import annotations


def fmt(v: float) -> str:
    """Compact, exact-looking text: 0.03, 0.5, 12, 1500, 2e+05."""
    if v == 0:
        return "0"
    return f"{float(f'{v:.3g}'):g}"


def fmt_ms(v: float | None) -> str:
    """Milliseconds with three significant digits but never fewer than needed to tell 0.0312 from 0.0315."""
    if v is None:
        return "-"
    return f"{v:.3g}" if v >= 100 else f"{v:.4f}" if v < 1 else f"{v:.3f}"


def fmt_rate(value: float | None, unit: str = "TFLOP/s") -> str:
    """A throughput that never reads 0.0: '504 TFLOP/s', '4.12 GFLOP/s' (a CPU), '3854 GB/s', '—' for none."""
    if value is None or not value > 0:
        return "—"
    if unit == "GB/s":
        return f"{value:.0f} GB/s" if value >= 100 else f"{value:.3g} GB/s"
    if value >= 1:
        return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    g = value * 1000
    return f"{g:.3g} G{unit[1:]}" if g >= 0.01 else f"{g:.1e} G{unit[1:]}"
