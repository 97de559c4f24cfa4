"""The worker side of the Ray executor: a JobSpec becomes this node's env and a local run; the outcome goes back.

`execute` is the Ray task (a streaming generator): it yields Phases as the job gets to them, then one Outcome.
Everything a local run does is reused: the env is built by JobRunner.build_env into this node's own cache (same
content address as on the driver), variables and launch come from JobRunner, and LocalExecutor runs the job
(timeout, whole-process-group kill, log capture). What arrived is first checked against the job's key inputs.
"""

from __future__ import annotations

import functools
import os
import queue
import shutil
import socket
import tempfile
import threading
import traceback
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from filelock import FileLock

from orchestrator.cache.hashing import sha256_bytes, sha256_tree
from orchestrator.cache.keys import pins_sha256
from orchestrator.cache.store import Store
from orchestrator.env.isolated import default_envs_dir
from orchestrator.errors import BuildError, UserError
from orchestrator.executors.local import Launch, LocalExecutor
from orchestrator.executors.ray.bundle import Bundle
from orchestrator.executors.ray.spec import ARTIFACT, DEP, SRC, JobSpec, Outcome, Phase
from orchestrator.model.context import Context
from orchestrator.model.device import detect_device
from orchestrator.model.mode import parse_modes
from orchestrator.model.suite import Suite, Suites
from orchestrator.run.device_locks import device_lock_path
from orchestrator.run.jobrun import JobRunner
from orchestrator.run.plan import Planned, job_python
from orchestrator.run.proc import run_tool

POLL_S = 0.2  # how often the task's main thread looks up, so that ray.cancel reaches it promptly
CANCEL_WAIT_S = 10.0


