"""The real impls on a CPU: layered over a base venv with the CPU torch build, the smoke suite, offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import REPO, orch


@pytest.fixture(scope="session")
def smoke_run(torch_base, tmp_path_factory):
    """One `run all` over the real impls, offline, layered over the CPU torch base."""
    tmp = tmp_path_factory.mktemp("impls-cpu")
    out = orch("run", "all", "--workloads", "smoke", "--artifacts", tmp / "artifacts", "--envs-dir", tmp / "envs",
               "--python", torch_base, "--offline", "--wheelhouse", os.environ["UV_FIND_LINKS"],  # the report's wheels
               env={"ORCH_FORCE_CPU": "1"}, timeout=1800)
    return out, tmp / "artifacts"


def records(artifacts: Path, name: str) -> list[dict]:
    entries = [p for p in (artifacts / name).iterdir() if p.is_dir()]
    assert len(entries) == 1
    return [json.loads(line) for f in entries[0].glob("*.jsonl") for line in f.read_text().splitlines() if line.strip()]


def impl_names() -> list[str]:
    return sorted(p.name for p in (REPO / "impls").iterdir() if (p / "bench.py").is_file())


def test_run_all_on_cpu_exits_zero(smoke_run):
    out, _ = smoke_run
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


@pytest.mark.parametrize("name", impl_names())
def test_impl_is_correct_or_cleanly_skipped_on_cpu(smoke_run, name):
    out, artifacts = smoke_run
    recs = records(artifacts, name)
    assert recs, f"{name} wrote no records"
    statuses = {r["status"] for r in recs}
    if statuses == {"skipped"}:
        assert all(r.get("reason") for r in recs), recs
        return
    assert statuses == {"ok"}, [(r.get("wl", {}).get("name"), r["status"], r.get("reason")) for r in recs]
    for r in recs:
        assert r["ok"] is True, (name, r["wl"], r["err"])
        assert r["lat_ms"]["p50"] > 0 and r["lat_ms"]["reps"] >= 1


def test_cpu_capable_impls_really_ran(smoke_run):
    _, artifacts = smoke_run
    ran = {n for n in impl_names() if {r["status"] for r in records(artifacts, n)} == {"ok"}}
    assert {"torch_math", "torch_flash"} <= ran, ran


# The torch eager impls (attention's SDPA math and flash, each family's eager function) in the backward modes: their
# gradients checked against the fp32 reference's on the CPU, an impl without a backward skipped with its reason.
EAGER = ("torch_math", "torch_flash", "rms_norm_torch", "layer_norm_torch", "rotary_torch", "swiglu_torch")


@pytest.fixture(scope="session")
def backward_run(torch_base, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("impls-cpu-bwd")
    out = orch("run", *EAGER, "--mode", "bwd,fwd_bwd", "--no-combine", "--workloads", "smoke", "--artifacts",
               tmp / "artifacts", "--envs-dir", tmp / "envs", "--python", torch_base, "--offline",
               env={"ORCH_FORCE_CPU": "1"}, timeout=1800)
    return out, tmp / "artifacts"


def test_eager_impls_run_the_backward_modes_on_cpu_with_every_gradient_checked(backward_run):
    out, artifacts = backward_run
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "mode bwd,fwd_bwd" in out.stdout.splitlines()[0]
    for name in EAGER:
        recs = records(artifacts, name)
        assert {r["mode"] for r in recs} == {"bwd", "fwd_bwd"}, name
        for r in recs:
            assert r["status"] == "ok" and r["ok"] is True, (name, r["wl"]["name"], r["mode"], r.get("reason"))
            assert r["grad_err"] and all(v is not None and v <= r["err"]["tol"] for v in r["grad_err"].values())
