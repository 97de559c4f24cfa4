"""nox sessions generated from discovery: one per implementation, one per backend family, one per op, plus tests.

`ORCH_IMPLS_DIR` points discovery (and the sessions) at another impls folder. Every impl/family session delegates to the orchestrator (python=False): nox itself installs nothing for the
scripts, because it would ignore [tool.uv.sources] and fetch a same-named package instead of shared/.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from orchestrator.model.job import discover  # noqa: E402

nox.options.sessions = ["tests"]
IMPLS = Path(os.environ.get("ORCH_IMPLS_DIR") or ROOT / "impls").resolve()  # tests point it at a fixture tree
JOBS = discover(IMPLS)


def _delegate(names: list[str], description: str):
    def session(s: nox.Session) -> None:
        s.run(sys.executable, "-m", "orchestrator", "run", *names, "--impls-dir", str(IMPLS), *s.posargs, external=True)

    session.__doc__ = description
    return session


for _name, _job in JOBS.items():
    _backend = _job.tags.get("backend", "")
    nox.session(name=_name, python=False)(_delegate([_name], f"run {_name}" + (f" ({_backend})" if _backend else "")))

_families: dict[str, list[str]] = {}
for _name, _job in JOBS.items():
    if "family" in _job.tags:
        _families.setdefault(_job.tags["family"], []).append(_name)
for _family, _names in sorted(_families.items()):
    if _family in JOBS and _names == [_family]:
        continue  # a family of one impl that bears its name: the impl's own session runs it
    _session = f"{_family}-family" if _family in JOBS else _family
    nox.session(name=_session, python=False)(_delegate(_names, f"run the {_family} family: {', '.join(_names)}"))


_ops: dict[str, list[str]] = {}
for _name, _job in JOBS.items():
    _ops.setdefault(_job.op, []).append(_name)
_taken = set(JOBS) | {f"{f}-family" if f in JOBS else f for f in _families}
for _op, _names in sorted(_ops.items()):
    _session = _op if _op not in _taken else f"{_op}-op"
    nox.session(name=_session, python=False)(_delegate(sorted(_names), f"run every {_op} impl: {', '.join(sorted(_names))}"))


@nox.session(python=False)
def lint(s: nox.Session) -> None:
    """ruff and mypy over orchestrator/ and shared/ (config in pyproject.toml; pip install ruff mypy)"""
    s.run(sys.executable, "-m", "ruff", "check", "orchestrator", "shared", *s.posargs, external=True)
    s.run(sys.executable, "-m", "mypy", external=True)


@nox.session(python=False)
def tests(s: nox.Session) -> None:
    """the test suite (CPU, real uv and subprocesses)"""
    s.run(sys.executable, "-m", "pytest", *s.posargs, external=True)
