"""The Ray executor (driver side): each job that must run becomes one Ray task placed by the cluster.

GPU jobs ask Ray for `num_gpus=1` (Ray picks the node and sets CUDA_VISIBLE_DEVICES), CPU jobs for none. Path
dependencies and upstream artifacts travel through Ray's object store, each put once per run; this package reaches
the workers through the job's runtime_env (`py_modules`). What comes back is re-created in the local staging folder,
checksum by checksum, and then checked and committed by JobRunner exactly as a local job's outputs are. A job whose
node or worker dies is retried once; Ctrl-C cancels every outstanding task. `ray` is imported on first use only.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.env.isolated import Env
from orchestrator.errors import BuildError, UserError
from orchestrator.executors.local import Launch, Ran
from orchestrator.executors.ray.bundle import Bundle
from orchestrator.executors.ray.spec import ARTIFACT, JobSpec, Outcome, Phase
from orchestrator.run.proc import Finished

ATTEMPTS = 2  # a job whose node dies mid-run is retried once, then reported failed
LOST = ("NodeDiedError", "WorkerCrashedError", "ObjectLostError", "LocalRayletDiedError", "RaySystemError",
        "OutOfMemoryError")  # Ray's errors for "the machine or process went away", not the job's own failure
CANCEL_WAIT_S = 15.0
CONNECT_TIMEOUT_S = 5.0

# The driver's variables a worker's jobs must see as a local job would: GPU, communication and framework settings
# (a host that sets NCCL_NVLS_ENABLE=0 for safety must not lose it on a node whose `ray start` shell lacks it).
# Paths, the user and the shell stay the node's own; CUDA_VISIBLE_DEVICES is set per job by the scheduler.
FORWARDED_PREFIXES = ("NCCL_", "NVSHMEM_", "TORCH_", "PYTORCH_", "CUDA_", "CUBLAS_", "CUDNN_", "NVIDIA_", "TRITON_",
                      "XLA_", "JAX_", "HF_")
NOT_FORWARDED = {"CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH"}


def forwarded_env(environ=None) -> dict[str, str]:
    """The driver's variables (FORWARDED_PREFIXES) that Ray sets in every worker process of this run."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in sorted(environ.items()) if k.startswith(FORWARDED_PREFIXES) and k not in NOT_FORWARDED}


class RemoteError(BuildError):
    """A job could not be run on the cluster (lost twice, or sent back something unusable): it fails, others go on."""


