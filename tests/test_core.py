"""The orchestrator's core promises, through the real CLI, real uv and real subprocesses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import DUMP_ENV, NVLS_OFF, copy_tree, entry_of, orch




def test_each_impl_sees_its_own_pinned_version(tree):
    out = tree.run("six_old", "six_new", extra=["--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert (entry_of(tree.artifacts, "six_old") / "version.txt").read_text() == "1.15.0"
    assert (entry_of(tree.artifacts, "six_new") / "version.txt").read_text() == "1.16.0"
    manifest = json.loads((entry_of(tree.artifacts, "six_old") / "manifest.json").read_text())
    assert "six==1.15.0" in manifest["packages"]


def test_downstream_reads_upstream_artifacts_through_variable(tree):
    out = tree.run("down", extra=["--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.ran() == {"up", "down"}  # running one impl brings its upstreams
    assert (entry_of(tree.artifacts, "down") / "down.txt").read_text() == "down saw up v1"


def test_cache_reruns_exactly_what_changed(tree, tmp_path):
    first = tree.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.ran() == {"six_old", "six_new", "up", "down", "plain", "combine"}

    again = tree.run()
    assert again.returncode == 0 and again.ran() == set(), again.stdout

    script = tree.impls / "up" / "bench.py"
    script.write_text(script.read_text().replace('"up "', '"up, edited: "'))
    edited = tree.run()
    assert edited.ran() == {"up", "down", "combine"}, edited.stdout

    harness = tree.root / "shared_fx" / "fxharness" / "__init__.py"
    harness.write_text(harness.read_text().replace('VALUE = "v1"', 'VALUE = "v2"'))
    shared = tree.run()
    assert shared.ran() == {"up", "down", "combine"}, shared.stdout
    assert "v2" in (tree.artifacts / "down").joinpath(
        sorted((tree.artifacts / "down").iterdir(), key=lambda p: p.stat().st_mtime)[-1].name, "down.txt").read_text()

    other = copy_tree("tree", tmp_path / "elsewhere" / "checkout2", tree.artifacts, tree.envs)
    for rel in ("impls/up/bench.py", "shared_fx/fxharness/__init__.py"):
        (other.root / rel).write_text((tree.root / rel).read_text())
    second_checkout = other.run()
    assert second_checkout.returncode == 0 and second_checkout.ran() == set(), second_checkout.stdout


def test_failing_impl_is_reported_not_cached_and_others_finish(tree):
    tree.add_impl("broken", 'import sys\nprint("about to fail", file=sys.stderr)\nsys.exit(3)\n')
    out = tree.run(extra=["--no-combine"])
    assert out.returncode == 1
    assert out.states()["broken"] == "failed"
    assert out.states()["plain"] == "ok"
    assert "about to fail" in out.stdout and "exit status 3" in out.stdout
    assert not (tree.artifacts / "broken").exists()
    again = tree.run(extra=["--no-combine"])
    assert again.ran() == {"broken"} and again.returncode == 1


def test_skip_exit_status_is_recorded_as_skipped(tree):
    tree.add_impl("cannot", 'import os, sys\nopen(os.path.join(os.environ["ORCH_OUT"], "skipped.txt"), "w").write("no widget here\\n")\nsys.exit(77)\n')
    out = tree.run("cannot", extra=["--no-combine"])
    assert out.returncode == 0, out.stdout
    assert out.states()["cannot"] == "skipped"
    manifest = json.loads((entry_of(tree.artifacts, "cannot") / "manifest.json").read_text())
    assert manifest["status"] == "skipped" and manifest["reason"] == "no widget here"


def test_reproduce_command_recreates_the_same_outputs(tree):
    assert tree.run("down", extra=["--no-combine"]).returncode == 0
    out = tree.cli("reproduce", "down")
    assert out.returncode == 0, out.stderr
    command = out.stdout.strip().splitlines()[-1]
    shell = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd="/")
    assert shell.returncode == 0, shell.stderr
    folder = Path(shell.stdout.strip().splitlines()[-1].removeprefix("reproduced into "))
    committed = entry_of(tree.artifacts, "down")
    assert sorted(p.name for p in folder.iterdir()) == ["down.txt"]
    assert (folder / "down.txt").read_text() == (committed / "down.txt").read_text()


def test_combine_merges_records_into_csv(tree):
    out = tree.run()
    assert out.returncode == 0, out.stdout + out.stderr
    csv_text = (tree.artifacts / "latest" / "latency.csv").read_text()
    assert csv_text.splitlines()[0].startswith("Implementation,Impl ID,Op,Mode,Workload")
    assert "plain,plain,attention,fwd,tiny" in csv_text





# A timed job (gpu = true: on a GPU-less machine it holds the machine's timing slot) that writes its own phases.json.
TIMED_WITH_PHASES = (
    "import json, os, time\n"
    "time.sleep(0.3)\n"
    "doc = {'format': 1, 'ready_s': 0.05, 'workloads': {'tiny': {'fwd': {'reps_s': 0.2}}}}\n"
    "json.dump(doc, open(os.path.join(os.environ['ORCH_OUT'], 'phases.json'), 'w'))\n"
)


def test_every_manifest_records_where_its_time_went_outside_the_key(tree):
    import time

    tree.add_impl("timed", TIMED_WITH_PHASES, settings="gpu = true")
    t0 = time.time()
    out = tree.run("six_old", "timed", extra=["--no-combine"], env={"ORCH_FORCE_CPU": "1"})
    wall = time.time() - t0
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("six_old", "timed"):
        m = json.loads((entry_of(tree.artifacts, name) / "manifest.json").read_text())
        ph = m["phases"]
        assert all(isinstance(ph[k], float) and ph[k] >= 0 for k in ("env_s", "wait_s", "run_s")), ph
        assert ph["env_s"] + ph["wait_s"] + ph["run_s"] <= wall, (ph, wall)
        assert abs(ph["run_s"] - (m["finished"] - m["started"])) < 1e-6
    six, timed = (json.loads((entry_of(tree.artifacts, n) / "manifest.json").read_text()) for n in ("six_old", "timed"))
    assert six["phases"]["start_s"] is None and "harness" not in six["phases"]  # no harness, nothing more known
    assert timed["phases"]["start_s"] == 0.05 and timed["phases"]["start_s"] <= timed["phases"]["run_s"]
    assert timed["phases"]["harness"]["workloads"] == {"tiny": {"fwd": {"reps_s": 0.2}}}
    assert "phases.json" in timed["files"]  # an output like any other: listed with its sha, the entry verifies
    assert orch("verify", "--artifacts", tree.artifacts).returncode == 0
    again = tree.run("six_old", "timed", extra=["--no-combine"], env={"ORCH_FORCE_CPU": "1"})
    assert again.returncode == 0 and again.ran() == set(), again.stdout  # phases never enter a key
    show = orch("show", "timed", *tree.args(), env={"ORCH_FORCE_CPU": "1"})
    assert show.returncode == 0 and '"phases": {' in show.stdout and '"wait_s":' in show.stdout, show.stdout


def test_jobs_inherit_the_parent_environment(tree):
    tree.add_impl("envdump", DUMP_ENV)
    out = tree.run("envdump", extra=["--no-combine"], env=NVLS_OFF)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((entry_of(tree.artifacts, "envdump") / "env.json").read_text()) == NVLS_OFF
