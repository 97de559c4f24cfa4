"""The released versions of a package in a range, as uv sees them (its configured index, or the wheelhouses
offline): asked of uv's resolver one at a time, the newest not yet found, so no index is named or parsed here."""

from __future__ import annotations

import tempfile
from pathlib import Path

from orchestrator.env.uv import Uv
from orchestrator.errors import BuildError, UserError

MAX_VERSIONS = 1000  # a range wider than this is surely a mistake (and would take minutes to list)
NO_SOLUTION = ("No solution found", "unsatisfiable")  # how uv says no version is left (its head or its tail)


def released(uv: Uv, package: str, good: str, bad: str, python_version: str) -> list[str]:
    """Every version of `package` from `good` to `bad` inclusive that uv can resolve for this Python, oldest first
    (pre-releases only where uv would pick them). Nothing found is a user error with uv's reason."""
    from packaging.version import Version

    from orchestrator.run.proc import run_tool

    found: list[str] = []
    with tempfile.TemporaryDirectory(prefix="orch-versions-") as tmp:
        req = Path(tmp) / "requirements.in"
        while len(found) < MAX_VERSIONS:
            req.write_text(f"{package}>={good},<={bad}" + "".join(f",!={v}" for v in found) + "\n")
            cmd = [uv.exe, "pip", "compile", req.name, "--no-deps", "--no-header", "--no-annotate", "--quiet",
                   "--python-version", python_version, *uv.source_args()]
            try:
                out = run_tool(cmd, cwd=Path(tmp), env=uv.env(), what=f"listing the versions of {package}", tail=200)
            except BuildError as exc:
                if found and any(s in str(exc) for s in NO_SOLUTION):
                    break  # every version in the range is found
                raise UserError(f"{package}: no version from {good} to {bad} can be resolved here: "
                                + one_line(exc)) from None
            pins = [line.split("==", 1)[1].split(";")[0].strip() for line in out.splitlines()
                    if line.strip().lower().startswith(f"{package}==")]
            if not pins:
                raise UserError(f"{package}: uv resolved no pin of it from {good} to {bad} (got {out.strip()[:200]!r})")
            found.append(pins[0])
    return sorted(found, key=Version)


def install_failure(exc: BaseException) -> str:
    """Why uv could not install: its `error:` line and the last line of what it quoted (a build's own exception
    ends its traceback there), without the traceback between or uv's hints."""
    lines = [line for line in _uv_lines(exc) if line and not line.startswith("hint:")]
    head = next((line.removeprefix("error:").strip() for line in lines if line.startswith("error:")), None)
    if head is None:  # not uv's usual form: all of it, in one line
        return one_line(exc)
    tail = lines[-1]
    text = head if tail.removeprefix("error:").strip() == head else f"{head}: {tail}"
    return text if len(text) <= 400 else text[:399] + "…"


def _uv_lines(exc: BaseException) -> list[str]:
    """uv's message after the first line (`X failed (exit 1):`), its tree marks stripped."""
    return [line.strip().lstrip("×╰─▶│├ ").strip() for line in str(exc).splitlines()[1:]]


def one_line(exc: BaseException) -> str:
    """uv's message after the first line (`X failed (exit 1):`), in one line."""
    lines = _uv_lines(exc)
    text = " ".join(line for line in lines if line) or str(exc).splitlines()[0]
    return text if len(text) <= 400 else text[:399] + "…"
