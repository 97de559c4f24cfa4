"""The harness's exceptions: a run-level skip, and one-line errors for the people who write suites and scripts."""

from __future__ import annotations


class Skip(Exception):
    """This impl cannot run on this device at all (no CUDA, package missing or broken, hub unreachable).

    Raise it from an impl's `check`; the harness writes a `skipped` record per workload and exits 77.
    """


class HarnessError(Exception):
    """A user error with a one-line message (what, where, what to do); printed without a traceback."""


class SuiteError(HarnessError):
    """A workload suite file is malformed; the message names the file and the field."""


def one_line(exc: BaseException, limit: int = 400) -> str:
    """`Type: first line of the message`, short enough for a record's reason."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
