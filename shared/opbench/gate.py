"""The job's side of the orchestrator's pipelined start (orchestrator/run/gate.py): take the GPU only for GPU work.

Everything before `acquire` — starting Python, importing the framework, creating the device context, the impl's
check — runs while another job may be timing on the same GPU; `acquire` blocks until this job holds the GPU's lock,
`release` gives it back once the timed work is over (the rest of the process's exit no longer holds the GPU).
Without $ORCH_GATE (a job reproduced by hand, the tests' direct calls) both do nothing.

With the GPU comes one line of JSON, an object of variables the job is handed only then (the run's stored
references, opbench.refstore: they are made before any job may take the GPU); `acquire` sets them in os.environ.
"""

from __future__ import annotations

import json
import os
import sys
import time

VARIABLE = "ORCH_GATE"
ASK, GO, DONE = b"r", b"g", b"d"


def _fds() -> tuple[int, int] | None:
    text = os.environ.get(VARIABLE)
    if not text:
        return None
    try:
        read_fd, write_fd = (int(part) for part in text.split(","))
    except ValueError:
        return None
    return read_fd, write_fd


def acquire() -> float:
    """Ask for the GPU and wait for it; return the seconds waited (0.0 without a gate). If the orchestrator is gone
    (its end of the pipe closed) the job exits: it must not time on a GPU that nobody holds for it."""
    fds = _fds()
    if fds is None:
        return 0.0
    t0 = time.perf_counter()
    try:
        os.write(fds[1], ASK)
        answer = os.read(fds[0], 1)
    except OSError:
        answer = b""
    handed = _line(fds[0]) if answer == GO else None
    if handed is None:
        print("opbench: the orchestrator's gate closed before this job got its GPU; exiting", file=sys.stderr)
        raise SystemExit(1)
    os.environ.update(handed)
    return time.perf_counter() - t0


MAX_LINE = 1 << 16


def _line(fd: int) -> dict[str, str] | None:
    """The variables line that follows GO: {name: value}; None if the pipe closed or the line is not one."""
    data = b""
    while not data.endswith(b"\n") and len(data) < MAX_LINE:
        try:
            chunk = os.read(fd, 1)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    ok = isinstance(doc, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items())
    return doc if ok else None


def release() -> None:
    """The GPU work is over: give the lock back now (a no-op without a gate, or when the orchestrator is gone)."""
    fds = _fds()
    if fds is None:
        return
    try:
        os.write(fds[1], DONE)
    except OSError:
        pass
