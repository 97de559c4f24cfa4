"""Plan a run: locks, keys and cache look-ups for the selected jobs, before anything is built or run."""

from __future__ import annotations

import os
import re

from orchestrator.cache.keys import TreeHashes, key_inputs, key_of
from orchestrator.cache.store import Manifest
from orchestrator.env.pins import check_lock, ensure_lock, lock_state, read_lock_text
from orchestrator.errors import BuildError, UserError
from orchestrator.frozen import dataclass
from orchestrator.model.context import Context
from orchestrator.model.job import Job
from orchestrator.model.mode import mode_text
from orchestrator.run.stage import stage_settings


@dataclass(frozen=True)
class Planned:
    """One job's plan: its lock text, key and inputs, and whether it is cached or skipped up front.

    Made once and never changed; a stage's plan has no key until its upstreams ended (`stage.keyed` makes the keyed one).
    """

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


SIMPLE_CLAUSE = re.compile(r"^\s*(~=|==|!=|<=|>=|<|>)\s*(\d+(?:\.\d+)*)(\.\*)?\s*$")


def job_python(ctx: Context) -> dict:
    """Version and implementation of the interpreter jobs run under: it enters every key (locks pin per Python)."""
    return ctx.provider.interpreter(ctx)


def _release(v: str, n: int) -> tuple[int, ...]:
    parts = tuple(int(x) for x in v.split(".") if x.isdigit())
    return parts + (0,) * (n - len(parts))


def python_allowed(spec: str, version: str) -> bool | None:
    """Whether `version` (X.Y.Z) satisfies a requires-python specifier; None when it is not one.

    Plain clauses are read here (the warm path imports no packaging); anything fancier goes to packaging.
    """
    clauses = [c for c in spec.split(",") if c.strip()]
    matches = [SIMPLE_CLAUSE.match(c) for c in clauses]
    if clauses and all(matches):
        for m in filter(None, matches):
            op, want, star = m.group(1), m.group(2), m.group(3)
            n = max(len(want.split(".")), len(version.split(".")), 3)
            have, w = _release(version, n), _release(want, n)
            if star and op in ("==", "!="):
                k = len(want.split("."))
                same = have[:k] == w[:k]
                ok = same if op == "==" else not same
            elif star:
                return _packaging_allows(spec, version)
            elif op == "~=":
                k = len(want.split("."))
                ok = have >= w and k >= 2 and have[:k - 1] == w[:k - 1]
            else:
                ok = {"==": have == w, "!=": have != w, "<=": have <= w, ">=": have >= w, "<": have < w, ">": have > w}[op]
            if not ok:
                return False
        return True
    return _packaging_allows(spec, version)


def _packaging_allows(spec: str, version: str) -> bool | None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(spec).contains(version, prereleases=True)
    except InvalidSpecifier:
        return None


def preskip_reason(job: Job, ctx: Context) -> str | None:
    """Why a job cannot run on this machine at all, decided before any environment is built."""
    if "cuda" in job.requires and not ctx.device.has_gpu:
        return "requires CUDA; no NVIDIA GPU on this machine"
    if not job.stage and ctx.suite_for(job) is None:
        return ctx.suites.missing_reason(job.op)
    if job.requires_python:
        version = job_python(ctx)["version"]
        allowed = python_allowed(job.requires_python, version)
        if allowed is None:
            raise UserError(f"{job.script}: requires-python: {job.requires_python!r} is not a version specifier")
        if not allowed:
            return f"requires-python {job.requires_python}; this interpreter is Python {version}"
    return None


def read_lock(job: Job, ctx: Context, on_lock=None, create: bool = False) -> str | None:
    """The lock text the job's env is built from; host mode neither requires nor creates a lock.

    With create=False (planning) a missing or stale lock gives None instead of calling uv.
    """
    text = read_lock_text(job)
    if not ctx.provider.uses_locks:
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


