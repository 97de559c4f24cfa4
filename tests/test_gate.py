"""The pipelined start (orchestrator/run/gate.py with the harness's opbench.gate): a job takes its device lock only
when it asks, the wait does not count against its timeout, the lock is given back at `done` or with the process
tree, and a job that never asks never holds it. Real processes and real flock locks; the job side is the harness's
own module, run by a tiny script."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import REPO
from orchestrator.run.gate import Gate
from orchestrator.run.proc import run_captured

SHARED = REPO / "shared"


def job(tmp_path: Path, body: str) -> list[str]:
    """A job script that imports the harness's gate module (not the rest of opbench: no torch here)."""
    script = tmp_path / "job.py"
    script.write_text(
        "import importlib.util, json, os, sys, time\n"
        f"spec = importlib.util.spec_from_file_location('gate', {str(SHARED / 'opbench' / 'gate.py')!r})\n"
        "gate = importlib.util.module_from_spec(spec); spec.loader.exec_module(gate)\n"
        "log = lambda **kw: open(os.path.join(os.environ['ORCH_OUT'], 'log.jsonl'), 'a').write(json.dumps(kw) + '\\n')\n"
        + body)
    return [sys.executable, str(script)]


def launch(tmp_path: Path, cmd: list[str], gate: Gate | None, timeout: float | None = 30.0, name: str = "j"):
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "ORCH_OUT": str(out)}
    finished = run_captured(cmd, cwd=out, env=env, stdout=out / "stdout.log", stderr=out / "stderr.log",
                            timeout=timeout, gate=gate)
    lines = (out / "log.jsonl").read_text().splitlines() if (out / "log.jsonl").exists() else []
    return finished, [json.loads(x) for x in lines], (out / "stderr.log").read_text()


def holder(lock: Path, seconds: float) -> threading.Thread:
    """Another run holding the device's lock for `seconds` (filelock, as the scheduler and Ray workers take it)."""
    from filelock import FileLock

    started = threading.Event()

    def hold():
        with FileLock(str(lock)):
            started.set()
            time.sleep(seconds)

    t = threading.Thread(target=hold)
    t.start()
    started.wait()
    return t


def test_the_job_starts_before_the_lock_is_free_and_times_only_once_it_holds_it(tmp_path):
    lock = tmp_path / "device-0.lock"
    body = ("log(at='start', t=time.time()); waited = gate.acquire(); log(at='go', t=time.time(), waited=waited)\n"
            "time.sleep(0.3); gate.release(); log(at='done', t=time.time()); time.sleep(0.5)\n")
    other = holder(lock, 1.5)
    t_free = time.time() + 1.5
    g = Gate(str(lock))
    finished, log, err = launch(tmp_path, job(tmp_path, body), g)
    other.join()
    assert finished.returncode == 0, err
    start, go, done = log
    assert start["t"] < t_free - 0.5  # it started (imports, checks) while the other run held the GPU
    assert go["t"] >= t_free - 0.1 and go["waited"] > 1.0 and g.waited_s > 1.0
    assert g.held is not None and g.held[0] <= go["t"] and done["t"] - 0.05 <= g.held[1] < finished.finished - 0.3
    # released at `done`: the 0.5 s of exit after it were not held


