"""Tolerances and the verdict on an output compared with the fp32 reference.

The metric is the relative L2 error ‖out − ref‖ / ‖ref‖ over the whole output. Exact kernels land near
the rounding of their dtype (bf16 ≈ 2e-3, fp16 ≈ 3e-4, fp32 ≈ 1e-6); the defaults leave a few times that
and still flag any real mistake (wrong scale, mask or head mapping give 1e-1 and more). Quantized impls
pass their own, looser tolerance. NaN or Inf never passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_REL_L2 = {"float32": 1e-3, "float16": 5e-3, "bfloat16": 1e-2}

Tolerance = None | float | Mapping[str, float]


@dataclass(frozen=True)
class Accuracy:
    """How far an output is from the reference: max |out − ref|, relative L2, the bound used, and the verdict."""

    max_abs: float | None
    rel_l2: float | None
    tol: float
    ok: bool
    finite: bool

    def to_json(self) -> dict:
        return {"max_abs": self.max_abs, "rel_l2": self.rel_l2, "tol": self.tol}

    def worse(self, other: Accuracy) -> Accuracy:
        """The less accurate of two checks of the same workload (used when graph replays are checked too)."""
        if not self.ok:
            return self
        if not other.ok:
            return other
        return self if (self.rel_l2 or 0.0) >= (other.rel_l2 or 0.0) else other


def tolerance_for(dtype: str, tolerance: Tolerance = None, defaults: Mapping[str, float] | None = None) -> float:
    """The rel-L2 bound for a dtype: the impl's own (a number, or a dtype → number mapping), else the op's
    default (`defaults`), else DEFAULT_REL_L2."""
    base = (defaults or DEFAULT_REL_L2).get(dtype, DEFAULT_REL_L2[dtype])
    if tolerance is None:
        return float(base)
    if isinstance(tolerance, (int, float)):
        return float(tolerance)
    return float(tolerance.get(dtype, base))


def judge(max_abs: float, rel_l2: float, finite: bool, tol: float) -> Accuracy:
    """The verdict: finite everywhere and rel_l2 within tol. Non-finite numbers are stored as None (JSON has no NaN)."""
    clean = lambda x: float(x) if x is not None and math.isfinite(x) else None  # noqa: E731
    ok = bool(finite) and clean(rel_l2) is not None and rel_l2 <= tol
    return Accuracy(max_abs=clean(max_abs), rel_l2=clean(rel_l2), tol=tol, ok=ok, finite=bool(finite))
