"""`list`, `show` and `reproduce`: what the cache holds for each job, and how to rerun one by hand."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from orchestrator.cache.store import Manifest
from orchestrator.cli.common import load_jobs, make_context, select
from orchestrator.errors import UserError
from orchestrator.model.context import Context
from orchestrator.model.job import unknown_impl, with_upstreams


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
    from orchestrator.env.pins import lock_state

    if p.preskip:
        return f"skip      {p.preskip}"
    if p.lock_text is None and ctx.provider.uses_locks:
        return f"unlocked  lock {lock_state(p.job)} (run `python -m orchestrator lock {p.job.name}`)"
    if p.cached is not None:
        age = ago(time.time() - p.cached.finished)
        return f"cached    {p.cached.status}, {age}" + (f": {p.cached.reason}" if p.cached.reason else "")
    if ctx.store.entries(p.job.name):
        return "stale     inputs changed since the last result"
    return "never run"


def cmd_list(args) -> int:
    from orchestrator.run.plan import plan

    ctx = make_context(args)
    jobs = load_jobs(ctx, args.matrix)
    plans = plan(ctx, jobs, select(jobs, ["all"], ctx.impls_dir))
    width = max([len(n) for n in plans] + [4])
    print(f"{'impl':<{width}}  {'family':<16}  status    detail")
    for name, p in plans.items():
        fam = p.job.tags.get("family", "")
        print(f"{name:<{width}}  {fam:<16}  {_status_line(ctx, p)}")
    return 0


def _planned(ctx: Context, name: str, create_locks: bool, matrix=None):
    from orchestrator.run.plan import plan, prepare_envs, write_locks

    jobs = load_jobs(ctx, matrix)
    if name not in jobs:  # a matrixed impl's own name stands for several jobs: one must be named
        raise unknown_impl(name, jobs)
    names = with_upstreams(jobs, [name])
    if create_locks:  # reproduce: the phase before planning, as a run has it (show only reads)
        write_locks(ctx, jobs, names)
        prepare_envs(ctx, jobs, names)
    return plan(ctx, jobs, names)


def _newest_entry(ctx: Context, name: str):
    """The most recently finished sound entry of a job, whatever its inputs: (folder, manifest) or (None, None)."""
    best: tuple[Path | None, Manifest | None] = (None, None)
    for folder in ctx.store.entries(name):
        m = ctx.store.lookup(name, folder.name, verify=False)
        if m is not None and (best[1] is None or m.finished > best[1].finished):
            best = (folder, m)
    return best


def _result_lines(entry: Path, limit: int = 50) -> list[str]:
    """One line per result record of an entry: workload (and its mode unless fwd), status, p50 and correctness
    (at most `limit`)."""
    lines: list[str] = []
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
                wl: dict = rec["wl"] if isinstance(rec.get("wl"), dict) else {}
                lat: dict = rec["lat_ms"] if isinstance(rec.get("lat_ms"), dict) else {}
                p50 = lat.get("p50")
                p50 = f"{p50:.4g} ms" if isinstance(p50, (int, float)) and not isinstance(p50, bool) else "-"
                status = str(rec.get("status", "ok"))
                labels: dict = {True: "correct", False: "WRONG"}
                ok = labels.get(rec.get("ok"), "")
                reason = f"  {rec.get('reason')}" if rec.get("reason") else ""
                mode = rec.get("mode") if rec.get("mode") not in (None, "fwd") else ""
                name = str(wl.get("name", "?"))[:40] + (f" [{str(mode)[:10]}]" if mode else "")
                lines.append(f"  {name:<24} {status[:10]:<8} {p50:>12}  {ok}{reason[:200]}")
    return lines


def cmd_show(args) -> int:
    ctx = make_context(args)
    plans = _planned(ctx, args.name, create_locks=False, matrix=args.matrix)
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
    from orchestrator.executors.local import LocalExecutor
    from orchestrator.run.jobrun import JobRunner

    ctx = make_context(args)
    plans = _planned(ctx, args.name, create_locks=True, matrix=args.matrix)
    p = plans[args.name]
    if p.preskip:
        raise UserError(f"{args.name}: cannot run on this machine: {p.preskip}")
    ups = {}
    for up in p.job.needs:
        if plans[up].cached is None:
            raise UserError(f"{args.name}: upstream {up} has no result at its current key; "
                            f"run `python -m orchestrator run {args.name}` first")
        ups[up] = ctx.store.entry(up, plans[up].key)
    runner = JobRunner(ctx, LocalExecutor())
    print(f"building the environment of {args.name} if needed…", file=sys.stderr)
    env = runner.build_env(p)
    gpu_ids = ctx.gpus[:1] if p.job.gpu else ()
    print(runner.reproduce_command(p, env, runner.variables(p, env, ups, gpu_ids)))
    return 0
