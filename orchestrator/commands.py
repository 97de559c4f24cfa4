"""The CLI's commands: each resolves a Context, plans, and hands off to the scheduler or the store."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from orchestrator.context import REPO, STAGE, STAGE_DIR, Context
from orchestrator.discover import Job, discover, load_job, with_upstreams
from orchestrator.envs import Interpreter, default_envs_dir
from orchestrator.errors import UserError
from orchestrator.fingerprint import detect_device
from orchestrator.store import Store
from orchestrator.workloads import resolve_suite

SUITES = Path("shared") / "attnbench" / "workloads"


def _gpus(spec: str | None, device) -> tuple[str, ...]:
    if not device.has_gpu:
        if spec:
            raise UserError(f"--gpus {spec}: no NVIDIA GPU on this machine")
        return ()
    if spec is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return tuple(v.strip() for v in visible.split(",") if v.strip()) if visible else tuple(str(i) for i in range(len(device.gpus)))
    ids = tuple(s.strip() for s in spec.split(","))
    for i in ids:
        if not i.isdigit() or int(i) >= len(device.gpus):
            raise UserError(f"--gpus {spec}: {i!r} is not a GPU index of this machine (0..{len(device.gpus) - 1})")
    return ids


def make_context(args, **overrides) -> Context:
    device = detect_device()
    impls_dir = args.impls_dir.resolve()
    suites_dir = args.suites_dir or next((d for d in (impls_dir.parent / SUITES, REPO / SUITES) if d.is_dir()), REPO / SUITES)
    suite = resolve_suite(args.workloads or ("seed" if device.has_gpu else "smoke"), suites_dir)
    ctx = Context(
        impls_dir=impls_dir, store=Store(args.artifacts.resolve()), envs_dir=(args.envs_dir or default_envs_dir()).resolve(),
        suite=suite, device=device, interp=Interpreter.current(), wheelhouses=tuple(args.wheelhouse), offline=args.offline,
        gpus=_gpus(getattr(args, "gpus", None), device), **overrides,
    )
    if args.python:
        from orchestrator.base import Base

        ctx = replace(ctx, base=Base.probe(args.python, ctx))
    return ctx


def load_jobs(ctx: Context) -> dict[str, Job]:
    jobs = discover(ctx.impls_dir)
    if STAGE in jobs:
        raise UserError(f"{jobs[STAGE].folder}: the name {STAGE!r} is reserved for the combine stage")
    return jobs


def stage_job(upstreams: list[str]) -> Job:
    return replace(load_job(STAGE_DIR / f"{STAGE}.py", STAGE, stage=True), needs=tuple(upstreams))


def _select(jobs: dict[str, Job], names: list[str]) -> list[str]:
    if names == ["all"]:
        return with_upstreams(jobs, sorted(jobs))
    if "all" in names:
        raise UserError("run: give either 'all' or impl names, not both")
    return with_upstreams(jobs, names)


def _executor(args, progress):
    """The chosen executor; Ray's is made without importing ray (it connects only when a job must run)."""
    if args.executor == "local":
        from orchestrator.executor import LocalExecutor

        return LocalExecutor()
    from orchestrator.ray_executor import RayExecutor

    return RayExecutor(args.ray_address, on_phase=progress.set)


def cmd_run(args) -> int:
    from orchestrator.jobrun import JobRunner
    from orchestrator.plan import plan
    from orchestrator.progress import Progress
    from orchestrator.scheduler import Scheduler
    from orchestrator.summary import print_summary

    if args.jobs < 1:
        raise UserError(f"-j {args.jobs}: must be at least 1")
    if args.executor == "ray" and args.gpus:
        raise UserError(f"--gpus {args.gpus}: with --executor ray the cluster places GPU jobs (ray start --num-gpus)")
    if args.ray_address and args.executor != "ray":
        raise UserError("--ray-address: only with --executor ray")
    ctx = make_context(args, force=args.force, locked=args.locked, jobs=args.jobs, baseline=args.baseline)
    jobs = load_jobs(ctx)
    order = _select(jobs, args.names)
    forced = set(order if args.names == ["all"] else args.names) if args.force else set()
    if not args.no_combine:
        jobs = {**jobs, STAGE: stage_job(order)}
        order = [*order, STAGE]
        if args.force:
            forced.add(STAGE)
    started = time.time()
    print(f"{len(order)} jobs · suite {ctx.suite.name} · {ctx.device.fingerprint} · artifacts {ctx.store.root}", flush=True)
    progress = Progress(order)
    try:
        plans = plan(ctx, jobs, order, forced, on_lock=lambda n, s: progress.set(n, "locking", f"lock {s}"))
        results = Scheduler(ctx, JobRunner(ctx, _executor(args, progress)), plans, progress).run()
    finally:
        progress.close()
    return print_summary(ctx, results, time.time() - started)


def cmd_combine(args) -> int:
    from orchestrator.executor import LocalExecutor
    from orchestrator.jobrun import JobRunner, Result, result_of
    from orchestrator.plan import plan
    from orchestrator.progress import Progress
    from orchestrator.scheduler import Scheduler
    from orchestrator.summary import print_summary

    ctx = make_context(args, force=args.force, baseline=args.baseline)
    jobs = load_jobs(ctx)
    order = _select(jobs, ["all"])
    plans = plan(ctx, jobs, order, create_locks=False)
    runner = JobRunner(ctx, LocalExecutor())
    initial = {}
    for name, p in plans.items():
        if p.cached is not None:
            initial[name] = result_of(p, p.cached, ctx.store.entry(name, p.key), cached=True)
        elif p.preskip is not None:
            initial[name] = runner.commit_preskip(p)
        else:
            initial[name] = Result(name, "missing", "no cached result at the current key (run it first)", p.key)
    stage = {STAGE: stage_job(order)}
    stage_plan = plan(ctx, stage, [STAGE], {STAGE} if args.force else set())
    progress = Progress([STAGE])
    try:
        results = Scheduler(ctx, runner, stage_plan, progress, initial=initial).run()
    finally:
        progress.close()
    return print_summary(ctx, results, 0.0)


