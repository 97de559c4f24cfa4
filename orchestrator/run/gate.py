"""A GPU job's device lock, taken when the job asks for it: the pipelined start.

A job that uses the harness starts without its GPU: it starts Python, imports its framework and decides whether it
can run at all while the previous job is still timing. Then it asks (one byte over a pipe, `r`), waits until the
orchestrator holds the device lock for it (`g` comes back), does its GPU work (compilation and autotuning included)
and says when that is over (`d`); the lock is released then, or when the job's process tree is gone, whichever
comes first. A job that never asks (it skipped, crashed or failed its check) never holds the GPU.

The job's side is opbench.gate; ORCH_GATE names its two pipe ends ("READ,WRITE" file descriptors). The time spent
waiting for the lock does not count against the job's timeout. After `g` comes one line of JSON: variables handed to
the job only with its GPU (`handout`, asked before the lock is taken: the run's stored references, made first if
need be, run/references.py), `{}` for none.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable

VARIABLE = "ORCH_GATE"
ASK, GO, DONE = b"r", b"g", b"d"
POLL_S = 0.05  # how often a wait for the lock tries again, and looks whether the job is still there
JOIN_S = 2.0


class Gate:
    """The orchestrator's end of one job's gate: serves its requests from a thread, holds the device lock for it.

    lock_path: the device's machine-wide lock file (run/device_locks.py); on_wait / on_run: progress callbacks;
    handout(): the variables the job gets with the GPU (it may wait, never holding the lock).
    After the run, `waited_s` is how long the job waited for the lock and `held` the (start, end) epoch times of its
    hold (from its first to its last, should it ask again), None when it never held the GPU.
    """

    def __init__(self, lock_path: str, on_wait: Callable[[], None] = lambda: None,
                 on_run: Callable[[], None] = lambda: None,
                 handout: Callable[[], dict[str, str]] = lambda: {}) -> None:
        self.lock_path, self.on_wait, self.on_run, self.handout = lock_path, on_wait, on_run, handout
        self.waited_s = 0.0
        self.held: tuple[float, float] | None = None
        self._waiting_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self._lock_fd: int | None = None
        self._acquired_at: float | None = None
        self._fds: tuple[int, int, int, int] | None = None  # (our read, child's write, child's read, our write)

    # -- the launch -----------------------------------------------------------------------------
    def child_fds(self) -> tuple[int, int]:
        """Make the two pipes; return the child's (read, write) ends, which the launch must pass to the job."""
        from_job_r, from_job_w = os.pipe()
        to_job_r, to_job_w = os.pipe()
        self._fds = (from_job_r, from_job_w, to_job_r, to_job_w)
        return to_job_r, from_job_w

    def variable(self) -> dict[str, str]:
        assert self._fds is not None, "child_fds first"
        return {VARIABLE: f"{self._fds[2]},{self._fds[1]}"}

    def started(self) -> None:
        """The job is running: close the child's ends here (so its exit reads as end of file), serve it."""
        assert self._fds is not None
        os.close(self._fds[1])
        os.close(self._fds[2])
        self._thread = threading.Thread(target=self._serve, name="gate", daemon=True)
        self._thread.start()

    def pending_wait(self) -> float:
        """Seconds the job has waited for the lock so far, this wait included (its timeout is extended by them)."""
        since = self._waiting_since
        return self.waited_s + (time.perf_counter() - since if since is not None else 0.0)

    def close(self) -> None:
        """The job's process tree is gone: stop serving, release the lock if still held, close our ends."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_S)  # ends at the job's end of file; a stray holder of its pipe can't block us
        self._release()
        if self._fds is not None and (self._thread is None or not self._thread.is_alive()):
            for fd in (self._fds[0], self._fds[3]):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds = None

    # -- the lock: flock on the device's lock file, as filelock's FileLock takes it elsewhere ------------------------
    def _acquire(self) -> bool:
        """Wait for the device lock; False if the run is over first."""
        import fcntl

        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        t0 = time.perf_counter()
        self._waiting_since = t0
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self._stop.wait(POLL_S):
                        os.close(fd)
                        return False
        finally:
            self.waited_s += time.perf_counter() - t0
            self._waiting_since = None
        with self._mutex:
            self._lock_fd, self._acquired_at = fd, time.time()
        return True

    def _release(self) -> None:
        import fcntl

        with self._mutex:
            fd, at = self._lock_fd, self._acquired_at
            self._lock_fd = self._acquired_at = None
        if fd is None:
            return
        assert at is not None
        self.held = (self.held[0] if self.held else at, time.time())  # from the first hold to the last release
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _serve(self) -> None:
        assert self._fds is not None
        reader, writer = self._fds[0], self._fds[3]
        try:
            while True:
                try:
                    byte = os.read(reader, 1)
                except OSError:
                    byte = b""
                if byte == ASK and self._lock_fd is None:
                    self.on_wait()
                    t0 = self._waiting_since = time.perf_counter()  # a wait for the handout is a wait for the GPU
                    try:
                        handed = self.handout()
                    except Exception:  # noqa: BLE001 - whatever went wrong, the job computes its own
                        handed = {}
                    finally:
                        self.waited_s += time.perf_counter() - t0
                        self._waiting_since = None
                    if not self._acquire():
                        return
                    self.on_run()
                    try:
                        os.write(writer, GO + json.dumps(handed).encode() + b"\n")
                    except OSError:
                        return  # gone while it waited
                elif byte == DONE or not byte:
                    self._release()
                    if not byte:
                        return
        finally:
            self._release()
