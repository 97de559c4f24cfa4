"""The combine stage's rules in one place: its name, its job, its settings, its key from upstream outcomes, and
what it is told about each upstream. Its code lives in orchestrator/stages/ (a PEP 723 job, hashed into its key)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cache.parsed import Parsed
from orchestrator.errors import UserError
from orchestrator.frozen import replace
from orchestrator.model.context import Context
from orchestrator.model.job import Job, load_job

STAGE = "combine"  # the combine stage's job name, reserved
STAGE_DIR = Path(__file__).resolve().parents[1] / "stages"


def stage_job(upstreams: list[str], parsed: Parsed | None = None) -> Job:
    """The stage as a job that needs `upstreams` (every impl of the run); `parsed` may know its TOML block."""
    return replace(load_job(STAGE_DIR / f"{STAGE}.py", STAGE, stage=True, parsed=parsed), needs=tuple(upstreams))


def check_reserved(jobs: dict[str, Job]) -> None:
    """An impl may not take the stage's name: its results would be mistaken for the combined ones."""
    if STAGE in jobs:
        raise UserError(f"{jobs[STAGE].folder}: the name {STAGE!r} is reserved for the combine stage")


def stage_settings(ctx: Context) -> dict:
    """Run settings a stage reads from its variables (they change its output, so they enter its key)."""
    return {"ORCH_BASELINE": ctx.baseline}


def upstream_outcomes(job: Job, results: dict) -> dict[str, dict]:
    """A stage's key input per upstream: its key and how it ended (a failed upstream changes the report)."""
    return {u: {"key": results[u].key, "status": results[u].status} for u in job.needs}


def keyed(p, ctx: Context, trees, results: dict):
    """The stage's plan with its key (from its upstreams' keys and outcomes) and, unless forced, its cached entry."""
    from orchestrator.run.plan import job_key

    inputs, key = job_key(p.job, p.lock_text, ctx, trees, upstream_outcomes(p.job, results))
    return replace(p, inputs=inputs, key=key, cached=None if p.forced else ctx.store.lookup(p.job.name, key))


def upstreams_doc(job: Job, plans: dict, results: dict) -> dict:
    """What a stage is told about each upstream, failed ones included (they have no artifact folder)."""
    doc = {}
    for u in job.needs:
        r = results[u]
        doc[u] = {"op": plans[u].job.op, "status": r.status, "reason": r.reason, "key": r.key, "cached": r.cached,
                  "entry": str(r.entry) if r.entry else None, "tags": plans[u].job.tags, "log_tail": r.log_tail}
        if plans[u].job.variant:  # a version-matrix variant: the report's name for its records
            doc[u]["label"] = plans[u].job.label
    return doc
