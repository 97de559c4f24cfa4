"""Executors prepare and run one job and hand back its outcome; the local one uses this machine's processes.

Every executor answers the same questions, so the scheduler and the runner never ask which one they have: which
local slot a job occupies (`slot`), the job's env once ready to start it (`env`), what the launch needs beyond
the command (`prepare`), how it ended (`run`), and `start` (connect, only once something must run) and `cancel`.
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.cache.outputs import SourceWatch
from orchestrator.env.isolated import Env, env_changed
from orchestrator.frozen import dataclass, replace
from orchestrator.run.proc import Finished, ProcessGroups, run_captured

CPU, GPU = "cpu", "gpu"  # the local slots a job may occupy: one of the -j CPU slots, or a GPU (timed alone on it)


@dataclass(frozen=True)
class Launch:
    """Everything needed to run a job once: command, variables and limits. Folders are the executor's to fill."""

    name: str
    argv: tuple[str, ...]
    env: dict
    timeout: float | None
    gpu_ids: tuple[str, ...] = ()
    attached: object = None  # what the executor's `prepare` added: InPlace here, a portable JobSpec for Ray


@dataclass(frozen=True)
class Ran:
    """How a job's process ended and where (recorded in the manifest); `problem` says why a run that ended must
    not be committed all the same (it wrote into its sources or its env); `packages` is the env as built where
    the job ran, when that is not the env located here."""

    finished: Finished
    where: dict
    problem: str | None = None
    packages: list[str] | None = None


@dataclass(frozen=True)
class InPlace:
    """A run in place: the job's source roots, which it must leave as found, and the env it must not change."""

    sources: tuple[tuple[str, Path], ...]
    env: Env


class LocalExecutor:
    """Runs a Launch as a local process group with cwd = the staging output folder, on this machine's slots and envs."""

    kind = "local"

    def __init__(self) -> None:
        self.groups = ProcessGroups()

    def start(self) -> None:
        """Nothing to connect to."""

    def slot(self, job) -> str | None:
        """The local slot the job occupies while it runs: a GPU for a timed job, else a CPU slot (None: none here)."""
        return GPU if job.gpu else CPU

    def env(self, ctx, p, on_phase) -> Env:
        """The job's env, built here before the job starts (by the scheduler's env builders)."""
        on_phase(p.job.name, "building env")
        env = ctx.provider.ensure_env(p.job, p.lock_text, ctx)
        on_phase(p.job.name, "waiting")
        return env

    def prepare(self, launch: Launch, ctx, p, env: Env, upstream_entries: dict[str, Path]) -> Launch:
        """The launch plus what a run in place is checked against afterwards: its sources and its env."""
        sources = [("its own folder", p.job.folder)]
        sources += [(f"its path dependency {dep.name} ({dep.root})", dep.root) for dep in p.job.path_deps]
        return replace(launch, attached=InPlace(sources=tuple(sources), env=env))

    def run(self, launch: Launch, out: Path, logs: Path, gate=None) -> Ran:
        """Run it; return how it ended and where. A prepared launch is checked afterwards: a job that wrote into
        its sources would change its own key, one that changed its env would leave it unsound for the next.
        gate: the job's device lock, taken when it asks (orchestrator/run/gate.py); None: nothing to take here."""
        checks = launch.attached if isinstance(launch.attached, InPlace) else None
        watch = SourceWatch(list(checks.sources)) if checks is not None else None
        env = dict(launch.env, ORCH_OUT=str(out))
        finished = run_captured(
            list(launch.argv), cwd=out, env=env, stdout=logs / "stdout.log", stderr=logs / "stderr.log",
            timeout=launch.timeout, groups=self.groups, gate=gate,
        )
        where = {"executor": self.kind, "host": os.uname().nodename, "gpus": list(launch.gpu_ids)}
        if finished.cancelled or checks is None or watch is None:
            return Ran(finished, where)
        problem = watch.problem()
        if problem is None:
            changed = env_changed(checks.env)
            if changed:
                problem = (f"the job changed its environment {checks.env.env_id} ({changed}); "
                           "it was discarded and will be rebuilt")
        return Ran(finished, where, problem)

    def cancel(self) -> None:
        self.groups.kill_all()
