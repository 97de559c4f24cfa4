"""Hostile jobs: daemons, signals, writes into their own sources, reserved names and deep structures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, orch

DAEMON = """
import os, sys, time, glob
pidfile, artifacts = sys.argv[1], sys.argv[2]
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
open(pidfile, 'w').write(str(os.getpid()))
time.sleep(3)
for path in glob.glob(os.path.join(artifacts, 'daemon', '*', 'results.jsonl')):
    open(path, 'a').write('{"forged": true}\\n')
open(os.path.join(artifacts, 'planted.txt'), 'w').write('the daemon lived')
"""


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_for(path: Path, proc=None, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        assert proc is None or proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def _verify(tree):
    return orch("verify", "--artifacts", tree.artifacts)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="the daemon sweep reads /proc (Linux)")
def test_setsid_double_forked_daemon_dies_with_its_job(tree, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    daemon = tmp_path / "daemon.py"
    daemon.write_text(DAEMON)
    tree.add_impl("daemon", (
        "import json, os, subprocess, sys\n"
        f"subprocess.run([sys.executable, {str(daemon)!r}, {str(pidfile)!r}, {str(tree.artifacts)!r}], check=True)\n"
        f"while not os.path.exists({str(pidfile)!r}): pass\n"
        "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write(json.dumps({'impl': 'daemon'}) + '\\n')\n"
    ))
    out = tree.run("daemon", extra=["--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    pid = int(pidfile.read_text())
    assert not _alive(pid), "the daemon outlived its job"
    time.sleep(3.5)  # when it would have written into the committed entry
    assert not (tree.artifacts / "planted.txt").exists()
    verify = _verify(tree)
    assert verify.returncode == 0, verify.stdout


def _flock_free(path: Path) -> bool:
    import fcntl

    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_stop_signal_kills_every_job_tree_commits_nothing_and_frees_the_device_after(tree, tmp_path, sig):
    pids = tmp_path / "pids"
    tmpdir = tmp_path / "tmp"  # a private device-lock namespace (device_lock_path lives in the temp folder)
    tmpdir.mkdir()
    tree.add_impl("long", (
        "import os, signal, subprocess, sys, time\n"
        "stubborn = 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'\n"
        "child = subprocess.Popen([sys.executable, '-c', stubborn], start_new_session=True)\n"
        f"open({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        f"os.rename({str(pids)!r} + '.tmp', {str(pids)!r})\n"
        "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write('{}\\n')\n"
        "time.sleep(600)\n"
    ), settings="gpu = true")
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmpdir))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "long", *map(str, tree.args())], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    job_pids: list[int] = []
    try:
        _wait_for(pids, proc)
        job_pids = [int(x) for x in pids.read_text().split()]
        lock = tmpdir / "orchestrator-locks" / "device-host.lock"
        assert not _flock_free(lock)
        proc.send_signal(sig)
        deadline = time.monotonic() + 30
        while not _flock_free(lock):
            assert time.monotonic() < deadline, "the device lock was never released"
            time.sleep(0.01)
        alive = [p for p in job_pids if _alive(p)]  # the moment another run could take the device
        assert not alive, f"device lock released while job processes {alive} still ran"
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        for p in job_pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + sig, (proc.returncode, stdout, stderr)
    assert f"interrupted ({sig.name}): running jobs were killed; nothing partial was committed" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert not (tree.artifacts / "long").exists()
    staging = tree.artifacts / ".staging"
    assert not staging.exists() or not any(staging.iterdir()), list(staging.iterdir())


def test_job_writing_into_its_own_folder_fails_with_that_reason_every_time(tree):
    tree.add_impl("selfish", (
        "import os, time\nfrom pathlib import Path\n"
        "Path(__file__).with_name('bench_out.txt').write_text(str(time.time()))\n"
        "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write('{}\\n')\n"
    ))
    for _ in range(2):  # the second run must not be served, nor committed, under a key its own write changed
        out = tree.run("selfish", extra=["--no-combine"])
        assert out.returncode == 1, out.stdout
        assert "wrote into its own folder: bench_out.txt" in out.stdout, out.stdout
        assert not (tree.artifacts / "selfish").exists()


def test_job_writing_into_a_path_dependency_fails_with_that_reason(tree):
    tree.add_impl("vandal", (
        "import os\nfrom pathlib import Path\n"
        "import fxharness\n"
        "Path(fxharness.__file__).with_name('planted.py').write_text('X = 1\\n')\n"
        "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write('{}\\n')\n"
    ), deps='["fxharness"]\n#\n# [tool.uv.sources]\n# fxharness = { path = "../../shared_fx", editable = true }')
    out = tree.run("vandal", extra=["--no-combine"])
    assert out.returncode == 1, out.stdout
    assert "wrote into its path dependency fxharness" in out.stdout and "fxharness/planted.py" in out.stdout, out.stdout
    assert not (tree.artifacts / "vandal").exists()