def write_locks(ctx: Context, jobs: dict[str, Job], names, on_lock=None) -> None:
    """The locking phase, before planning: write the missing or stale locks of `names` (the jobs about to run),
    so that planning itself only reads. With --locked a missing or stale lock is an error instead. A version-matrix
    variant whose version uv cannot resolve is noted in `ctx.unresolved` (planning skips it with uv's reason); any
    other job's lock failure stops the run."""
    for name in names:
        job = jobs[name]
        if preskip_reason(job, ctx) is None:
            try:
                read_lock(job, ctx, on_lock, create=True)
            except BuildError as exc:
                if job.variant is None:
                    raise
                ctx.unresolved[name] = unresolved_reason(job, exc)


def unresolved_reason(job: Job, exc: BuildError) -> str:
    """Why a variant's version cannot be resolved here: uv's reason, in one line."""
    from orchestrator.env.versions import one_line

    package, version = job.variant or ("?", "?")
    return f"{package} {version} cannot be resolved here: {one_line(exc)}"


def uninstallable_reason(job: Job, exc: BuildError) -> str:
    """Why a variant's version, resolved, cannot be installed here: uv's error and the build's last line."""
    from orchestrator.env.versions import install_failure

    package, version = job.variant or ("?", "?")
    return f"{package} {version} cannot be installed here: {install_failure(exc)}"


def workloads_input(job: Job, ctx: Context) -> dict:
    """The suite part of a key: the job's op's suite; for a stage, every op's (it merges them all)."""
    if job.stage:
        return ctx.suites.key_input()
    suite = ctx.suite_for(job)
    return suite.key_input() if suite else {"missing": ctx.suites.name}


def prepare_envs(ctx: Context, jobs: dict[str, Job], names) -> None:
    """The env provider's part of the phase before planning, after the locks: it works out and records what each
    job's env would hold (host mode: uv resolves the layer over the base; isolated envs: nothing, the lock is that
    record), so that planning reads the record and runs no uv."""
    for name in names:
        job = jobs[name]
        if preskip_reason(job, ctx) is None:
            ctx.provider.prepare(job, read_lock(job, ctx), ctx)


def job_key(job: Job, lock_text: str | None, ctx: Context, trees: TreeHashes, upstreams: dict[str, dict]) -> tuple[dict, str]:
    """A job's key inputs and key."""
    inputs = key_inputs(
        job, script=job.script.read_bytes(), lock=lock_text, trees=trees, upstreams=upstreams,
        workloads=workloads_input(job, ctx), device=ctx.device.fingerprint, base=ctx.provider.key_input(ctx),
        python=job_python(ctx),
        variables={v: os.environ.get(v) for v in job.env}, settings=stage_settings(ctx) if job.stage else None,
        mode=mode_text(ctx.modes),
    )
    return inputs, key_of(inputs)


def plan(ctx: Context, jobs: dict[str, Job], order: list[str],
         forced: set[str] | frozenset[str] = frozenset()) -> dict[str, Planned]:
    """Plans in run order; stage jobs (combine) get their key later, once their upstreams' outcomes are known.

    Reads locks and the provider's records, never writes them (`write_locks` and `prepare_envs` run first where a
    run may lock), and runs no job and no uv.
    """
    trees = TreeHashes()
    plans: dict[str, Planned] = {}
    for name in order:
        job = jobs[name]
        preskip, lock_text = preskip_reason(job, ctx) or ctx.unresolved.get(name), None
        if preskip is None:
            lock_text = read_lock(job, ctx)
            preskip = ctx.provider.conflict(job, lock_text, ctx)
        inputs = key = cached = None
        if not job.stage:
            inputs, key = job_key(job, lock_text, ctx, trees, {up: {"key": plans[up].key} for up in job.needs})
            if name not in forced:
                cached = ctx.store.lookup(name, key)
        if not job.stage and cached is None and preskip is None and lock_text is not None and lock_state(job, lock_text) == "ok":
            # A cached entry was made from these very pins (they are in its key) after they passed this check,
            # so only jobs about to run pay for it (and for importing packaging).
            check_lock(job, lock_text, ctx.provider.markers)
        plans[name] = Planned(job=job, lock_text=lock_text, inputs=inputs, key=key, cached=cached, preskip=preskip,
                              forced=name in forced)
    return plans