def execute(spec: JobSpec, *bundles: Bundle):
    """Ray task body: Phase... then one Outcome. ray.cancel interrupts the main thread, which kills the job's group.

    The work runs in a helper thread because Ray's cancellation arrives as an exception between bytecodes, which a
    thread blocked waiting for the job's process would never see.
    """
    import ray

    where = {"executor": "ray", "node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
             "gpus": [str(g) for g in ray.get_gpu_ids()]}
    executor, events = LocalExecutor(), queue.Queue[object]()
    worker = threading.Thread(target=_work, args=(spec, bundles, where, executor, events.put), daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            yield item
            if isinstance(item, Outcome):
                return
    except BaseException:  # cancelled: never leave the job (or its children) running
        executor.cancel()
        worker.join(CANCEL_WAIT_S)
        executor.cancel()
        raise


def _work(spec: JobSpec, bundles, where: dict, executor: LocalExecutor, put) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f"orch-{spec.job.name}-"))
    try:
        put(Phase("building env", place(where), where))
        try:
            ctx, p, upstreams = materialize(spec, bundles, tmp)
            runner = JobRunner(ctx, executor)
            env = runner.build_env(p)
        except (BuildError, UserError) as exc:
            put(Outcome(where, error=str(exc)))
            return
        if executor.groups.cancelled.is_set():
            return
        run_dir = tmp / "run"
        out, logs = run_dir / "out", run_dir / "logs"
        out.mkdir(parents=True)
        logs.mkdir()
        gpu_ids = tuple(where["gpus"])
        launch = runner.launch(p, env, runner.variables(p, env, upstreams, gpu_ids), gpu_ids)
        with ExitStack() as held:
            if gpu_ids:  # as locally: no two runs on this machine time on one GPU at once
                put(Phase("waiting", f"for device {','.join(gpu_ids)} on {where['host']} {where['node_id'][:8]}", where))
            for gpu in gpu_ids:
                held.enter_context(FileLock(str(device_lock_path(gpu))))
            put(Phase("running", place(where), where))
            finished = executor.run(dies_with_worker(launch), out, logs).finished
        try:
            outputs = Bundle.of(out)
        except BuildError as exc:
            put(Outcome(where, finished, None, Bundle.of(logs), error=f"outputs not sent: {exc}"))
            return
        put(Outcome(where, finished, outputs, Bundle.of(logs), tuple(env.packages()), env.env_id))
    except Exception as exc:  # noqa: BLE001 - a bug here becomes this job's failure, with its traceback
        tb = traceback.format_exc()
        put(Outcome(where, error=f"internal error on {where['host']}: {exc!r}\n{tb}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def place(where: dict) -> str:
    gpus = f"GPU {','.join(where['gpus'])} · " if where["gpus"] else ""
    return f"on {gpus}{where['host']} {where['node_id'][:8]}"


def dies_with_worker(launch: Launch) -> Launch:
    """If Ray kills this worker (driver gone, forced cancel), the job's main process gets SIGKILL too.

    util-linux's setpriv (>= 2.33) sets the parent-death signal, then execs the job: same process, same argv after.
    """
    setpriv = _setpriv()
    return replace(launch, argv=(setpriv, "--pdeathsig", "KILL", "--", *launch.argv)) if setpriv else launch


@functools.lru_cache(maxsize=1)
def _setpriv() -> str | None:
    exe = shutil.which("setpriv")
    try:
        return exe if exe and "--pdeathsig" in run_tool([exe, "--help"], timeout=10) else None
    except BuildError:
        return None


def materialize(spec: JobSpec, bundles, tmp: Path) -> tuple[Context, Planned, dict[str, Path]]:
    """Write what arrived into tmp, make this node's Context, and check it all against the key's inputs."""
    folders: dict[str, dict[str, Path]] = {}
    for (role, name, _), bundle in zip(spec.folders, bundles, strict=True):
        dest = tmp / role / name
        bundle.write_to(dest)
        folders.setdefault(role, {})[name] = dest
    roots = folders.get(DEP, {})
    script = folders[SRC][spec.job.name] / spec.job.script.name
    suite = tmp / "suite" / spec.suite_file
    suite.parent.mkdir()
    suite.write_bytes(spec.suite)
    job = replace(spec.job, script=script, path_deps=tuple(replace(d, root=roots[d.name]) for d in spec.job.path_deps))
    ctx = Context(
        impls_dir=script.parent.parent, store=Store(tmp / "store"), envs_dir=default_envs_dir(),
        suites=Suites.single(Suite(name=suite.stem, path=suite, sha256=sha256_bytes(spec.suite), op=spec.suite_op)),
        device=detect_device(),
        interp=spec.interp, wheelhouses=tuple(Path(w) for w in spec.wheelhouses), offline=spec.offline,
        modes=parse_modes(spec.inputs.get("mode")),  # what the key was planned for: the job is told the same
    )
    if spec.base_python is not None:
        from orchestrator.env.host import Base

        ctx = replace(ctx, provider=Base.probe(spec.base_python, ctx))
    elif not os.access(spec.interp.path, os.X_OK):
        raise BuildError(f"{socket.gethostname()}: no interpreter at {spec.interp.path} (every Ray node needs the "
                         "driver's Python at the same path, or use --python with one that every node has)")
    problem = mismatch(spec, ctx, job)
    if problem:
        raise BuildError(f"{socket.gethostname()}: {problem}; not run")
    return ctx, Planned(job=job, lock_text=spec.lock_text, inputs=spec.inputs, key=spec.key), folders.get(ARTIFACT, {})


def mismatch(spec: JobSpec, ctx: Context, job) -> str | None:
    """Why what this node has differs from what the job's key was computed from, or None."""
    want = spec.inputs
    if ctx.device.fingerprint != want["device"]:
        return (f"this node's device ({ctx.device.fingerprint}) is not the one the keys were planned for "
                f"({want['device']}); run the driver on a machine like the Ray workers")
    if job_python(ctx) != want["python"]:
        return f"this node's Python ({job_python(ctx)}) is not the driver's ({want['python']}); keys include it"
    if ctx.provider.key_input(ctx) != want["base"]:
        return f"the base interpreter {spec.base_python} differs here from the driver's (packages or wheelhouse)"
    lock = pins_sha256(spec.lock_text)
    script = sha256_bytes(job.script.read_bytes()) if job.script.is_file() else None
    checks = [("script", script, want["script_sha256"]), ("job folder", sha256_tree(job.folder), want["folder_sha256"]),
              ("lock", lock, want["pins_sha256"]), ("workload suite", ctx.suites.key_input()[job.op]["sha256"],
               want["workloads"]["sha256"])]
    checks += [(f"path dependency {d.name}", sha256_tree(d.root), want["path_deps"][d.name]) for d in job.path_deps]
    for what, have, expected in checks:
        if have != expected:
            return f"the {what} received differs from the one its key was computed from (changed during the run?)"
    return None
