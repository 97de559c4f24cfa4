"""Helpers for an impl's `check`: turn "this package or kernel does not work here" into a Skip with the reason."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from opbench.errors import Skip, one_line


def require(module: str) -> ModuleType:
    """Import `module`, or raise Skip naming it; a broken install (bad symbols, wrong torch ABI) counts too."""
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise Skip(f"{module} is not importable here: {one_line(exc)}") from None


def probe(call: Callable[[], Any], what: str) -> Any:
    """Run a tiny call of the impl; if it raises, Skip with `what` and the error (e.g. no kernel for this torch)."""
    try:
        return call()
    except Skip:
        raise
    except Exception as exc:
        raise Skip(f"{what}: {one_line(exc)}") from None
