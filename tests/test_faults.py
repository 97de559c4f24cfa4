"""Faults: every way a job can go wrong is reported, the rest finish, and nothing broken is ever cached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FAULTS, REPO, _alive




@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_reported_others_finish_nothing_cached(tree, fault):
    body, expected = FAULTS[fault]
    tree.add_impl("bad", body)
    out = tree.run(extra=["--no-combine"])
    assert out.returncode == 1, out.stdout
    states = out.states()
    assert states["bad"] == "failed" and states["plain"] == "ok" and states["down"] == "ok", states
    assert expected in out.stdout, out.stdout
    assert not (tree.artifacts / "bad").exists()
    assert (tree.artifacts / ".failed" / "bad" / "logs" / "stderr.log").is_file()


def test_hang_is_killed_with_its_process_group_at_timeout(tree, tmp_path):
    pidfile = tmp_path / "child.pid"
    tree.add_impl("hangs", (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    ), settings="gpu = false\ntimeout = 2")
    t0 = time.monotonic()
    out = tree.run("hangs", extra=["--no-combine"])
    assert time.monotonic() - t0 < 60
    assert out.returncode == 1 and "timed out after 2 s" in out.stdout, out.stdout
    assert not _alive(int(pidfile.read_text()))  # the grandchild died with the group
    assert not (tree.artifacts / "hangs").exists()





def _orch_proc(tree, *extra) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "all", *map(str, tree.args(*extra))],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_sigkill_mid_job_leaves_nothing_a_later_run_accepts(tree, tmp_path):
    started = tmp_path / "started"
    tree.add_impl("slow", (
        "import os, time\n"
        f"open({str(started)!r}, 'w').write('x')\n"
        "open(os.path.join(os.environ['ORCH_OUT'], 'partial.txt'), 'w').write('half')\n"
        "time.sleep(30)\n"
    ))
    proc = _orch_proc(tree, "--no-combine")
    deadline = time.monotonic() + 120
    while not started.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the orchestrator and the job it started
    proc.wait()
    assert not (tree.artifacts / "slow").exists()
    (tree.impls / "slow" / "bench.py").write_text((tree.impls / "slow" / "bench.py").read_text().replace("time.sleep(30)", "pass"))
    out = tree.run("slow", extra=["--no-combine"])
    assert out.returncode == 0 and out.ran() == {"slow"}, out.stdout


def test_two_runs_at_once_run_each_job_once_and_never_share_a_device(tree, tmp_path):
    log = tmp_path / "timeline.jsonl"
    for i in range(4):
        tree.add_impl(f"timed{i}", (
            "import json, os, time\n"
            "t0 = time.time(); time.sleep(0.3); t1 = time.time()\n"
            f"open({str(log)!r}, 'a').write(json.dumps({{'job': 'timed{i}', 'start': t0, 'end': t1}}) + '\\n')\n"
            "open(os.path.join(os.environ['ORCH_OUT'], 'done.txt'), 'w').write('ok')\n"
        ), settings="gpu = true")  # timed jobs: one at a time per device, across processes too
    a, b = _orch_proc(tree), _orch_proc(tree)
    out_a, out_b = a.communicate(timeout=600), b.communicate(timeout=600)
    assert a.returncode == 0 and b.returncode == 0, (out_a, out_b)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["job"] for r in rows) == [f"timed{i}" for i in range(4)]  # each exactly once
    spans = sorted((r["start"], r["end"]) for r in rows)
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:])), spans
    latest = os.path.realpath(tree.artifacts / "latest")
    assert Path(latest, "latency.csv").is_file()


def test_damaged_entry_is_detected_and_rerun(tree):
    assert tree.run("plain", extra=["--no-combine"]).returncode == 0
    entry = next((tree.artifacts / "plain").iterdir())
    (entry / "results.jsonl").write_text('{"tampered": true}\n')
    verify = _verify(tree)
    assert verify.returncode == 1 and "results.jsonl" in verify.stdout
    out = tree.run("plain", extra=["--no-combine"])
    assert out.ran() == {"plain"}, out.stdout
    assert "tampered" not in (entry / "results.jsonl").read_text()
    assert _verify(tree).returncode == 0


def _verify(tree):
    from conftest import orch

    return orch("verify", "--artifacts", tree.artifacts)


def test_clean_keeps_an_entry_another_process_is_reading(tree):
    from orchestrator.cache.store import Store

    assert tree.run("six_old", extra=["--no-combine"]).returncode == 0
    entry = next((tree.artifacts / "six_old").iterdir())
    (tree.impls / "six_old" / "bench.py").write_text((tree.impls / "six_old" / "bench.py").read_text() + "\n# edited\n")
    store = Store(tree.artifacts)
    with store.reading([("six_old", entry.name)]):
        out = tree.cli("clean")
        assert "in use by another process" in out.stdout and entry.is_dir()
    out = tree.cli("clean")
    assert not entry.exists(), out.stdout
