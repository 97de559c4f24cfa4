"""The op registry: one module per op; `get(name)` imports it on first use (standard library only)."""

from __future__ import annotations

import importlib

from .base import MODES, Field, Op  # relative: the orchestrator loads this package under a private name

NAMES = ("attention", "rms_norm", "layer_norm", "rotary", "swiglu")
DEFAULT = "attention"  # an impl or suite that names no op

_loaded: dict[str, Op] = {}


def get(name: str) -> Op:
    """The op called `name`; KeyError (with the known names) for any other."""
    if name not in NAMES:
        raise KeyError(f"unknown op {name!r} (known: {', '.join(NAMES)})")
    if name not in _loaded:
        _loaded[name] = importlib.import_module(f"{__name__}.{name}").OP
    return _loaded[name]


__all__ = ["DEFAULT", "MODES", "NAMES", "Field", "Op", "get"]
