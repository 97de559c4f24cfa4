"""Summary statistics of raw latencies, and the rule that says when a median is stable enough to stop."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959964
# A median is flagged unstable when its 95 % CI spans more than ±UNSTABLE_CI of it, or p90/p10 exceeds UNSTABLE_SPREAD
# (a machine under contention reads 1.1 ms and 32 ms seconds apart: numbers like that must not look quotable).
UNSTABLE_CI = 0.05
UNSTABLE_SPREAD = 1.5


@dataclass(frozen=True)
class Latency:
    """Statistics of per-rep latencies in milliseconds; `raw` keeps every rep so they can be recomputed."""

    mean: float
    p10: float
    p50: float
    p90: float
    min: float
    max: float
    std: float
    reps: int
    raw: tuple[float, ...]
    mode: str
    calls: int = 1  # impl calls per rep: a rep's time is the batch's time divided by it
    cold_p50: float | None = None  # graph mode: median of single calls, each after an L2 flush
    ci95: tuple[float, float] | None = None  # distribution-free 95 % confidence interval of the median
    unstable: bool = False  # the CI or the p10-p90 spread is too wide to quote the median (see UNSTABLE_*)

    def to_json(self) -> dict:
        return {
            "mean": self.mean, "p10": self.p10, "p50": self.p50, "p90": self.p90, "min": self.min,
            "max": self.max, "std": self.std, "reps": self.reps, "raw": list(self.raw), "mode": self.mode,
            "calls": self.calls, "cold_p50": self.cold_p50,
            "ci95": list(self.ci95) if self.ci95 is not None else None, "unstable": self.unstable,
        }

    @classmethod
    def from_json(cls, data: dict) -> Latency:
        ci = data.get("ci95")
        return cls(**{**data, "raw": tuple(data["raw"]), "ci95": tuple(ci) if ci is not None else None})


def quantile(sorted_xs: list[float], q: float) -> float:
    """Linearly interpolated quantile (numpy's default 'linear' method) of an already sorted list."""
    if not sorted_xs:
        raise ValueError("quantile of an empty sample")
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def summarize(raw_ms: list[float], mode: str, calls: int = 1, cold_ms: list[float] | None = None) -> Latency:
    """Mean, interpolated p10/p50/p90, min, max and sample standard deviation of the raw times."""
    xs = sorted(raw_ms)
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    r = lambda x: round(x, 6)  # noqa: E731 - nanosecond resolution is more than any timer here gives
    ci = median_ci(xs) if n >= 2 else None
    return Latency(
        mean=r(mean), p10=r(quantile(xs, 0.10)), p50=r(quantile(xs, 0.50)), p90=r(quantile(xs, 0.90)),
        min=r(xs[0]), max=r(xs[-1]), std=r(std), reps=n, raw=tuple(r(x) for x in raw_ms), mode=mode,
        calls=calls, cold_p50=r(quantile(sorted(cold_ms), 0.5)) if cold_ms else None,
        ci95=(r(ci[0]), r(ci[1])) if ci else None, unstable=unstable(xs),
    )


def unstable(xs: list[float]) -> bool:
    """True when the median of these times is not worth quoting: wide CI or wide p10-p90 spread."""
    xs = sorted(xs)
    if len(xs) < 2 or xs[0] <= 0:
        return False
    lo, hi = median_ci(xs)
    med = quantile(xs, 0.5)
    return (hi - lo) / 2 > UNSTABLE_CI * med or quantile(xs, 0.9) > UNSTABLE_SPREAD * quantile(xs, 0.1)


def median_ci(raw: list[float], z: float = Z95) -> tuple[float, float]:
    """Distribution-free ~95% confidence interval of the median, from order statistics (binomial ranks)."""
    xs = sorted(raw)
    n = len(xs)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    return xs[lo], xs[hi]


def median_stable(raw: list[float], rel: float, min_reps: int) -> bool:
    """True once there are min_reps samples and the CI of the median spans at most ±rel of the median."""
    if len(raw) < max(min_reps, 2):
        return False
    lo, hi = median_ci(raw)
    med = quantile(sorted(raw), 0.5)
    return med > 0 and (hi - lo) / 2 <= rel * med
