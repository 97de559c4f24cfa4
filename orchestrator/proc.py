"""The one place that starts subprocesses: output captured, timeouts and cancellation kill the whole process group."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import BuildError

KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class Finished:
    """How a captured process ended."""

    returncode: int
    started: float
    finished: float
    timed_out: bool = False
    cancelled: bool = False

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def describe(self) -> str:
        if self.timed_out:
            return f"timed out after {self.duration:.0f} s (process group killed)"
        if self.cancelled:
            return "cancelled"
        if self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exit status {self.returncode}"


class ProcessGroups:
    """Live process groups of one run, so that Ctrl-C can end every job's whole tree."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pgids: set[int] = set()
        self.cancelled = threading.Event()

    def add(self, pgid: int) -> None:
        with self._lock:
            self._pgids.add(pgid)

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._pgids.discard(pgid)

    def kill_all(self) -> None:
        self.cancelled.set()
        with self._lock:
            for pgid in list(self._pgids):
                _killpg(pgid, signal.SIGKILL)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_captured(
    cmd: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    timeout: float | None,
    groups: ProcessGroups | None = None,
) -> Finished:
    """Run cmd in its own session with output to files; on timeout SIGTERM then SIGKILL the whole group."""
    import subprocess  # here, not at the top: a fully cached run starts no process and should not pay for it

    started = time.time()
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    if groups:
        groups.add(proc.pid)
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    finally:
        # Children that outlive the main process (daemons, forked workers) die with the group.
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if groups:
            groups.discard(proc.pid)
    cancelled = bool(groups and groups.cancelled.is_set())
    return Finished(proc.returncode, started, time.time(), timed_out=timed_out, cancelled=cancelled)


class _Tools:
    """Helper tools (uv) running now, so that Ctrl-C can stop an env build at once instead of waiting for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: set[int] = set()
        self.cancelled = False


_TOOLS = _Tools()


def kill_tools() -> None:
    """Kill every running tool's process group (uv and the build backends it started); start no new one."""
    with _TOOLS.lock:
        _TOOLS.cancelled = True
        for pgid in list(_TOOLS.live):
            _killpg(pgid, signal.SIGKILL)


def run_tool(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float | None = None,
             what: str = "", both: bool = False, tail: int = 15) -> str:
    """Run a helper tool (uv, nvidia-smi) and return its stdout (both: stdout and stderr together); failure raises
    BuildError with the last `tail` lines of its stderr.

    The tool runs in its own process group, killed whole on timeout, on an exception here (Ctrl-C) or by kill_tools.
    """
    import subprocess

    with _TOOLS.lock:
        if _TOOLS.cancelled:
            raise BuildError(f"{what or cmd[0]}: cancelled")
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True,
                                    stderr=subprocess.STDOUT if both else subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except FileNotFoundError:
            raise BuildError(f"{what or cmd[0]}: {cmd[0]} not found") from None
        _TOOLS.live.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what or cmd[0]}: timed out after {timeout} s") from None
    finally:
        _killpg(proc.pid, signal.SIGKILL)  # nothing it started outlives it
        with _TOOLS.lock:
            _TOOLS.live.discard(proc.pid)
        proc.wait()
    if _TOOLS.cancelled:
        raise BuildError(f"{what or cmd[0]}: cancelled")
    if proc.returncode != 0:
        last = "\n".join((err or out).strip().splitlines()[-tail:])
        raise BuildError(f"{what or ' '.join(cmd[:3])} failed (exit {proc.returncode}):\n{last}")
    return out
