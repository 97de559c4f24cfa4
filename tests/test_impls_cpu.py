"""The real impls on a CPU: layered over a base venv with the CPU torch build, the smoke suite, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, orch

TORCH = "torch==2.13.0"  # the CPU build pip finds on this machine's disk; never the multi-GB CUDA build


@pytest.fixture(scope="session")
def torch_base() -> Path:
    """A venv with CPU torch and numpy, made once and kept (it is large): the 'pre-built image' of host mode."""
    # Kept between sessions (it is large), outside ~/.cache: a folder of the suite's own in the temp dir.
    default = Path(tempfile.gettempdir()) / f"orchestrator-tests-{os.getuid()}" / "torch-base"
    root = Path(os.environ.get("ORCH_TEST_TORCH_BASE") or default)
    py = root / "bin" / "python"
    if not (root / ".complete").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
        res = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--only-binary=:all:", TORCH, "numpy"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot install the CPU torch build here: {res.stderr.strip().splitlines()[-1:]}")
        (root / ".complete").write_text("")
    return py


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
