"""Per-script lock files: hashed requirement pins compiled by uv, naming no index or host."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from orchestrator.discover import Job
from orchestrator.errors import BuildError, UserError
from orchestrator.hashing import sha256_json
from orchestrator.proc import run_tool
from orchestrator.uvtool import Uv

LOCK_FORMAT = 1
INPUTS_LINE = "# inputs-sha256: "
MIN_PYTHON = re.compile(r">=\s*(\d+\.\d+)")


def inputs_hash(job: Job) -> str:
    """What the lock was made from: a change here makes the lock stale."""
    return sha256_json({"format": LOCK_FORMAT, "requires_python": job.requires_python, "requirements": list(job.lock_requirements)})


def read_lock_text(job: Job) -> str | None:
    try:
        return job.lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def lock_state(job: Job, text: str | None = None) -> str:
    """'ok', 'missing' or 'stale' (made from other requirements than the script now declares).

    `text` is the lock's content when the caller has read it already.
    """
    if text is None:
        text = read_lock_text(job)
    if text is None:
        return "missing"
    want = INPUTS_LINE + inputs_hash(job)
    return "ok" if any(line.strip() == want for line in text.splitlines()[:3]) else "stale"


def ensure_lock(job: Job, uv: Uv | None, *, locked: bool) -> None:
    """Create or refresh the lock; with locked=True a missing or stale lock is a user error instead."""
    state = lock_state(job)
    if state == "ok":
        return
    if locked:
        raise UserError(f"{job.lock}: lock is {state} for {job.script.name} (run `python -m orchestrator lock {job.name}`)")
    if uv is None:
        raise UserError(f"{job.lock}: lock is {state} and uv is unavailable")
    write_lock(job, uv)


def _python_version(job: Job) -> str:
    m = MIN_PYTHON.search(job.requires_python or "")
    return m.group(1) if m else f"{sys.version_info.major}.{sys.version_info.minor}"


def compile_pins(job: Job, uv: Uv) -> str:
    """Universal, hashed pins for the job's requirements (no header, no annotations, no index URL)."""
    if not job.lock_requirements:
        return ""
    with tempfile.TemporaryDirectory(prefix="orch-lock-") as tmp:
        (Path(tmp) / "requirements.in").write_text("\n".join(job.lock_requirements) + "\n")
        cmd = [uv.exe, "pip", "compile", "requirements.in", "--universal", "--generate-hashes", "--no-header",
               "--no-annotate", "--python-version", _python_version(job), "--quiet", *uv.source_args()]
        return run_tool(cmd, cwd=Path(tmp), env=uv.env(), what=f"locking {job.name}")


def write_lock(job: Job, uv: Uv) -> None:
    """Write `<script>.lock.txt` atomically."""
    pins = compile_pins(job, uv)
    if re.search(r"^\s*(-i|--index-url|--extra-index-url|-f|--find-links)\b", pins, re.M):
        raise BuildError(f"{job.lock}: uv emitted an index or find-links line; refusing to write it")
    header = (
        f"# Pins for {job.script.parent.name}/{job.script.name}, made by `python -m orchestrator lock {job.name}` "
        "from its inline metadata. Do not edit.\n"
        f"{INPUTS_LINE}{inputs_hash(job)}\n"
    )
    tmp = job.lock.with_name(job.lock.name + f".tmp{os.getpid()}")
    tmp.write_text(header + pins, encoding="utf-8")
    os.replace(tmp, job.lock)
