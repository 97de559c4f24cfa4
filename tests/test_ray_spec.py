"""A worker turns a JobSpec back into the job, and refuses to run anything that differs from its key (no Ray)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.cli import build_parser
from orchestrator.cli.common import load_jobs, make_context
from orchestrator.model.job import with_upstreams
from orchestrator.errors import BuildError
from orchestrator.run.plan import plan
from orchestrator.executors.ray.bundle import Bundle
from orchestrator.executors.ray.spec import ARTIFACT, job_spec
from orchestrator.executors.ray.worker import materialize


def planned(tree, name):
    ctx = make_context(build_parser().parse_args(["run", name, *map(str, tree.args())]))
    jobs = load_jobs(ctx)
    return ctx, plan(ctx, jobs, with_upstreams(jobs, [name]))[name]


def sent(spec):
    return [Bundle.of(Path(path), source_tree=role != ARTIFACT) for role, _, path in spec.folders]


def test_worker_rebuilds_the_job_with_its_own_paths_and_the_same_key_inputs(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("ORCH_ENVS_DIR", str(tmp_path / "node-envs"))
    ctx, p = planned(tree, "up")
    spec = job_spec(ctx, p, {})
    wctx, wp, ups = materialize(spec, sent(spec), tmp_path / "w")
    assert wp.key == p.key and ups == {}
    assert wp.job.script.read_bytes() == p.job.script.read_bytes() and wp.job.script != p.job.script
    assert wp.job.path_deps[0].root.is_relative_to(tmp_path / "w")
    assert wctx.envs_dir == tmp_path / "node-envs" and wctx.suites.key_input() == {"attention": ctx.suites.get("attention").key_input()}


def test_worker_refuses_sources_changed_after_planning(tree, tmp_path):
    ctx, p = planned(tree, "up")
    spec = job_spec(ctx, p, {})
    harness = tree.root / "shared_fx" / "fxharness" / "__init__.py"
    harness.write_text(harness.read_text() + "# edited after planning\n")
    with pytest.raises(BuildError, match="path dependency fxharness received differs"):
        materialize(spec, sent(spec), tmp_path / "w1")
    sibling = p.job.folder / "helper.py"
    sibling.write_text("X = 1\n")
    with pytest.raises(BuildError, match="job folder received differs"):
        materialize(spec, sent(spec), tmp_path / "w2")


def test_worker_refuses_a_device_other_than_the_planned_one(tree, tmp_path):
    ctx, p = planned(tree, "plain")
    spec = job_spec(ctx, p, {})
    other = replace(spec, inputs={**spec.inputs, "device": "cuda|NVIDIA H100 80GB HBM3|driver 570.00"})
    with pytest.raises(BuildError, match="not the one the keys were planned for"):
        materialize(other, sent(other), tmp_path / "w")
