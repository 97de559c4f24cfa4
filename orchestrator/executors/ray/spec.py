"""What travels between the driver and a Ray worker: a portable job description, progress phases and the outcome.

Nothing here holds a path the worker must find on its own disk, except the interpreter (host mode's `--python`
and the isolated envs' interpreter must exist at the same path on every node) and `--wheelhouse` folders.
Imports nothing from Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.env.isolated import Interpreter
from orchestrator.executors.ray.bundle import Bundle
from orchestrator.model.job import Job
from orchestrator.run.proc import Finished

SRC, DEP, ARTIFACT = "src", "dep", "artifact"  # the job's own folder, its path dependencies, upstream entries


@dataclass(frozen=True)
class JobSpec:
    """One job as a worker needs it. Folders (the job's own, path dependencies, upstream artifacts) travel beside it
    as Bundles, one per entry of `folders`: (role, name, the driver's path, which only names the bundle)."""

    job: Job  # as discovered on the driver; the worker rebases its paths
    key: str
    inputs: dict = field(compare=False)  # the key's inputs: the worker checks what it received against them
    lock_text: str | None
    suite_file: str
    suite: bytes
    suite_op: str
    interp: Interpreter
    base_python: str | None
    wheelhouses: tuple[str, ...]
    offline: bool
    folders: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Phase:
    """A progress change on the worker: state as in a local run (building env, running) and where it happens."""

    state: str
    detail: str
    where: dict = field(compare=False)


@dataclass(frozen=True)
class Outcome:
    """How a job ended on a worker. `error` (with `finished` None) means it never ran: its env failed, or what
    arrived does not match the key; the text is shown like a local env build error."""

    where: dict = field(compare=False)
    finished: Finished | None = None
    outputs: Bundle | None = None
    logs: Bundle | None = None
    packages: tuple[str, ...] = ()
    env_id: str = ""
    error: str = ""


def job_spec(ctx, p, upstream_entries: dict[str, Path]) -> JobSpec:
    """The spec of a planned job (driver side): lock and suite bytes; the folders to send beside it."""
    job = p.job
    folders = [(SRC, job.name, str(job.folder))] + [(DEP, dep.name, str(dep.root)) for dep in job.path_deps]
    folders += [(ARTIFACT, name, str(entry)) for name, entry in sorted(upstream_entries.items())]
    suite = ctx.suite_for(job)  # planned jobs of an op without a suite were skipped before this
    return JobSpec(
        job=job, key=p.key, inputs=p.inputs, lock_text=p.lock_text, suite_file=suite.path.name,
        suite=suite.path.read_bytes(), suite_op=suite.op, interp=ctx.interp,
        base_python=ctx.provider.base_python, wheelhouses=tuple(str(w) for w in ctx.wheelhouses),
        offline=ctx.offline, folders=tuple(folders),
    )