class RayExecutor:
    """Runs Launches that carry a JobSpec as Ray tasks; `on_phase(name, state, detail)` receives progress."""

    kind = "ray"

    def __init__(self, address: str | None = None, on_phase=None) -> None:
        self.address = address
        self.on_phase = on_phase or (lambda name, state, detail="": None)
        self._lock = threading.Lock()
        self._folders: dict[tuple[str, str], object] = {}  # (role, driver path) -> ObjectRef of its Bundle
        self._running: dict[str, object] = {}  # job name -> its task's ObjectRefGenerator
        self._ray: Any = None  # the ray module, imported by start()
        self._task: Any = None  # the remote function

    def start(self) -> None:
        """Connect (Ray's convention: --ray-address, else RAY_ADDRESS, else a local instance); UserError if it fails."""
        if self._ray is not None:
            return
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray: Ray is not installed (pip install '.[ray]')") from None
        package = Path(__file__).resolve().parents[2]  # the orchestrator package
        runtime_env = {"py_modules": [str(package)], "excludes": ["__pycache__", "*.pyc"], "env_vars": forwarded_env()}
        where = self.address or os.environ.get("RAY_ADDRESS") or "(a local instance)"
        _reachable(where)
        try:
            ray.init(address=self.address, runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING,
                     ignore_reinit_error=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"--executor ray: cannot connect to the Ray cluster at {where}: {str(exc).splitlines()[0]}") from None
        from orchestrator.executors.ray.worker import execute

        self._task = ray.remote(num_returns="streaming", max_retries=0)(execute)
        self._ray = ray

    def slot(self, job) -> str | None:
        """None: the cluster places the job (a GPU job asks Ray for num_gpus=1); it occupies no slot of this machine."""
        return None

    def env(self, ctx, p, on_phase) -> Env:
        """The job's env located, not built: its worker builds it on its node (the same content address) and reports
        its phases; what is located here names it in the manifest and the reproduce line."""
        return ctx.provider.env_for(p.job, p.lock_text, ctx)

    def prepare(self, launch: Launch, ctx, p, env: Env, upstream_entries: dict[str, Path]) -> Launch:
        """The launch plus the job's portable spec: what a worker on another node needs to rebuild the job."""
        from dataclasses import replace

        from orchestrator.executors.ray.spec import job_spec

        return replace(launch, attached=job_spec(ctx, p, upstream_entries))

    def run(self, launch: Launch, out: Path, logs: Path, gate=None) -> Ran:
        """Run the job on the cluster, re-create its outputs and logs in out/ and logs/; return how it ended and where.
        gate: always None here (its slot is none of this machine's; the worker holds its node's device lock).

        The job ran on a copy of its sources and in the node's env, so the checks of a run in place do not apply;
        the worker checked what arrived against the key instead. Raising commits nothing (the runner keeps any logs).
        """
        spec = launch.attached
        assert isinstance(spec, JobSpec), "prepare attached the job's spec"
        assert gate is None, "a Ray job takes no local device lock"
        name = spec.job.name
        refs = [self._folder(role, path) for role, _, path in spec.folders]
        lost = ""
        for attempt in range(1, ATTEMPTS + 1):
            started = time.time()
            try:
                outcome = self._attempt(spec, refs)
                break
            except Exception as exc:  # noqa: BLE001 - only Ray's "went away" errors are retried
                if type(exc).__name__ not in LOST and not _lost(exc):
                    raise
                lost = f"{type(exc).__name__} ({str(exc).splitlines()[0][:160]})"
                if attempt == ATTEMPTS:
                    raise RemoteError(f"lost {ATTEMPTS} times on the Ray cluster, last: {lost}; nothing was committed") from None
                self.on_phase(name, "waiting", f"retrying after {type(exc).__name__}")
        if outcome is None:  # cancelled
            return Ran(Finished(-signal.SIGKILL, started, time.time(), cancelled=True), {"executor": self.kind})
        if outcome.logs is not None:
            outcome.logs.write_to(logs)
        if outcome.error:
            raise BuildError(outcome.error) if outcome.finished is None else RemoteError(outcome.error)
        assert outcome.outputs is not None and outcome.finished is not None  # a task that ran sends both
        outcome.outputs.write_to(out)
        where = {**outcome.where, "attempts": attempt, "env_id": outcome.env_id}
        if lost:
            where["lost"] = lost
        return Ran(outcome.finished, where, packages=list(outcome.packages))

    def _attempt(self, spec: JobSpec, refs: list) -> Outcome | None:
        """One task: relay its phases, return its Outcome (None when cancelled); Ray's errors propagate."""
        ray, name, gpu = self._ray, spec.job.name, spec.job.gpu
        gen = self._task.options(num_gpus=1 if gpu else 0, name=f"orch:{name}").remote(spec, *refs)
        with self._lock:
            self._running[name] = gen
        try:
            self.on_phase(name, "waiting", "for a Ray node with a free GPU" if gpu else "for a Ray node")
            for ref in gen:
                item = ray.get(ref)
                if isinstance(item, Phase):
                    self.on_phase(name, item.state, item.detail)
                elif isinstance(item, Outcome):
                    return item
            raise RemoteError("the Ray task ended without an outcome")
        except ray.exceptions.TaskCancelledError:
            return None
        finally:
            with self._lock:
                self._running.pop(name, None)

    def _folder(self, role: str, path: str):
        """The object-store copy of a folder, put once per run. Sources are sent as the key hashes them (caches left
        out) and re-checked against it on the worker; upstream entries, whole (they never change)."""
        with self._lock:
            ref = self._folders.get((role, path))
            if ref is None:
                ref = self._ray.put(Bundle.of(Path(path), source_tree=role != ARTIFACT))
                self._folders[(role, path)] = ref
            return ref

    def cancel(self) -> None:
        """Cancel every outstanding task (its worker kills the job's process group) and wait briefly for them."""
        if self._ray is None:
            return
        with self._lock:
            gens = list(self._running.values())
        for gen in gens:
            try:
                self._ray.cancel(gen)
            except Exception:  # noqa: BLE001 - already finished, or the cluster is gone
                pass
        deadline = time.monotonic() + CANCEL_WAIT_S
        while self._running and time.monotonic() < deadline:
            time.sleep(0.05)


def _reachable(address: str) -> None:
    """Fail in seconds, not Ray's many minutes of retries, when a host:port cluster address does not answer."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", "local", ray:// client addresses: Ray's own resolution
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"--executor ray: no Ray cluster answers at {address} ({exc.strerror or exc}); "
                        "start one (ray start --head) or set RAY_ADDRESS / --ray-address") from None


def _lost(exc: BaseException) -> bool:
    """Ray sometimes wraps a lost worker in its task error; look one cause down."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    return cause is not None and type(cause).__name__ in LOST
