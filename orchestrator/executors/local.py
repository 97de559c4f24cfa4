"""Executors run one prepared job and hand back its outcome; the local one uses this machine's processes."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.frozen import dataclass
from orchestrator.run.proc import Finished, ProcessGroups, run_captured


@dataclass(frozen=True)
class Launch:
    """Everything needed to run a job once: command, variables and limits. Folders are the executor's to fill."""

    name: str
    argv: tuple[str, ...]
    env: dict
    timeout: float | None
    gpu_ids: tuple[str, ...] = ()
    spec: object = None  # for executors that run it elsewhere: a portable description (orchestrator.executors.ray.spec.JobSpec)


class LocalExecutor:
    """Runs a Launch as a local process group with cwd = the staging output folder."""

    kind = "local"
    remote = False  # a remote executor builds envs and places jobs itself (no local env build, slot or GPU lock)

    def __init__(self) -> None:
        self.groups = ProcessGroups()

    def prepare(self, launch: Launch, ctx, p, upstream_entries: dict[str, Path]) -> Launch:
        """What the executor needs beyond the launch to run the job; here, nothing (it runs in place)."""
        return launch

    def run(self, launch: Launch, out: Path, logs: Path) -> tuple[Finished, dict]:
        """Run it; return how it ended and where it ran (recorded in the manifest)."""
        env = dict(launch.env, ORCH_OUT=str(out))
        finished = run_captured(
            list(launch.argv), cwd=out, env=env, stdout=logs / "stdout.log", stderr=logs / "stderr.log",
            timeout=launch.timeout, groups=self.groups,
        )
        return finished, {"executor": self.kind, "host": os.uname().nodename, "gpus": list(launch.gpu_ids)}

    def cancel(self) -> None:
        self.groups.kill_all()
