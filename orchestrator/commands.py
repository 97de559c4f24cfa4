"""The CLI's commands: each resolves a Context, plans, and hands off to the scheduler or the store."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from orchestrator.context import REPO, STAGE, STAGE_DIR, Context
from orchestrator.discover import SCRIPT_FILE, Job, discover, load_job, unknown_impl, with_upstreams
from orchestrator.envs import Interpreter, default_envs_dir
from orchestrator.errors import UserError
from orchestrator.fingerprint import detect_device
from orchestrator.store import Store
from orchestrator.workloads import resolve_suite

HARNESS = Path("shared") / "attnbench"
SUITES = HARNESS / "workloads"


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
    harness = next((d for d in (impls_dir.parent / HARNESS, REPO / HARNESS) if (d / "suite.py").is_file()), REPO / HARNESS)
    suite = resolve_suite(args.workloads or ("seed" if device.has_gpu else "smoke"), suites_dir, harness)
    ctx = Context(
        impls_dir=impls_dir, store=Store(args.artifacts.resolve()), envs_dir=(args.envs_dir or default_envs_dir()).resolve(),
        suite=suite, device=device, interp=Interpreter.current(), wheelhouses=tuple(args.wheelhouse), offline=args.offline,
        gpus=_gpus(getattr(args, "gpus", None), device), **overrides,
    )
    if args.python:
        from orchestrator.base import Base

        ctx = replace(ctx, base=Base.probe(args.python, ctx))
    return ctx


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def load_jobs(ctx: Context) -> dict[str, Job]:
    jobs = discover(ctx.impls_dir, warn=_warn)
    if STAGE in jobs:
        raise UserError(f"{jobs[STAGE].folder}: the name {STAGE!r} is reserved for the combine stage")
    return jobs


def stage_job(upstreams: list[str]) -> Job:
    return replace(load_job(STAGE_DIR / f"{STAGE}.py", STAGE, stage=True), needs=tuple(upstreams))


def _select(jobs: dict[str, Job], names: list[str], impls_dir: Path | None = None) -> list[str]:
    """The named jobs (or all) plus their upstreams; an empty selection is a usage error, never '1 ok'."""
    if names == ["all"]:
        if not jobs and impls_dir is not None:
            raise UserError(f"{impls_dir}: no impls found (a folder <name>/ with a {SCRIPT_FILE}); nothing to run")
        return with_upstreams(jobs, sorted(jobs))
    if "all" in names:
        raise UserError("run: give either 'all' or impl names, not both")
    return with_upstreams(jobs, names)


def _decided(ctx: Context, runner, plans: dict, names: list[str]) -> dict:
    """Outcomes of jobs this run does not execute, for the combine stage: cached, skipped here, or not run."""
    from orchestrator.jobrun import Result, result_of

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
    from orchestrator.executor import LocalExecutor

    return LocalExecutor()


def _ray_executor(address: str | None):
    """Ray's executor, made without importing ray (it connects only when a job must run)."""
    def make(progress):
        from orchestrator.ray_executor import RayExecutor

        return RayExecutor(address, on_phase=progress.set)

    return make


def _execute(ctx: Context, jobs: dict[str, Job], to_run: list[str], forced: set[str], combine: bool,
             make_executor=_local_executor) -> int:
    """Plan every job the stage needs, run `to_run` (plus the stage), point `latest` at the stage's result."""
    from orchestrator.clean import record_roots
    from orchestrator.jobrun import JobRunner
    from orchestrator.plan import plan
    from orchestrator.progress import Progress
    from orchestrator.scheduler import Scheduler
    from orchestrator.summary import print_summary

    started = time.time()
    everything = _select(jobs, ["all"]) if combine else to_run
    shown = [*to_run, STAGE] if combine else to_run
    print(f"{len(shown)} jobs · suite {ctx.suite.name} · {ctx.device.fingerprint} · artifacts {ctx.store.root}", flush=True)
    progress = Progress(shown)
    runner = JobRunner(ctx, make_executor(progress))
    try:
        plans = plan(ctx, jobs, everything, forced, create_locks=frozenset(to_run),
                     on_lock=lambda n, s: progress.set(n, "locking", f"lock {s}"))
        record_roots(ctx, plans)  # so `clean` in another checkout sharing the artifacts keeps these entries
        initial = _decided(ctx, runner, plans, [n for n in everything if n not in to_run])
        if combine:
            plans.update(plan(ctx, {STAGE: stage_job(everything)}, [STAGE], forced & {STAGE}))
        results = Scheduler(ctx, runner, plans, progress, initial=initial).run()
    finally:
        progress.close()
    latest = None
    stage = results.get(STAGE)
    if stage is not None and stage.entry is not None:
        latest = ctx.store.point_latest(stage.entry)
    return print_summary(ctx, {n: results[n] for n in shown}, time.time() - started, latest)


def cmd_run(args) -> int:
    if args.jobs < 1:
        raise UserError(f"-j {args.jobs}: must be at least 1")
    if args.executor == "ray" and args.gpus:
        raise UserError(f"--gpus {args.gpus}: with --executor ray the cluster places GPU jobs (ray start --num-gpus)")
    if args.ray_address and args.executor != "ray":
        raise UserError("--ray-address: only with --executor ray")
    ctx = make_context(args, force=args.force, locked=args.locked, jobs=args.jobs, baseline=args.baseline)
    jobs = load_jobs(ctx)
    order = _select(jobs, args.names, ctx.impls_dir)
    forced = set(order if args.names == ["all"] else args.names) if args.force else set()
    if args.force and not args.no_combine:
        forced.add(STAGE)
    make = _ray_executor(args.ray_address) if args.executor == "ray" else _local_executor
    return _execute(ctx, jobs, order, forced, combine=not args.no_combine, make_executor=make)


