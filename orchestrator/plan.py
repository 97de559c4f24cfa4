"""Plan a run: locks, keys and cache look-ups for the selected jobs, before anything is built or run."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.context import Context
from orchestrator.discover import Job
from orchestrator.keys import TreeHashes, key_inputs, key_of
from orchestrator.locks import ensure_lock, lock_state, read_lock_text
from orchestrator.store import Manifest


@dataclass
class Planned:
    """One job's plan: its lock text, key and inputs, and whether it is cached or skipped up front."""

    job: Job
    lock_text: str | None = None
    inputs: dict | None = None
    key: str | None = None
    cached: Manifest | None = None
    preskip: str | None = None
    forced: bool = False

    @property
    def needs_run(self) -> bool:
        return self.cached is None and self.preskip is None


def preskip_reason(job: Job, ctx: Context) -> str | None:
    """Why a job cannot run on this machine at all, decided before any environment is built."""
    if "cuda" in job.requires and not ctx.device.has_gpu:
        return "requires CUDA; no NVIDIA GPU on this machine"
    return None


def read_lock(job: Job, ctx: Context, on_lock=None, create: bool = True) -> str | None:
    """The lock text the job's env is built from; host mode neither requires nor creates a lock.

    With create=False (list, show) a missing or stale lock gives None instead of calling uv.
    """
    text = read_lock_text(job)
    if ctx.base is not None:
        return text
    state = lock_state(job, text)
    if state == "ok":
        return text
    if not create:
        return None
    if on_lock is not None and not ctx.locked:
        on_lock(job.name, state)
    ensure_lock(job, None if ctx.locked else ctx.uv(), locked=ctx.locked)
    return read_lock_text(job)


def stage_settings(ctx: Context) -> dict:
    """Run settings a stage reads from its variables (they change its output, so they enter its key)."""
    return {"ORCH_BASELINE": ctx.baseline}


def compute_key(p: Planned, ctx: Context, trees: TreeHashes, upstreams: dict[str, dict]) -> None:
    """Fill p.inputs and p.key."""
    lock = p.lock_text.encode() if p.lock_text is not None else None
    p.inputs = key_inputs(
        p.job, script=p.job.script.read_bytes(), lock=lock, trees=trees, upstreams=upstreams,
        workloads=ctx.suite.key_input(), device=ctx.device.fingerprint, base=ctx.base_key(),
        settings=stage_settings(ctx) if p.job.stage else None,
    )
    p.key = key_of(p.inputs)


def plan(ctx: Context, jobs: dict[str, Job], order: list[str], forced: set[str] = frozenset(), on_lock=None,
         create_locks: bool | frozenset[str] = True) -> dict[str, Planned]:
    """Plans in run order; stage jobs (combine) get their key later, once their upstreams' outcomes are known.

    `create_locks` is True, False, or the names whose missing or stale locks may be written (those to run).
    """
    trees = TreeHashes()
    plans: dict[str, Planned] = {}
    for name in order:
        job = jobs[name]
        p = Planned(job=job, preskip=preskip_reason(job, ctx), forced=name in forced)
        if p.preskip is None:
            create = create_locks if isinstance(create_locks, bool) else name in create_locks
            p.lock_text = read_lock(job, ctx, on_lock, create)
            if ctx.base is not None:
                p.preskip = ctx.base.conflict(job, p.lock_text, ctx)
        if not job.stage:
            compute_key(p, ctx, trees, {up: {"key": plans[up].key} for up in job.needs})
            if not p.forced:
                p.cached = ctx.store.lookup(name, p.key)
        plans[name] = p
    return plans
