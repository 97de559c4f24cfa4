"""The seam between a run and where its jobs' envs come from: the planner and the runner call an EnvProvider and
never ask which one it is. Two exist: `isolated.Isolated` (an env per lock, the default) and `host.Base` (host
mode: a layer over `--python`'s packages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.env.isolated import Env
    from orchestrator.model.job import Job


class EnvProvider(Protocol):
    @property
    def uses_locks(self) -> bool:
        """False: a missing lock is neither required nor written (host mode resolves over the base)."""

    @property
    def base_python(self) -> str | None:
        """The interpreter every node must have at the same path (host mode), else None."""

    @property
    def markers(self) -> dict | None:
        """Environment markers the lock is checked against; None: this interpreter's."""

    def interpreter(self, ctx) -> dict:
        """Version and implementation of the interpreter jobs run under (it enters every key)."""

    def key_input(self, ctx) -> dict | None:
        """What the provider adds to every key (host mode: the base's packages and wheel files), or None."""

    def prepare(self, job: Job, lock_text: str | None, ctx) -> None:
        """The phase before planning, beside the locks: work out and record what the job's env would hold (host
        mode: uv resolves the layer), so that planning only reads. May run uv; planning never does."""

    def conflict(self, job: Job, lock_text: str | None, ctx) -> str | None:
        """Why the job cannot run with these envs (reported before anything runs), or None. Reads only."""

    def env_for(self, job: Job, lock_text: str | None, ctx) -> Env:
        """Where the job's env is, built or not (pure: list, show, reproduce)."""

    def ensure_env(self, job: Job, lock_text: str | None, ctx) -> Env:
        """The job's env, built first if needed."""
