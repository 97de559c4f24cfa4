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

from conftest import REPO, orch, repo_pythonpath

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
    tmpdir = tmp_path / "tmp"  # a private device-lock namespace (ORCH_LOCK_DIR)
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
    # ORCH_FORCE_CPU: the job holds this machine's timing slot (device-host.lock) on a GPU machine too
    env = dict(os.environ, PYTHONPATH=repo_pythonpath(), TMPDIR=str(tmpdir), ORCH_LOCK_DIR=str(tmpdir / "orchestrator-locks"),
               ORCH_FORCE_CPU="1")
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


# -- reserved names and deep structures --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["latest", "combine"])
def test_reserved_impl_names_are_refused_in_one_line(tree, name):
    tree.add_impl(name, "pass\n")
    out = tree.run()
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and f"the name {name!r} is reserved" in out.stderr, out.stderr
    assert not (tree.artifacts / name).exists()


def test_dot_and_underscore_folders_are_skipped_with_a_warning(tree):
    for name in ("_hidden", ".dotted"):
        tree.add_impl(name, "raise SystemExit('must never run')\n")
    out = tree.run("plain", extra=["--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("_hidden", ".dotted"):
        assert f"warning: {tree.impls / name}: skipped" in out.stderr, out.stderr
        assert name not in out.stdout


@pytest.mark.parametrize("output", ["upstreams.json", "manifest.json", "manifest.json.tmp", "_logs"])
def test_outputs_named_like_the_stores_own_files_are_refused(tree, output):
    tree.add_impl("squatter", (
        "import os\n"
        f"open(os.path.join(os.environ['ORCH_OUT'], {output!r}), 'w').write('{{}}')\n"
        "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write('{}\\n')\n"
    ))
    out = tree.run("squatter", extra=["--no-combine"])
    assert out.returncode == 1, out.stdout
    assert f"output {output!r} uses a name the orchestrator reserves" in out.stdout, out.stdout
    assert not (tree.artifacts / "squatter").exists()


def test_a_needs_chain_of_thousands_of_levels_is_one_line(tmp_path, envs_dir):
    from conftest import Tree

    impls = tmp_path / "impls"
    for i in range(3000):
        folder = impls / f"n{i:04d}"
        folder.mkdir(parents=True)
        needs = f'["n{i + 1:04d}"]' if i < 2999 else "[]"  # n0000 comes first and needs all the rest
        (folder / "bench.py").write_text(f"# /// script\n# dependencies = []\n#\n# [tool.orchestrator]\n"
                                         f"# gpu = false\n# needs = {needs}\n# ///\n")
    (tmp_path / "suite.toml").write_text((REPO / "tests" / "fixtures" / "tree" / "suite.toml").read_text())
    tree = Tree(tmp_path, tmp_path / "artifacts", envs_dir)
    t0 = time.monotonic()
    for out in (tree.cli("list"), tree.run()):
        assert out.returncode == 2, (out.stdout[-500:], out.stderr[-2000:])
        assert out.stderr.count("\n") == 1 and "needs: a chain of 101 levels" in out.stderr, out.stderr[-2000:]
    assert time.monotonic() - t0 < 60
    assert not (tree.artifacts / ".staging").exists()


DEEP = (
    "import json, os\n"
    "fd = os.open(os.environ['ORCH_OUT'], os.O_RDONLY)\n"
    "for _ in range(5000):\n"
    "    os.mkdir('d', dir_fd=fd)\n"
    "    nfd = os.open('d', os.O_RDONLY, dir_fd=fd)\n"
    "    os.close(fd)\n"
    "    fd = nfd\n"
    "os.close(os.open('leaf.jsonl', os.O_WRONLY | os.O_CREAT, dir_fd=fd))\n"
    "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write(json.dumps({'impl': 'deep'}) + '\\n')\n"
)


@pytest.fixture
def removes_artifacts(tree):
    """Whatever happens, no 5000-deep tree is left for pytest's own (recursive) clean-up of its temp folders."""
    yield
    from orchestrator.cache.store import remove_tree

    remove_tree(tree.artifacts)


def test_an_output_tree_thousands_of_folders_deep_is_one_line_and_leaks_nothing(tree, removes_artifacts):
    tree.add_impl("deep", DEEP)
    for _ in range(2):  # the second failure replaces the first one's kept folder
        out = tree.run("deep", extra=["--no-combine"])
        assert out.returncode == 1, out.stdout + out.stderr
        assert "output tree deeper than 64 folders: d/d/d/" in out.stdout, out.stdout
        assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
        assert not (tree.artifacts / "deep").exists()
        assert not any((tree.artifacts / ".staging").iterdir())
    out = tree.cli("clean")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert not (tree.artifacts / ".failed" / "deep").exists()
