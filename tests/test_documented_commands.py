"""The documented ways in, run as a user runs them: nox, combine after a run, `run NAME` and latest/."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

from conftest import REPO


def nox(*args, env: dict, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True, timeout=600)


def test_nox_lists_a_session_per_impl_and_family_even_when_a_family_bears_an_impl_name():
    res = nox("-l", env={})
    assert res.returncode == 0, res.stdout + res.stderr
    for session in ("xformers", "torch_flash", "torch-sdpa", "hf-kernels", "tests"):
        assert f"- {session} " in res.stdout or f"* {session} " in res.stdout, (session, res.stdout)


def test_nox_runs_one_impl_session_on_a_fixture_tree(tree):
    env = {"ORCH_IMPLS_DIR": str(tree.impls)}
    listed = nox("-l", env=env)
    assert listed.returncode == 0 and "- plain " in listed.stdout, listed.stdout + listed.stderr
    res = nox("-s", "plain", "--", "--artifacts", str(tree.artifacts), "--envs-dir", str(tree.envs),
              "--workloads", str(tree.root / "suite.toml"), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tree.artifacts / "plain").is_dir() and (tree.artifacts / "latest" / "latency.csv").is_file()


def _impls_in_latest(tree) -> dict[str, str]:
    with open(tree.artifacts / "latest" / "latency.csv", encoding="utf-8") as f:
        return {row["Impl ID"]: row["status"] for row in csv.DictReader(f)}


def test_combine_works_when_it_has_work_to_do(tree):
    assert tree.run(extra=("--no-combine",)).returncode == 0
    first = tree.cli("combine")
    assert first.returncode == 0 and "internal error" not in first.stdout, first.stdout + first.stderr
    assert tree.cli("combine", "--force").returncode == 0
    base = tree.cli("combine", "--baseline", "plain")
    assert base.returncode == 0, base.stdout + base.stderr
    assert set(_impls_in_latest(tree)) >= {"plain", "up", "down"}


def test_run_one_name_keeps_every_impl_in_latest(tree):
    assert tree.run().returncode == 0
    script = tree.impls / "plain" / "bench.py"
    script.write_text(script.read_text() + "# edited\n")
    res = tree.run("plain")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.ran() == {"plain", "combine"}, res.states()
    statuses = _impls_in_latest(tree)
    assert {"plain", "up", "down", "six_old", "six_new"} <= set(statuses), statuses


def test_run_one_name_shows_uncached_others_as_not_run(tree):
    res = tree.run("plain")
    assert res.returncode == 0, res.stdout + res.stderr
    statuses = _impls_in_latest(tree)
    assert statuses["plain"] == "ok" and statuses["up"] == "missing", statuses


def test_a_suite_the_harness_rejects_is_exit_2_before_anything_runs(tree):
    bad = tree.root / "bad.toml"
    bad.write_text('[[workload]]\nname = "flux-L128"\nbatch = 1\nseq_len = 8\nheads = 1\nhead_dim = 4\ndtype = "float32"\n')
    res = orch_run_with_suite(tree, bad)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "bad.toml" in res.stderr and "workload[0].name" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tree.artifacts / "plain").exists()


def orch_run_with_suite(tree, suite):
    from conftest import orch

    return orch("run", "all", "--impls-dir", tree.impls, "--artifacts", tree.artifacts, "--envs-dir", tree.envs,
                "--workloads", suite)
