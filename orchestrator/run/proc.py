"""The one place that starts subprocesses: output captured; a job's whole process tree ends with the job.

A job's processes are found two ways on Linux: each job gets a unique ORCH_JOB_TOKEN in its environment, which
every descendant inherits (found by scanning /proc/*/environ), and the orchestrator is a child subreaper, so a
daemon that called setsid and double-forked is re-parented to it rather than to init. Processes that carry the
token, and their descendants, are killed when the job ends, before anything is committed. Elsewhere the job's
process group is killed, as before.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from orchestrator.errors import BuildError
from orchestrator.frozen import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orchestrator.run.gate import Gate

KILL_GRACE_S = 5.0
TOKEN_VAR = "ORCH_JOB_TOKEN"
SWEEP_ROUNDS = 200  # kill-and-rescan rounds before giving up on a process that keeps forking
PROC = Path("/proc")

_spawn_lock = threading.Lock()  # held while starting a process, so a reaper never takes a Popen's own child
_spawned: set[int] = set()  # pids that a Popen object here will wait for
_subreaper: list[bool] = []  # [True] once this process is a child subreaper


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
            return f"timed out after {self.duration:.0f} s (process tree killed)"
        if self.cancelled:
            return "cancelled"
        if self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exit status {self.returncode}"


class ProcessGroups:
    """Live jobs of one run (process group and token), so that Ctrl-C or SIGTERM can end every job's whole tree."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, str] = {}  # pgid -> token
        self.cancelled = threading.Event()

    def add(self, pgid: int, token: str = "") -> None:
        with self._lock:
            self._jobs[pgid] = token

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._jobs.pop(pgid, None)

    def kill_all(self) -> None:
        """Refuse new jobs and SIGKILL every live one; each job's own thread then sweeps and waits for its tree."""
        self.cancelled.set()
        with self._lock:
            jobs = dict(self._jobs)
        for pgid, token in jobs.items():
            _killpg(pgid, signal.SIGKILL)
            if token:
                kill_tree(token)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _become_subreaper() -> None:
    """Linux: orphans of our jobs are re-parented to this process, so they stay findable and get reaped here."""
    if _subreaper or not PROC.is_dir():
        return
    _subreaper.append(False)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        _subreaper[0] = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        pass


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process, from /proc."""
    table = {}
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        try:
            stat = (PROC / entry / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[0].decode())
    return table


def _tagged(token: str, table: dict[int, tuple[int, str]]) -> set[int]:
    """Live processes whose environment carries the token, plus all their descendants."""
    needle = f"\0{TOKEN_VAR}={token}\0".encode()
    found = set()
    for pid, (_, state) in table.items():
        if state in "ZX":
            continue
        try:
            with open(PROC / str(pid) / "environ", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if needle in b"\0" + data + b"\0":
            found.add(pid)
    children: dict[int, list[int]] = {}
    for pid, (ppid, state) in table.items():
        if state not in "ZX":
            children.setdefault(ppid, []).append(pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_tree(token: str) -> None:
    """SIGKILL every process of the job with this token until none is left alive, then reap our orphans."""
    if not PROC.is_dir():
        return
    me = os.getpid()
    for _ in range(SWEEP_ROUNDS):
        table = _processes()
        live = _tagged(token, table)
        _reap_orphans(table, me)
        if not live:
            return
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def _reap_orphans(table: dict[int, tuple[int, str]], me: int) -> None:
    """Dead children of ours that no Popen here waits for: orphans of jobs, adopted because we are a subreaper."""
    if not (_subreaper and _subreaper[0]):
        return
    with _spawn_lock:
        for pid, (ppid, state) in table.items():
            if ppid == me and state == "Z" and pid not in _spawned:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def _spawn(popen, *args, **kwargs):
    """Start a process and remember that a Popen object reaps it (see _reap_orphans)."""
    with _spawn_lock:
        proc = popen(*args, **kwargs)
        _spawned.add(proc.pid)
    return proc


def _reaped(proc) -> None:
    with _spawn_lock:
        _spawned.discard(proc.pid)


def run_captured(
    cmd: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    timeout: float | None,
    groups: ProcessGroups | None = None,
    gate: Gate | None = None,
) -> Finished:
    """Run cmd in its own session with output to files; on timeout SIGTERM then SIGKILL; its whole tree dies with it.

    gate: the job takes its device lock when it asks for it (run/gate.py); its waits for the lock do not count
    against the timeout, and the lock is released at the latest once its whole tree is gone."""
    import subprocess  # here, not at the top: a fully cached run starts no process and should not pay for it

    _become_subreaper()
    token = os.urandom(16).hex()
    env = {**env, TOKEN_VAR: token}
    pass_fds: tuple[int, ...] = ()
    if gate is not None:
        pass_fds = gate.child_fds()
        env.update(gate.variable())
    started = time.time()
    popen = dict(cwd=cwd, env=env, stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=pass_fds)
    proc = None
    try:
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            if groups:
                with groups._lock:  # kill_all either sees this job or this job sees `cancelled`
                    if not groups.cancelled.is_set():
                        proc = _spawn(subprocess.Popen, cmd, stdout=out, stderr=err, **popen)
                        groups._jobs[proc.pid] = token
            else:
                proc = _spawn(subprocess.Popen, cmd, stdout=out, stderr=err, **popen)
    finally:
        if gate is not None:
            gate.started()  # closes the child's ends here (the job has its own copies, if it started at all)
            if proc is None:
                gate.close()
    if proc is None:
        return Finished(-signal.SIGKILL, started, time.time(), cancelled=True)
    timed_out = False
    try:
        _wait(proc, timeout, gate)
    except subprocess.TimeoutExpired:
        timed_out = True
        _killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    finally:
        # Children that outlive the main process (daemons, forked workers) die with the group, and with the token
        # those that left it; only then is the job over (its device lock is released, its outputs committed).
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _reaped(proc)
        kill_tree(token)
        if gate is not None:
            gate.close()
        if groups:
            groups.discard(proc.pid)
    cancelled = bool(groups and groups.cancelled.is_set())
    return Finished(proc.returncode, started, time.time(), timed_out=timed_out, cancelled=cancelled)


def _wait(proc, timeout: float | None, gate: Gate | None) -> None:
    """proc.wait(timeout), the deadline moved on by the time the job has spent waiting for its device lock."""
    if timeout is None or gate is None:
        proc.wait(timeout=timeout)
        return
    import subprocess

    t0 = time.perf_counter()
    while True:
        left = t0 + timeout + gate.pending_wait() - time.perf_counter()
        if left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        try:
            proc.wait(timeout=min(left, 1.0))
            return
        except subprocess.TimeoutExpired:
            continue


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
            proc = _spawn(subprocess.Popen, cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True,
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
        _reaped(proc)
    if _TOOLS.cancelled:
        raise BuildError(f"{what or cmd[0]}: cancelled")
    if proc.returncode != 0:
        last = "\n".join((err or out).strip().splitlines()[-tail:])
        raise BuildError(f"{what or ' '.join(cmd[:3])} failed (exit {proc.returncode}):\n{last}")
    return out