def test_the_handout_is_asked_before_the_lock_and_reaches_the_job_with_its_gpu(tmp_path):
    """The variables handed with the GPU (the run's stored references) are made while another run may hold the
    device, so a handout that waits for them never holds the lock; they arrive in the job's environment at GO, and
    a handout that fails hands nothing rather than stopping the job."""
    from filelock import FileLock, Timeout

    lock = tmp_path / "device-0.lock"
    other = holder(lock, 1.0)
    asked = []

    def handout():
        try:
            with FileLock(str(lock), timeout=0):
                asked.append("free")
        except Timeout:
            asked.append("held elsewhere")  # asked while the other run still holds the device: not waiting on it
        return {"OPBENCH_REFERENCES": "/some/set#abc"}

    body = ("before = os.environ.get('OPBENCH_REFERENCES'); gate.acquire()\n"
            "log(before=before, after=os.environ.get('OPBENCH_REFERENCES')); gate.release()\n")
    finished, log, err = launch(tmp_path, job(tmp_path, body), Gate(str(lock), handout=handout))
    other.join()
    assert finished.returncode == 0 and asked == ["held elsewhere"], err
    assert log == [{"before": None, "after": "/some/set#abc"}]

    def broken():
        raise RuntimeError("no set")

    finished, log, err = launch(tmp_path, job(tmp_path, body), Gate(str(lock), handout=broken), name="b")
    assert finished.returncode == 0 and log == [{"before": None, "after": None}], err

    def slow():
        time.sleep(1.5)  # the set still being made: a wait for the GPU, not the job's own time
        return {}

    g = Gate(str(lock), handout=slow)
    finished, _, err = launch(tmp_path, job(tmp_path, body), g, timeout=1.0, name="s")
    assert finished.returncode == 0 and not finished.timed_out and g.waited_s > 1.4, err


def test_a_job_that_never_asks_never_holds_the_lock(tmp_path):
    from filelock import FileLock

    lock = tmp_path / "device-0.lock"
    g = Gate(str(lock))
    seen = []

    def grab_while_it_runs():
        time.sleep(0.3)
        with FileLock(str(lock), timeout=0.5):  # free all along
            seen.append(True)

    t = threading.Thread(target=grab_while_it_runs)
    t.start()
    finished, _, err = launch(tmp_path, job(tmp_path, "time.sleep(1.0); sys.exit(77)\n"), g)
    t.join()
    assert finished.returncode == 77 and seen == [True] and g.held is None and g.waited_s == 0.0, err


def test_a_job_that_exits_without_done_releases_with_its_tree(tmp_path):
    from filelock import FileLock

    lock = tmp_path / "device-0.lock"
    g = Gate(str(lock))
    finished, log, err = launch(tmp_path, job(tmp_path, "gate.acquire(); log(at='go'); os._exit(3)\n"), g)
    assert finished.returncode == 3 and log == [{"at": "go"}] and g.held is not None, err
    with FileLock(str(lock), timeout=0.5):
        pass


def test_the_wait_for_the_lock_does_not_count_against_the_timeout(tmp_path):
    lock = tmp_path / "device-0.lock"
    other = holder(lock, 2.0)
    g = Gate(str(lock))
    finished, log, err = launch(tmp_path, job(tmp_path, "gate.acquire(); time.sleep(0.5); log(at='end')\n"), g,
                                timeout=1.5)
    other.join()
    assert finished.returncode == 0 and not finished.timed_out and log == [{"at": "end"}], err
    assert g.waited_s > 1.5
    # its own work still has the timeout: 3 s of it after the lock is a timeout
    g2 = Gate(str(lock))
    finished, _, _ = launch(tmp_path, job(tmp_path, "gate.acquire(); time.sleep(3)\n"), g2, timeout=1.0, name="k")
    assert finished.timed_out and 0.9 < finished.duration < 3.0


def test_without_the_orchestrator_the_harness_gate_is_a_no_op_and_a_closed_one_ends_the_job(tmp_path):
    out = tmp_path / "alone"
    out.mkdir()
    cmd = job(tmp_path, "w = gate.acquire(); gate.release(); log(waited=w)\n")
    done = subprocess.run(cmd, env={"PATH": "/usr/bin:/bin", "ORCH_OUT": str(out)}, capture_output=True, text=True)
    assert done.returncode == 0 and json.loads((out / "log.jsonl").read_text()) == {"waited": 0.0}, done.stderr
    # the orchestrator's ends closed (it died): the job must not go on to time on a GPU nobody holds for it
    import os

    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.close(w2)  # nobody will ever answer
    done = subprocess.run(cmd, env={"PATH": "/usr/bin:/bin", "ORCH_OUT": str(out), "ORCH_GATE": f"{r2},{w1}"},
                          pass_fds=(r2, w1), capture_output=True, text=True)
    for fd in (r1, w1, r2):
        os.close(fd)
    assert done.returncode == 1 and "gate closed" in done.stderr, done.stderr