def cmd_combine(args) -> int:
    ctx = make_context(args, force=args.force, baseline=args.baseline)
    jobs = load_jobs(ctx)
    _select(jobs, ["all"], ctx.impls_dir)
    return _execute(ctx, jobs, [], {STAGE} if args.force else set(), combine=True)


def cmd_compare(args) -> int:
    from orchestrator.compare import compare

    return compare(args.a, args.b, args.threshold, args.alpha)


def ago(seconds: float) -> str:
    """A short human age: '40 s ago', '12 min ago', '3 h ago', '5 days ago'."""
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _status_line(ctx: Context, p) -> str:
    from orchestrator.locks import lock_state

    if p.preskip:
        return f"skip      {p.preskip}"
    if p.lock_text is None and ctx.base is None:
        return f"unlocked  lock {lock_state(p.job)} (run `python -m orchestrator lock {p.job.name}`)"
    if p.cached is not None:
        age = ago(time.time() - p.cached.finished)
        return f"cached    {p.cached.status}, {age}" + (f": {p.cached.reason}" if p.cached.reason else "")
    if ctx.store.entries(p.job.name):
        return "stale     inputs changed since the last result"
    return "never run"


def cmd_list(args) -> int:
    from orchestrator.plan import plan

    ctx = make_context(args)
    jobs = load_jobs(ctx)
    plans = plan(ctx, jobs, _select(jobs, ["all"], ctx.impls_dir), create_locks=False)
    width = max([len(n) for n in plans] + [4])
    print(f"{'impl':<{width}}  {'family':<16}  status    detail")
    for name, p in plans.items():
        fam = p.job.tags.get("family", "")
        print(f"{name:<{width}}  {fam:<16}  {_status_line(ctx, p)}")
    return 0


def _planned(ctx: Context, name: str, create_locks: bool):
    from orchestrator.plan import plan

    jobs = load_jobs(ctx)
    return plan(ctx, jobs, with_upstreams(jobs, [name]), create_locks=create_locks)


def _newest_entry(ctx: Context, name: str):
    """The most recently finished sound entry of a job, whatever its inputs: (folder, manifest) or (None, None)."""
    best = (None, None)
    for folder in ctx.store.entries(name):
        m = ctx.store.lookup(name, folder.name, verify=False)
        if m is not None and (best[1] is None or m.finished > best[1].finished):
            best = (folder, m)
    return best


def _result_lines(entry: Path, limit: int = 50) -> list[str]:
    """One line per result record of an entry: workload, status, p50 and correctness (at most `limit`)."""
    lines = []
    for path in sorted(entry.rglob("*.jsonl")):
        if "_logs" in path.relative_to(entry).parts:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for raw in f:
                if len(lines) >= limit:
                    return [*lines, f"  … (more in {entry})"]
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(rec, dict):
                    continue
                wl = rec.get("wl") if isinstance(rec.get("wl"), dict) else {}
                lat = rec.get("lat_ms") if isinstance(rec.get("lat_ms"), dict) else {}
                p50 = lat.get("p50")
                p50 = f"{p50:.4g} ms" if isinstance(p50, (int, float)) and not isinstance(p50, bool) else "-"
                status = str(rec.get("status", "ok"))
                ok = {True: "correct", False: "WRONG"}.get(rec.get("ok"), "")
                reason = f"  {rec.get('reason')}" if rec.get("reason") else ""
                lines.append(f"  {str(wl.get('name', '?'))[:40]:<24} {status[:10]:<8} {p50:>12}  {ok}{reason[:200]}")
    return lines


def cmd_show(args) -> int:
    ctx = make_context(args)
    plans = _planned(ctx, args.name, create_locks=False)
    p = plans[args.name]
    entry = ctx.store.entry(args.name, p.key)
    print(f"name      {args.name}\nscript    {p.job.script}\nlock      {p.job.lock}\nkey       {p.key}")
    print(f"status    {_status_line(ctx, p)}")
    manifest = p.cached
    if manifest is None:
        entry, manifest = _newest_entry(ctx, args.name)
        if manifest is not None:
            print(f"(showing the newest entry, made from other inputs: {entry})")
    print(f"folder    {entry if manifest else '(none)'}")
    print("key inputs:\n" + json.dumps(p.inputs, indent=2, sort_keys=True))
    if manifest:
        doc = manifest.to_json()
        if doc.get("inputs") == p.inputs:
            doc.pop("inputs")  # printed above
        print("manifest:\n" + json.dumps(doc, indent=2, sort_keys=True))
        print("results:\n" + ("\n".join(_result_lines(entry)) or "  (no result records)"))
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
    jobs = discover(args.impls_dir.resolve(), warn=_warn)
    for name in args.names or sorted(jobs):
        if name not in jobs:
            raise unknown_impl(name, jobs)
        print(f"locking {name}…", flush=True)
        write_lock(jobs[name], uv)
    if not args.names:
        write_lock(stage_job([]), uv)
    return 0


def cmd_clean(args) -> int:
    from orchestrator.clean import clean

    ctx = make_context(args)
    return clean(ctx, load_jobs(ctx), everything=args.all)
