"""A plan is made by reading only: locks are written in their own phase before it, and a plan never changes."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.cli import build_parser
from orchestrator.cli.common import load_jobs, make_context
from orchestrator.run.plan import plan, write_locks


def test_planning_reads_locks_and_never_writes_them(tree):
    ctx = make_context(build_parser().parse_args(["run", "plain", *map(str, tree.args())]))
    jobs = load_jobs(ctx)
    lock = jobs["plain"].lock
    lock.unlink()
    planned = plan(ctx, jobs, ["plain"])["plain"]
    assert not lock.exists() and planned.lock_text is None
    write_locks(ctx, jobs, ["plain"])
    assert lock.is_file()
    assert plan(ctx, jobs, ["plain"])["plain"].lock_text == lock.read_text()


def test_a_plan_cannot_be_changed_once_made(tree):
    ctx = make_context(build_parser().parse_args(["run", "plain", *map(str, tree.args())]))
    planned = plan(ctx, load_jobs(ctx), ["plain"])["plain"]
    assert planned.key is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        planned.key = "another"  # type: ignore[misc]
