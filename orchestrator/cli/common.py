"""What every command starts from: the run's Context from the arguments, the discovered jobs, a selection."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orchestrator.cache import parsed
from orchestrator.cache.store import Store
from orchestrator.env.isolated import Interpreter, default_envs_dir
from orchestrator.errors import UserError
from orchestrator.frozen import replace
from orchestrator.model.context import REPO, Context
from orchestrator.model.device import detect_device
from orchestrator.model.job import SCRIPT_FILE, Job, discover, with_upstreams
from orchestrator.model.mode import parse_modes
from orchestrator.model.suite import resolve_suites
from orchestrator.run.stage import check_reserved

HARNESS = Path("shared") / "opbench"
SUITES = HARNESS / "workloads"


def _gpus(spec: str | None, device) -> tuple[str, ...]:
    if not device.has_gpu:
        if spec:
            raise UserError(f"--gpus {spec}: no NVIDIA GPU on this machine")
        return ()
    if spec is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:
            return tuple(v.strip() for v in visible.split(",") if v.strip())
        return tuple(str(i) for i in range(len(device.gpus)))
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
    store = Store(args.artifacts.resolve())
    known = parsed.Parsed(store.root / parsed.FILE)
    suites = resolve_suites(args.workloads or ("seed" if device.has_gpu else "smoke"), suites_dir, harness, known)
    ctx = Context(
        impls_dir=impls_dir, store=store, envs_dir=(args.envs_dir or default_envs_dir()).resolve(),
        suites=suites, device=device, interp=Interpreter.current(), wheelhouses=tuple(args.wheelhouse), offline=args.offline,
        gpus=_gpus(getattr(args, "gpus", None), device), parsed=known, modes=parse_modes(getattr(args, "mode", None)),
        **overrides,
    )
    if args.python:
        from orchestrator.env.host import Base

        ctx = replace(ctx, provider=Base.probe(args.python, ctx))
    return ctx


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def with_matrix(jobs: dict[str, Job], flags: list[str] | None, names=()) -> dict[str, Job]:
    """Discovered impls (not yet expanded) with every version matrix expanded into its variants: the scripts' own,
    and `--matrix PACKAGE=V1,V2` (flags) for the impls named (`names`), else for every impl that requires PACKAGE."""
    override = None
    if flags:
        from orchestrator.model.matrix import from_flag, targets

        if len(flags) > 1:
            raise UserError(f"--matrix: one package at a time (given {len(flags)}: {', '.join(flags)})")
        package, versions = from_flag(flags[0])
        override = (package, versions, targets(jobs, package, list(names)))
    if override is None and all(j.matrix is None for j in jobs.values()):
        return jobs
    from orchestrator.model.matrix import expand

    return expand(jobs, override)


def load_jobs(ctx: Context, matrix: list[str] | None = None, names=(), expand: bool = True) -> dict[str, Job]:
    """The impls of the run (a version matrix expanded: `matrix` is the --matrix flags, `names` the impls named;
    expand=False: every impl as its script is, matrix or not)."""
    jobs = discover(ctx.impls_dir, warn=warn, parsed=ctx.parsed, expand=False)
    check_reserved(jobs)
    if expand:
        jobs = with_matrix(jobs, matrix, names)
    for job in jobs.values():
        if ctx.suites.ops and job.op not in ctx.suites.ops:
            raise UserError(f"{job.script}: [tool.orchestrator] op: unknown op {job.op!r} (known: {', '.join(ctx.suites.ops)})")
    return jobs


def select(jobs: dict[str, Job], names: list[str], impls_dir: Path | None = None) -> list[str]:
    """The named jobs (or all) plus their upstreams; an empty selection is a usage error, never '1 ok'."""
    if names == ["all"]:
        if not jobs and impls_dir is not None:
            raise UserError(f"{impls_dir}: no impls found (a folder <name>/ with a {SCRIPT_FILE}); nothing to run")
        return with_upstreams(jobs, sorted(jobs))
    if "all" in names:
        raise UserError("run: give either 'all' or impl names, not both")
    return with_upstreams(jobs, names)
