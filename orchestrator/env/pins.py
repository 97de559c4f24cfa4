"""Per-script lock files: hashed requirement pins compiled by uv, naming no index or host."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from orchestrator.cache.hashing import sha256_json
from orchestrator.env.uv import Uv
from orchestrator.errors import BuildError, UserError
from orchestrator.frozen import dataclass
from orchestrator.model.job import Job

LOCK_FORMAT = 1
INPUTS_LINE = "# inputs-sha256: "
MIN_PYTHON = re.compile(r">=\s*(\d+\.\d+)")


def inputs_hash(job: Job) -> str:
    """What the lock was made from: a change here makes the lock stale."""
    inputs = {"format": LOCK_FORMAT, "requires_python": job.requires_python, "requirements": list(job.lock_requirements)}
    return sha256_json(inputs)


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
    import tempfile

    from orchestrator.run.proc import run_tool

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


@dataclass(frozen=True)
class Pin:
    """One requirement line of a lock: the requirement as written (`name==1.0 ; marker`) and its hashes."""

    requirement: str
    hashes: tuple[str, ...]


def parse_pins(text: str) -> list[Pin]:
    """The lock's requirement lines (continuations joined, comments stripped), with their hashes, sorted."""
    logical, current = [], ""
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current)
        current = ""
    if current.strip():
        logical.append(current)
    pins = []
    for line in logical:
        words = line.split()
        hashes = tuple(sorted(w.split("=", 1)[1] for w in words if w.startswith("--hash=")))
        req = " ".join(w for w in words if not w.startswith("--hash="))
        pins.append(Pin(req, hashes))
    return sorted(pins, key=lambda p: (p.requirement, p.hashes))


def normalised_pins(text: str) -> list[list]:
    """What a lock says, independent of its comments, line order and layout: the key's view of it."""
    return [[p.requirement, list(p.hashes)] for p in parse_pins(text)]


def check_lock(job: Job, text: str, markers: dict | None = None) -> None:
    """A lock edited by hand is refused: every pin hashed, and every pin that applies here satisfying the
    script's own requirement (one line naming the lock file and the requirement).

    `markers` is the marker environment of the interpreter the job runs under (None: this one).
    """
    from packaging.markers import InvalidMarker
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, list[tuple[str, Pin]]] = {}
    for pin in parse_pins(text):
        try:
            req = Requirement(pin.requirement)
        except InvalidRequirement as exc:
            raise UserError(f"{job.lock}: {pin.requirement!r} is not a requirement ({exc}); "
                            f"run `python -m orchestrator lock {job.name}`") from None
        if not pin.hashes:
            raise UserError(f"{job.lock}: {pin.requirement} has no --hash; run `python -m orchestrator lock {job.name}`")
        version = next((s.version for s in req.specifier if s.operator in ("==", "===")), None)
        if version is None or len(req.specifier) != 1 or req.url:
            raise UserError(f"{job.lock}: {pin.requirement} is not an exact pin (name==version); "
                            f"run `python -m orchestrator lock {job.name}`")
        if req.marker is None or req.marker.evaluate(markers):
            pins.setdefault(canonicalize_name(req.name), []).append((version, pin))
    for line in job.lock_requirements:
        try:
            want = Requirement(line)
        except (InvalidRequirement, InvalidMarker):
            continue  # the script's own syntax error is uv's to report when it locks
        if want.url or (want.marker is not None and not want.marker.evaluate({**(markers or {}), "extra": ""})):
            continue
        have = pins.get(canonicalize_name(want.name))
        if not have:
            raise UserError(f"{job.lock}: no pin for {line!r}, which {job.script.name} requires; "
                            f"run `python -m orchestrator lock {job.name}`")
        for version, pin in have:
            if not want.specifier.contains(version, prereleases=True):
                raise UserError(f"{job.lock}: {pin.requirement} does not satisfy {line!r}, which {job.script.name} "
                                f"requires (edited by hand?); run `python -m orchestrator lock {job.name}`")
