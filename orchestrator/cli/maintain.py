"""`verify`, `lock`, `clean` and `compare`: upkeep of the cache, the pins and results, outside a run."""

from __future__ import annotations

from orchestrator.cache.store import Store
from orchestrator.cli.common import load_jobs, make_context, warn, with_matrix
from orchestrator.env.isolated import default_envs_dir
from orchestrator.model.job import discover, unknown_impl, variants_of
from orchestrator.run.stage import STAGE, stage_job


def cmd_verify(args) -> int:
    checked, problems = Store(args.artifacts.resolve()).verify_all()
    for folder, problem in problems:
        print(f"damaged {folder}: {problem}")
    note = " (they are ignored, and their jobs rerun)" if problems else ""
    print(f"{checked} entries checked, {len(problems)} damaged" + note)
    if args.envs:
        from orchestrator.env.check import verify_envs

        n, bad = verify_envs((args.envs_dir or default_envs_dir()).resolve())
        for folder, problem in bad:
            print(f"damaged {folder}: {problem}")
        print(f"{n} envs checked, {len(bad)} damaged" + (" (each is rebuilt before its next use)" if bad else ""))
        problems = [*problems, *bad]
    return 1 if problems else 0


def cmd_lock(args) -> int:
    from orchestrator.env.pins import write_lock
    from orchestrator.env.uv import find_uv

    uv = find_uv(tuple(args.wheelhouse), args.offline)
    jobs = with_matrix(discover(args.impls_dir.resolve(), warn=warn, expand=False), args.matrix, args.names)
    names = [v for n in args.names for v in variants_of(n, jobs) or [n]] if args.names else [*sorted(jobs), STAGE]
    for name in names:
        if name not in jobs and name != STAGE:
            raise unknown_impl(name, jobs)
        print(f"locking {name}…", flush=True)
        write_lock(jobs[name] if name in jobs else stage_job([]), uv)
    return 0


def cmd_clean(args) -> int:
    from orchestrator.cache.clean import clean

    ctx = make_context(args)
    return clean(ctx, load_jobs(ctx, args.matrix), everything=args.all)


def cmd_compare(args) -> int:
    from orchestrator.report.compare import compare

    return compare(args.a, args.b, args.threshold, args.alpha)
