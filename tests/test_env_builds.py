"""Killed and interrupted env builds, with real uv building a real sdist whose build backend is slow."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, Tree, orch

BACKEND = '''import os, time, zipfile, base64, hashlib
META = "Metadata-Version: 2.1\\nName: slowpkg\\nVersion: 1.0\\n"
def get_requires_for_build_wheel(config_settings=None):
    return []
def prepare_metadata_for_build_wheel(directory, config_settings=None):
    os.makedirs(os.path.join(directory, "slowpkg-1.0.dist-info"))
    open(os.path.join(directory, "slowpkg-1.0.dist-info", "METADATA"), "w").write(META)
    return "slowpkg-1.0.dist-info"
def build_wheel(directory, config_settings=None, metadata_directory=None):
    open({pidfile!r}, "w").write(str(os.getpid()))
    if os.path.exists({slow!r}):
        time.sleep(120)
    name = "slowpkg-1.0-py3-none-any.whl"
    files = {{"slowpkg.py": "X = 1\\n", "slowpkg-1.0.dist-info/METADATA": META,
             "slowpkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: slow\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}}
    rec = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
            d = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            rec.append(f"{{arc}},sha256={{d}},{{len(text)}}")
        zf.writestr("slowpkg-1.0.dist-info/RECORD", "\\n".join(rec + ["slowpkg-1.0.dist-info/RECORD,,"]) + "\\n")
    return name
'''


def make_sdist(folder: Path, pidfile: Path, slow: Path) -> Path:
    """slowpkg-1.0.tar.gz with an in-tree build backend that sleeps while `slow` exists."""
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "slow_backend"\nbackend-path = ["."]\n'
                          '\n[project]\nname = "slowpkg"\nversion = "1.0"\n',
        "PKG-INFO": "Metadata-Version: 2.1\nName: slowpkg\nVersion: 1.0\n",
        "slow_backend.py": BACKEND.format(pidfile=str(pidfile), slow=str(slow)),
    }
    path = folder / "slowpkg-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"slowpkg-1.0/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def slow(tmp_path):
    house = tmp_path / "wheelhouse"
    house.mkdir()
    pidfile, flag = tmp_path / "backend.pid", tmp_path / "slow.flag"
    make_sdist(house, pidfile, flag)
    tree = Tree(tmp_path / "checkout", tmp_path / "artifacts", tmp_path / "envs")
    tree.impls.mkdir(parents=True)
    (tree.root / "suite.toml").write_text((FIXTURES / "tree" / "suite.toml").read_text())
    tree.add_impl("slow", "import slowpkg\n", deps='["slowpkg"]')
    env = {**os.environ, "PYTHONPATH": str(REPO), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    args = ["--no-combine", "--wheelhouse", house, "--offline"]
    assert tree.cli("lock", "slow", "--wheelhouse", house, "--offline", env=env).returncode == 0  # metadata only
    flag.write_text("")
    return tree, args, env, pidfile, flag


def start_build(tree: Tree, args, env, pidfile: Path) -> tuple[subprocess.Popen, int]:
    """The orchestrator, once uv runs the slow build backend; returns it and the backend's pid."""
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "slow", *map(str, tree.args(*args))],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "no build"
        time.sleep(0.05)
    time.sleep(0.2)
    return proc, int(pidfile.read_text())


def tmp_builds(tree: Tree) -> list[Path]:
    return sorted((tree.envs / ".tmp").glob("*")) if (tree.envs / ".tmp").is_dir() else []


def test_a_sigkilled_build_leaves_a_folder_that_clean_and_the_next_run_remove(slow):
    tree, args, env, pidfile, flag = slow
    for remover in ("clean", "run"):
        pidfile.unlink(missing_ok=True)
        flag.write_text("")
        proc, backend = start_build(tree, args, env, pidfile)
        assert len(tmp_builds(tree)) == 1
        proc.kill()
        proc.wait()
        os.kill(backend, signal.SIGKILL)  # the orphaned uv then fails on its own
        (left,) = tmp_builds(tree)
        assert str(proc.pid) in left.name
        if remover == "clean":
            out = tree.cli("clean", env=env)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "removed 1 unfinished env builds" in out.stdout, out.stdout
        else:
            flag.unlink()
            out = tree.run("slow", extra=args, env=env)
            assert out.states() == {"slow": "ok"}, out.stdout + out.stderr
        assert tmp_builds(tree) == [], remover


def test_sigint_during_a_build_stops_it_within_2_s(slow):
    tree, args, env, pidfile, _ = slow
    proc, backend = start_build(tree, args, env, pidfile)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)  # to the orchestrator alone, not its process group: it must stop uv itself
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
        if alive(backend):  # only when the test fails: leave no build running
            os.kill(backend, signal.SIGKILL)
    took = time.monotonic() - t0
    out = proc.stdout.read()
    assert took < 2.0, f"took {took:.1f} s\n{out}"
    assert proc.returncode == 130, out
    deadline = time.monotonic() + 2
    while alive(backend) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(backend), "the build backend uv started is still running"
    assert tmp_builds(tree) == []
    assert orch("verify", "--envs", "--artifacts", tree.artifacts, "--envs-dir", tree.envs).returncode == 0
