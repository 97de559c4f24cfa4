"""`run` and `combine`: plan, schedule, point `latest` at the stage's result, summarize."""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.cli.common import load_jobs, make_context, select
from orchestrator.errors import UserError
from orchestrator.model.context import Context
from orchestrator.model.job import Job
from orchestrator.model.mode import mode_text
from orchestrator.run.stage import STAGE, stage_job


def _decided(ctx: Context, runner, plans: dict, names: list[str]) -> dict:
    """Outcomes of jobs this run does not execute, for the combine stage: cached, skipped here, or not run."""
    from orchestrator.run.jobrun import Result, result_of

    out = {}
    for name in names:
        p = plans[name]
        if p.cached is not None:
            out[name] = result_of(p, p.cached, ctx.store.entry(name, p.key), cached=True)
        elif p.preskip is not None:
            out[name] = runner.commit_preskip(p)
        else:
            out[name] = Result(name, "missing", "no result at the current inputs (run it first)", p.key)
    return out


def _local_executor(progress):
    from orchestrator.executors.local import LocalExecutor

    return LocalExecutor()


def _ray_executor(address: str | None):
    """Ray's executor, made without importing ray (it connects only when a job must run)."""
    def make(progress):
        from orchestrator.executors.ray.driver import RayExecutor

        return RayExecutor(address, on_phase=progress.set)

    return make


def _execute(ctx: Context, jobs: dict[str, Job], to_run: list[str], forced: set[str], combine: bool,
             make_executor=_local_executor) -> int:
    """Plan every job the stage needs, run `to_run` (plus the stage), point `latest` at the stage's result."""
    from orchestrator.run.summary import print_summary

    started = time.time()
    results, latest = execute(ctx, jobs, to_run, forced, combine, make_executor)
    shown = [*to_run, STAGE] if combine else to_run
    return print_summary(ctx, {n: results[n] for n in shown}, time.time() - started, latest)


def execute(ctx: Context, jobs: dict[str, Job], to_run: list[str], forced: set[str], combine: bool,
            make_executor=_local_executor) -> tuple[dict, Path | None]:
    """The run itself (locks, plans, the scheduler, `latest`), printing its progress but no summary: each job's
    Result by name, and the `latest` link (None without a combined result). `bisect` runs its steps through it."""
    from orchestrator.cache.clean import record_roots
    from orchestrator.run.jobrun import JobRunner
    from orchestrator.run.plan import plan, prepare_envs, write_locks
    from orchestrator.run.progress import Progress
    from orchestrator.run.scheduler import Scheduler

    everything = select(jobs, ["all"]) if combine else to_run
    shown = [*to_run, STAGE] if combine else to_run
    modes = f" · mode {mode_text(ctx.modes)}" if mode_text(ctx.modes) else ""
    print(f"{len(shown)} jobs · suite {ctx.suites.name}{modes} · {ctx.device.fingerprint} · artifacts {ctx.store.root}",
          flush=True)
    progress = Progress(shown)
    runner = JobRunner(ctx, make_executor(progress))
    try:
        write_locks(ctx, jobs, to_run, on_lock=lambda n, s: progress.set(n, "locking", f"lock {s}"))
        prepare_envs(ctx, jobs, everything)  # host mode resolves its layers here: planning only reads
        plans = plan(ctx, jobs, everything, forced)
        record_roots(ctx, plans)  # so `clean` in another checkout sharing the artifacts keeps these entries
        initial = _decided(ctx, runner, plans, [n for n in everything if n not in to_run])
        if combine:
            stage_jobs = {STAGE: stage_job(everything, ctx.parsed)}
            write_locks(ctx, stage_jobs, [STAGE])
            prepare_envs(ctx, stage_jobs, [STAGE])
            plans.update(plan(ctx, stage_jobs, [STAGE], forced & {STAGE}))
        results = Scheduler(ctx, runner, plans, progress, initial=initial).run()
    finally:
        progress.close()
        ctx.parsed.save()  # what was parsed afresh, for the next run (the artifacts folder exists by now)
    latest = None
    stage = results.get(STAGE)
    if stage is not None and stage.entry is not None:
        latest = ctx.store.point_latest(stage.entry)
    return results, latest


def cmd_run(args) -> int:
    if args.jobs < 1:
        raise UserError(f"-j {args.jobs}: must be at least 1")
    if args.executor == "ray" and args.gpus:
        raise UserError(f"--gpus {args.gpus}: with --executor ray the cluster places GPU jobs (ray start --num-gpus)")
    if args.ray_address and args.executor != "ray":
        raise UserError("--ray-address: only with --executor ray")
    ctx = make_context(args, force=args.force, locked=args.locked, jobs=args.jobs, baseline=args.baseline)
    jobs = load_jobs(ctx, args.matrix, args.names)
    order = select(jobs, args.names, ctx.impls_dir)
    forced = set(order if args.names == ["all"] else args.names) if args.force else set()
    if args.force and not args.no_combine:
        forced.add(STAGE)
    make = _ray_executor(args.ray_address) if args.executor == "ray" else _local_executor
    return _execute(ctx, jobs, order, forced, combine=not args.no_combine, make_executor=make)


def cmd_combine(args) -> int:
    ctx = make_context(args, force=args.force, baseline=args.baseline)
    jobs = load_jobs(ctx, args.matrix)
    select(jobs, ["all"], ctx.impls_dir)
    return _execute(ctx, jobs, [], {STAGE} if args.force else set(), combine=True)