def cmd_compare(args) -> int:
    from orchestrator.compare import compare

    return compare(args.a, args.b, args.threshold, args.alpha)


def _status_line(ctx: Context, p) -> str:
    from orchestrator.locks import lock_state

    if p.preskip:
        return f"skip      {p.preskip}"
    if p.lock_text is None and ctx.base is None:
        return f"unlocked  lock {lock_state(p.job)} (run `python -m orchestrator lock {p.job.name}`)"
    if p.cached is not None:
        age = time.time() - p.cached.finished
        return f"cached    {p.cached.status}, {age / 3600:.1f} h ago" + (f": {p.cached.reason}" if p.cached.reason else "")
    if ctx.store.entries(p.job.name):
        return "stale     inputs changed since the last result"
    return "never run"


def cmd_list(args) -> int:
    from orchestrator.plan import plan

    ctx = make_context(args)
    jobs = load_jobs(ctx)
    plans = plan(ctx, jobs, _select(jobs, ["all"]), create_locks=False)
    width = max([len(n) for n in plans] + [4])
    for name, p in plans.items():
        fam = p.job.tags.get("family", "")
        print(f"{name:<{width}}  {fam:<16}  {_status_line(ctx, p)}")
    return 0


def _planned(ctx: Context, name: str, create_locks: bool):
    from orchestrator.plan import plan

    jobs = load_jobs(ctx)
    return plan(ctx, jobs, with_upstreams(jobs, [name]), create_locks=create_locks)


def cmd_show(args) -> int:
    ctx = make_context(args)
    plans = _planned(ctx, args.name, create_locks=False)
    p = plans[args.name]
    entry = ctx.store.entry(args.name, p.key)
    print(f"name      {args.name}\nscript    {p.job.script}\nlock      {p.job.lock}\nkey       {p.key}")
    print(f"status    {_status_line(ctx, p)}")
    manifest = p.cached
    if manifest is None:
        older = sorted(ctx.store.entries(args.name), key=lambda e: e.stat().st_mtime)
        if older:
            entry = older[-1]
            manifest = ctx.store.lookup(args.name, entry.name, verify=False)
            print(f"(showing the latest entry, made from other inputs: {entry})")
    print(f"folder    {entry if manifest else '(none)'}")
    print("key inputs:\n" + json.dumps(p.inputs, indent=2, sort_keys=True))
    if manifest:
        print("manifest:\n" + json.dumps(manifest.to_json(), indent=2, sort_keys=True))
    return 0


def cmd_reproduce(args) -> int:
    from orchestrator.executor import LocalExecutor
    from orchestrator.jobrun import JobRunner

    ctx = make_context(args)
    plans = _planned(ctx, args.name, create_locks=True)
    p = plans[args.name]
    if p.preskip:
        raise UserError(f"{args.name}: cannot run on this machine: {p.preskip}")
    ups = {}
    for up in p.job.needs:
        if plans[up].cached is None:
            raise UserError(f"{args.name}: upstream {up} has no result at its current key; run `python -m orchestrator run {args.name}` first")
        ups[up] = ctx.store.entry(up, plans[up].key)
    runner = JobRunner(ctx, LocalExecutor())
    print(f"building the environment of {args.name} if needed…", file=sys.stderr)
    env = runner.build_env(p)
    gpu_ids = ctx.gpus[:1] if p.job.gpu else ()
    print(runner.reproduce_command(p, env, runner.variables(p, env, ups, gpu_ids)))
    return 0


def cmd_verify(args) -> int:
    checked, problems = Store(args.artifacts.resolve()).verify_all()
    for folder, problem in problems:
        print(f"damaged {folder}: {problem}")
    print(f"{checked} entries checked, {len(problems)} damaged" + (" (they are ignored, and their jobs rerun)" if problems else ""))
    if args.envs:
        from orchestrator.envcheck import verify_envs

        n, bad = verify_envs((args.envs_dir or default_envs_dir()).resolve())
        for folder, problem in bad:
            print(f"damaged {folder}: {problem}")
        print(f"{n} envs checked, {len(bad)} damaged" + (" (each is rebuilt before its next use)" if bad else ""))
        problems = [*problems, *bad]
    return 1 if problems else 0


def cmd_lock(args) -> int:
    from orchestrator.locks import write_lock
    from orchestrator.uvtool import find_uv

    uv = find_uv(tuple(args.wheelhouse), args.offline)
    jobs = discover(args.impls_dir.resolve())
    for name in args.names or sorted(jobs):
        if name not in jobs:
            raise UserError(f"unknown impl {name!r} (known: {', '.join(sorted(jobs))})")
        print(f"locking {name}…", flush=True)
        write_lock(jobs[name], uv)
    if not args.names:
        write_lock(stage_job([]), uv)
    return 0


def cmd_clean(args) -> int:
    from orchestrator.clean import clean

    ctx = make_context(args)
    return clean(ctx, load_jobs(ctx), everything=args.all)
