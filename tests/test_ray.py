"""`run --executor ray` on a real two-node Ray cluster on this machine: same keys, same checks, same faults handling.

The cluster (tests/ray_cluster.py) declares 2 GPUs per node, so GPU jobs are placed on a machine without any;
its workers get the orchestrator only through the executor's runtime_env, never from this checkout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FAULTS, GPU_SPAN, REPO, _alive, orch
from host_layers import WRITE_VERSIONS, host_args
from ray_cluster import start_cluster, stop_cluster

pytest.importorskip("ray")

RUNNING = re.compile(r"^… (\S+)\s+running\b", re.M)


def ray_run(tree, cluster, *names, extra=(), by_env=True):
    """Through the cluster: by RAY_ADDRESS (Ray's convention) or by --ray-address."""
    if by_env:
        return tree.run(*names, extra=["--executor", "ray", *extra], env={"RAY_ADDRESS": cluster.address})
    return tree.run(*names, extra=["--executor", "ray", "--ray-address", cluster.address, *extra])


def entries(artifacts: Path, name: str) -> list[Path]:
    return sorted(p for p in (artifacts / name).iterdir() if p.is_dir()) if (artifacts / name).is_dir() else []


def manifest(entry: Path) -> dict:
    return json.loads((entry / "manifest.json").read_text())


def verify(tree):
    return orch("verify", "--artifacts", tree.artifacts)


def test_fixture_suite_runs_once_on_the_cluster_and_lands_with_local_keys(tree, cluster_module):
    out = ray_run(tree, cluster_module)
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = {"six_old", "six_new", "up", "down", "plain", "combine"}
    assert out.ran() == jobs, out.stdout
    assert sorted(RUNNING.findall(out.stdout)) == sorted(jobs), out.stdout  # each started exactly once
    folders = {node.id: node.folder for node in cluster_module.nodes}
    for name in jobs:
        (entry,) = entries(tree.artifacts, name)
        runner = manifest(entry)["runner"]
        if name == "combine":  # the merge step reads committed entries in place: it stays on the driver
            assert runner["executor"] == "local"
        else:
            assert runner["executor"] == "ray" and runner["attempts"] == 1 and runner["node_id"] in folders
            assert runner["host"] and runner["gpus"] == []
            assert (folders[runner["node_id"]] / "envs" / runner["env_id"]).is_dir()  # built in that node's cache
    (six,) = entries(tree.artifacts, "six_old")
    assert (six / "version.txt").read_text() == "1.15.0" and "six==1.15.0" in manifest(six)["packages"]
    (down,) = entries(tree.artifacts, "down")
    assert (down / "down.txt").read_text() == "down saw up v1"  # through ORCH_ARTIFACTS_UP, on whichever node

    local = tree.run()
    assert local.returncode == 0 and local.ran() == set(), local.stdout  # same keys: a local run finds it all
    assert verify(tree).returncode == 0
    command = tree.cli("reproduce", "six_old").stdout  # builds the env here: the same content address
    assert f"/{manifest(six)['runner']['env_id']}/bin/python" in command


def test_matrix_variants_run_on_the_cluster_each_in_its_own_env_with_local_keys(tree, cluster_module):
    tree.add_impl("sixes", (
        "import os, six\n"
        "open(os.path.join(os.environ['ORCH_OUT'], 'seen.txt'), 'w').write(six.__version__ + ' ' + os.environ['ORCH_IMPL'])\n"
    ), deps='["six"]', settings='gpu = false\nmatrix = { six = ["1.15.0", "1.16.0"] }')
    out = ray_run(tree, cluster_module, "sixes", extra=["--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    names = {"sixes@six=1.15.0", "sixes@six=1.16.0"}
    assert out.ran() == names, out.stdout
    envs = set()
    for name in names:
        (entry,) = entries(tree.artifacts, name)
        version = name.rpartition("=")[2]
        assert (entry / "seen.txt").read_text() == f"{version} sixes"  # its pinned version, under the impl's name
        runner = manifest(entry)["runner"]
        assert runner["executor"] == "ray" and f"six=={version}" in manifest(entry)["packages"]
        envs.add(runner["env_id"])
    assert len(envs) == 2  # one env per variant
    local = tree.run("sixes", extra=["--no-combine"])
    assert local.returncode == 0 and local.ran() == set(), local.stdout  # the same keys as a local run's


def test_upstream_artifacts_travel_to_the_worker_not_through_a_shared_path(tree, cluster_module):
    tree.add_impl("reader", (
        "import json, os\n"
        "root = os.environ['ORCH_ARTIFACTS_UP']\n"
        "files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)\n"
        "text = open(os.path.join(root, 'up.txt')).read()\n"
        "json.dump({'root': root, 'files': files, 'text': text}, open(os.path.join(os.environ['ORCH_OUT'], 'seen.json'), 'w'))\n"
    ), settings='gpu = false\nneeds = ["up"]')
    out = ray_run(tree, cluster_module, "reader", extra=["--no-combine"], by_env=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (entry,) = entries(tree.artifacts, "reader")
    seen = json.loads((entry / "seen.json").read_text())
    assert seen["text"] == "up v1"
    assert {"up.txt", "manifest.json", "_logs/stdout.log"} <= set(seen["files"])
    assert not seen["root"].startswith(str(tree.artifacts))  # unpacked on the worker, not the driver's folder


def test_modules_beside_the_script_travel_with_it(tree, cluster_module):
    script = tree.add_impl("split", "import os, kernel\nopen(os.path.join(os.environ['ORCH_OUT'], 'k.txt'), 'w').write(kernel.NAME)\n")
    (script.parent / "kernel.py").write_text("NAME = 'from the sibling module'\n")
    out = ray_run(tree, cluster_module, "split", extra=["--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    (entry,) = entries(tree.artifacts, "split")
    assert (entry / "k.txt").read_text() == "from the sibling module"


def test_gpu_jobs_never_hold_the_same_declared_gpu_at_once(tree, cluster_module):
    for i in range(6):
        tree.add_impl(f"gpu{i}", GPU_SPAN, settings="gpu = true")
    names = [f"gpu{i}" for i in range(6)]
    out = ray_run(tree, cluster_module, *names, extra=["--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for name in names:
        (entry,) = entries(tree.artifacts, name)
        seen, runner = json.loads((entry / "span.json").read_text()), manifest(entry)["runner"]
        assert len(runner["gpus"]) == 1 and seen["cvd"] == runner["gpus"][0], (seen, runner)
        spans.setdefault((runner["node_id"], seen["cvd"]), []).append((seen["start"], seen["end"]))
    for slot, times in spans.items():
        times.sort()
        assert all(a[1] <= b[0] for a, b in zip(times, times[1:])), (slot, times)
    assert len(spans) >= 2, spans  # the six were spread over several declared GPUs
    timeline = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_timeline.py"), str(tree.artifacts)],
                              capture_output=True, text=True)
    assert timeline.returncode == 0 and "6 GPU jobs" in timeline.stdout, timeline.stdout + timeline.stderr


def test_host_mode_builds_the_same_layer_on_the_worker(host, cluster_module):
    tree, base, house, _ = host
    tree.add_impl("both", WRITE_VERSIONS, deps='["basepkg", "extrapkg", "pthpkg"]')
    out = ray_run(tree, cluster_module, "both", extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0, out.stdout + out.stderr
    (entry,) = entries(tree.artifacts, "both")
    assert json.loads((entry / "seen.json").read_text()) == {"basepkg": "1.0", "extrapkg": "2.0", "hidden": "via .pth"}
    m = manifest(entry)
    assert "basepkg==1.0 (base)" in m["packages"] and "extrapkg==2.0 (wheelhouse)" in m["packages"]
    again = tree.run("both", extra=["--no-combine", *host_args(base, house)])
    assert again.ran() == set(), again.stdout


def test_faults_on_a_worker_are_reported_like_local_ones_and_never_cached(tree, cluster_module, tmp_path):
    for fault, (body, _) in FAULTS.items():
        tree.add_impl(fault, body)
    pidfile = tmp_path / "child.pid"
    tree.add_impl("hangs", (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    ), settings="gpu = false\ntimeout = 2")
    out = ray_run(tree, cluster_module, *FAULTS, "hangs", "plain", extra=["--no-combine"])
    assert out.returncode == 1, out.stdout
    states = out.states()
    assert states["plain"] == "ok", states
    for fault, (_, expected) in FAULTS.items():
        assert states[fault] == "failed", (fault, states)
        assert expected in out.stdout, (fault, out.stdout)
        assert not (tree.artifacts / fault).exists()
        assert (tree.artifacts / ".failed" / fault / "logs" / "stderr.log").is_file()
    assert "kaboom in the kernel" in out.stdout  # the log tail, as for a local failure
    assert states["hangs"] == "failed" and "timed out after 2 s" in out.stdout
    assert not _alive(int(pidfile.read_text()))  # the worker killed the job's whole process group
    assert not (tree.artifacts / "hangs").exists()


def test_ctrl_c_cancels_outstanding_tasks_and_commits_nothing(tree, cluster_module, tmp_path):
    started = tmp_path / "started"
    tree.add_impl("slow", (
        "import os, time\n"
        f"open({str(started)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(120)\n"
    ))
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_ADDRESS=cluster_module.address)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "slow", "--no-combine", "--executor", "ray",
                             *map(str, tree.args())], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (started.exists() and started.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and time.monotonic() - t0 < 30
    assert not _alive(int(started.read_text()))  # ray.cancel reached the worker, which killed the job
    assert not entries(tree.artifacts, "slow")


def test_driver_killed_mid_job_leaves_no_job_running_and_nothing_committed(tree, cluster_module, tmp_path):
    started = tmp_path / "started"
    tree.add_impl("slow", f"import os, time\nopen({str(started)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n",
                  settings="gpu = true")
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_ADDRESS=cluster_module.address)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "slow", "--no-combine", "--executor", "ray",
                             *map(str, tree.args())], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (started.exists() and started.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not _alive(int(started.read_text()))  # Ray ends the dead driver's tasks; the job dies with its worker
    assert not entries(tree.artifacts, "slow")


def test_cached_run_never_imports_ray_even_with_the_ray_executor(tree, tmp_path):
    assert tree.run().returncode == 0
    fake = tmp_path / "fake" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('ray was imported by a fully cached run')\n")
    out = tree.run(extra=["--executor", "ray", "--ray-address", "127.0.0.1:1"],
                   env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{REPO}"})
    assert out.returncode == 0 and out.ran() == set(), out.stdout + out.stderr


def test_unreachable_cluster_is_a_one_line_error(tree):
    out = tree.run("plain", extra=["--no-combine", "--executor", "ray", "--ray-address", "127.0.0.1:1"])
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: --executor ray: no Ray cluster answers at 127.0.0.1:1")


def test_node_killed_mid_job_is_retried_or_failed_and_nothing_partial_is_committed(tree, tmp_path):
    cluster = start_cluster()
    try:
        marks = tmp_path / "marks"
        marks.mkdir()
        names = [f"slow{i}" for i in range(4)]
        for name in names:
            tree.add_impl(name, (
                "import os, time\n"
                f"open(os.path.join({str(marks)!r}, os.environ['ORCH_IMPL'] + '.' + str(os.getpid())), 'w').write('x')\n"
                "open(os.path.join(os.environ['ORCH_OUT'], 'partial.txt'), 'w').write('half')\n"
                "time.sleep(8)\n"
                "open(os.path.join(os.environ['ORCH_OUT'], 'done.txt'), 'w').write('ok')\n"
            ), settings="gpu = true")
        env = dict(os.environ, PYTHONPATH=str(REPO), RAY_ADDRESS=cluster.address)
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", *names, "--no-combine", "--executor", "ray",
                                 *map(str, tree.args())], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while len({p.name.split(".")[0] for p in marks.iterdir()}) < 4:  # 2 CPUs a node: two jobs on each
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        victim_pids = cluster.nodes[1].pids()
        jobs = {p.name.split(".")[0]: int(p.name.split(".")[1]) for p in marks.iterdir()}
        victims = {name for name, pid in jobs.items() if pid in victim_pids}
        assert victims, (jobs, victim_pids)
        cluster.kill(cluster.nodes[1])
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        stop_cluster(cluster)
    assert proc.returncode in (0, 1), stdout + stderr
    dead = cluster.nodes[1].id
    states = dict(re.findall(r"^\S (\S+)\s+(ok|failed)\b", stdout, re.M))
    for name in names:
        if states[name] == "failed":
            assert name in victims and "lost" in stdout, stdout
            continue
        (entry,) = entries(tree.artifacts, name)
        runner = manifest(entry)["runner"]
        assert (entry / "done.txt").read_text() == "ok"  # a complete run, never the killed one's partial folder
        if name in victims:
            assert runner["attempts"] == 2 and runner["node_id"] != dead
            assert runner["lost"].split()[0] in ("NodeDiedError", "WorkerCrashedError"), runner  # which is seen first
        else:
            assert runner["attempts"] == 1
    assert all(not _alive(jobs[v]) for v in victims)
    assert verify(tree).returncode == 0
    assert not any((tree.artifacts / ".staging").iterdir())


def test_workers_see_the_drivers_gpu_safety_variables(tree, cluster_module):
    """The cluster was started without them: they reach the job only if the driver forwards its own."""
    from conftest import DUMP_ENV, NVLS_OFF

    tree.add_impl("envdump", DUMP_ENV, settings="gpu = true")
    out = tree.run("envdump", extra=["--executor", "ray", "--no-combine"], env={"RAY_ADDRESS": cluster_module.address, **NVLS_OFF})
    assert out.returncode == 0, out.stdout + out.stderr
    (entry,) = entries(tree.artifacts, "envdump")
    assert json.loads((entry / "env.json").read_text()) == NVLS_OFF
    assert manifest(entry)["runner"]["node_id"]  # it ran on a worker, not in the driver
