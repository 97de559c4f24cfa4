"""Envs under hostile jobs: no job changes uv's cache, another env, or what the next job sharing its env imports;
a damaged env is rebuilt; `verify --envs` finds damage the stat check cannot see."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import FIXTURES, Tree, orch
from host_layers import make_wheel

ORIGINAL = "VALUE = 'original'\n"
READ = ("import json, os, tinypkg\n"
        "open(os.path.join(os.environ['ORCH_OUT'], 'seen.json'), 'w').write(json.dumps({'value': tinypkg.VALUE, 'file': tinypkg.__file__}))\n")


@pytest.fixture
def iso(tmp_path):
    """A checkout with its own envs folder, uv cache and a wheelhouse holding tinypkg 1.0 and otherpkg 1.0."""
    house = tmp_path / "wheelhouse"
    house.mkdir()
    make_wheel(house, "tinypkg", "1.0", {"tinypkg.py": ORIGINAL})
    make_wheel(house, "otherpkg", "1.0", {"otherpkg.py": "X = 1\n"})
    tree = Tree(tmp_path / "checkout", tmp_path / "artifacts", tmp_path / "envs")
    tree.impls.mkdir(parents=True)
    (tree.root / "suite.toml").write_text((FIXTURES / "tree" / "suite.toml").read_text())
    env = {"UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    return tree, ["--no-combine", "--wheelhouse", house, "--offline"], env, tmp_path


def envs_in(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def seen(tree: Tree, name: str) -> dict:
    return json.loads(next((tree.artifacts / name).glob("*/seen.json")).read_text())


def test_a_write_into_an_env_changes_neither_uv_cache_nor_an_env_built_afterwards(iso):
    tree, args, env, tmp_path = iso
    tree.add_impl("writer", "import tinypkg\nopen(tinypkg.__file__, 'w').write(\"VALUE = 'corrupted'\\n\")\n", deps='["tinypkg"]')
    out = tree.run("writer", extra=args, env=env)
    assert "writer" in out.states(), out.stdout + out.stderr  # it ran (and failed for changing its env: next test)
    cached = [p for p in (tmp_path / "uv-cache").rglob("tinypkg.py")]
    assert cached and all(p.read_text() == ORIGINAL for p in cached), [p.read_text() for p in cached]
    # Another env, in another envs folder, built afterwards from the same uv cache.
    other = Tree(tree.root, tmp_path / "artifacts2", tmp_path / "envs2")
    other.add_impl("reader", READ, deps='["tinypkg", "otherpkg"]')
    out = other.run("reader", extra=args, env=env)
    assert out.states() == {"reader": "ok"}, out.stdout + out.stderr
    assert seen(other, "reader")["value"] == "original"


def test_a_module_planted_in_a_shared_env_fails_its_job_and_the_next_job_does_not_see_it(iso):
    tree, args, env, _ = iso
    plant = ("import os, sysconfig\n"
             "open(os.path.join(sysconfig.get_paths()['purelib'], 'planted.py'), 'w').write('X = 1\\n')\n")
    probe = ("import importlib.util, json, os\n"
             "open(os.path.join(os.environ['ORCH_OUT'], 'seen.json'), 'w').write(json.dumps("
             "{'planted': importlib.util.find_spec('planted') is not None}))\n")
    tree.add_impl("planter", plant, deps='["tinypkg"]')
    tree.add_impl("victim", probe, deps='["tinypkg"]')
    assert (tree.impls / "planter" / "bench.py").exists()
    out = tree.run("planter", extra=args, env=env)
    assert out.states() == {"planter": "failed"}, out.stdout + out.stderr
    assert "changed its environment" in out.stdout and "added lib/python" in out.stdout and "planted.py" in out.stdout, out.stdout
    assert not (tree.artifacts / "planter").exists()
    out = tree.run("victim", extra=args, env=env)
    assert out.states() == {"victim": "ok"}, out.stdout + out.stderr
    assert (tree.impls / "planter" / "bench.lock.txt").read_text().split("\n", 2)[2] == \
        (tree.impls / "victim" / "bench.lock.txt").read_text().split("\n", 2)[2]  # one lock, so one env
    assert seen(tree, "victim") == {"planted": False}
    assert len(envs_in(tree.envs)) == 1


def test_a_broken_env_is_rebuilt_and_verify_envs_names_damage_stat_cannot_see(iso):
    tree, args, env, _ = iso
    tree.add_impl("user", READ, deps='["tinypkg"]')
    assert tree.run("user", extra=args, env=env).states() == {"user": "ok"}
    (root,) = envs_in(tree.envs)
    (root / "bin" / "python").unlink()  # a deleted interpreter
    out = tree.run("user", extra=[*args, "--force"], env=env)
    assert out.states() == {"user": "ok"}, out.stdout + out.stderr
    installed = root / Path(seen(tree, "user")["file"]).relative_to(root)
    installed.write_text("VALUE = 'edited!!'\n")  # an edited package file
    out = tree.run("user", extra=[*args, "--force"], env=env)
    assert out.states() == {"user": "ok"} and seen(tree, "user")["value"] == "original", out.stdout + out.stderr
    # Same size, same mtime: only the RECORD hashes can tell.
    st = installed.stat()
    installed.write_text("VALUE = 'ORIGINAL'\n")
    os.utime(installed, ns=(st.st_atime_ns, st.st_mtime_ns))
    out = orch("verify", "--envs", "--artifacts", tree.artifacts, "--envs-dir", tree.envs)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"damaged {root}" in out.stdout and "tinypkg.py" in out.stdout, out.stdout
    out = tree.run("user", extra=[*args, "--force"], env=env)  # what verify found damaged is rebuilt
    assert out.states() == {"user": "ok"} and seen(tree, "user")["value"] == "original", out.stdout + out.stderr
    installed.unlink()  # a missing package file: the cheap check sees it, the job gets a rebuilt env
    out = tree.run("user", extra=[*args, "--force"], env=env)
    assert out.states() == {"user": "ok"} and seen(tree, "user")["value"] == "original", out.stdout + out.stderr
    assert orch("verify", "--envs", "--artifacts", tree.artifacts, "--envs-dir", tree.envs).returncode == 0
