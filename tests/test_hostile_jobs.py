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
