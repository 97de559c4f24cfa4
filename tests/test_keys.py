"""Cache keys never serve a stale result: the interpreter, every importable source, the pins (not the lock's
bytes), requires-python and declared variables. Real CLI, real uv, real interpreters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, Outcome

PLAIN = (
    "import json, os\n"
    "record = {'impl': os.environ['ORCH_IMPL'], 'wl': {'name': 'tiny'}, 'lat_ms': {'p50': 1.0}, 'status': 'ok'}\n"
    "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write(json.dumps(record) + '\\n')\n"
)


def entries(tree, name: str) -> list[Path]:
    folder = tree.artifacts / name
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def manifest(tree, name: str) -> dict:
    newest = max(entries(tree, name), key=lambda p: (p / "manifest.json").stat().st_mtime)
    return json.loads((newest / "manifest.json").read_text())


def run(tree, uv_cache, *names, env=None, extra=()):
    return tree.run(*names, extra=["--no-combine", *extra], env={"UV_CACHE_DIR": str(uv_cache), **(env or {})})


# -- the interpreter ---------------------------------------------------------------------------------------------

def _pyenv(version: str) -> Path | None:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob(f"{version}.*/bin/python{version}")) if root.is_dir() else []
    exe = shutil.which(f"python{version}")
    return found[-1] if found else Path(exe) if exe else None


@pytest.fixture(scope="session")
def other_python(tmp_path_factory) -> Path:
    """A second real interpreter (another minor version than this one) in a venv with the orchestrator's
    dependencies from pip; uv itself comes from PATH. Made once per test session."""
    want = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    base = _pyenv(want)
    if base is None:
        pytest.skip(f"no python{want} on this machine for the two-interpreter test")
    venv = tmp_path_factory.mktemp(f"py{want}") / "venv"
    subprocess.run([str(base), "-m", "venv", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-cache-dir", "filelock", "packaging"]
                         + (["tomli"] if want == "3.10" else []), capture_output=True, text=True)
    if pip.returncode != 0:
        pytest.skip(f"cannot install the orchestrator's dependencies for python{want}: {pip.stderr.strip()[-200:]}")
    return py


def test_a_run_under_another_python_is_not_served_this_pythons_entry(tree, uv_cache, other_python):
    first = run(tree, uv_cache, "plain")
    assert first.returncode == 0 and first.ran() == {"plain"}, first.stdout + first.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO), "UV_CACHE_DIR": str(uv_cache), "PATH": os.environ["PATH"]}
    res = subprocess.run([str(other_python), "-m", "orchestrator", "run", "plain", "--no-combine", *tree.args()],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    other = Outcome(res.returncode, res.stdout, res.stderr)
    assert other.returncode == 0, other.stdout + other.stderr
    assert other.ran() == {"plain"}, other.stdout  # before: "cached", the first interpreter's entry served
    versions = sorted(json.loads((e / "manifest.json").read_text())["inputs"]["python"]["version"][:4]
                      for e in entries(tree, "plain"))
    assert versions == sorted([".".join(map(str, sys.version_info[:2])),
                               subprocess.check_output([str(other_python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], text=True).strip()])
    assert run(tree, uv_cache, "plain").ran() == set()  # each interpreter keeps its own entry


# -- every importable source ---------------------------------------------------------------------------------------

def _edit_reruns(tree, uv_cache, path: Path, names: set[str]):
    first = run(tree, uv_cache)
    assert first.returncode == 0, first.stdout + first.stderr
    assert run(tree, uv_cache).ran() == set()
    path.write_text(path.read_text() + "# edited\n")
    again = run(tree, uv_cache)
    assert again.returncode == 0 and again.ran() == names, again.stdout


def test_an_edit_under_a_symlinked_folder_in_an_impl_rekeys(tree, uv_cache):
    kernel = tree.root / "kernels_outside"
    kernel.mkdir()
    (kernel / "kern.py").write_text("SPEED = 1\n")
    (tree.impls / "plain" / "kern").symlink_to(kernel, target_is_directory=True)
    _edit_reruns(tree, uv_cache, kernel / "kern.py", {"plain"})  # before: nothing reran


def test_an_edit_under_a_symlinked_folder_in_shared_rekeys(tree, uv_cache):
    extra = tree.root / "extra_src"
    extra.mkdir()
    (extra / "helper.py").write_text("X = 1\n")
    (tree.root / "shared_fx" / "fxharness" / "linked").symlink_to(extra, target_is_directory=True)
    _edit_reruns(tree, uv_cache, extra / "helper.py", {"up", "down"})


def test_a_build_folder_holding_source_is_hashed(tree, uv_cache):
    build = tree.impls / "plain" / "build"
    build.mkdir()
    (build / "x.py").write_text("X = 1\n")
    _edit_reruns(tree, uv_cache, build / "x.py", {"plain"})  # before: build/ was left out of the tree hash


def test_a_symlink_cycle_does_not_hang_and_is_hashed_once(tree, uv_cache):
    (tree.impls / "plain" / "loop").symlink_to("..", target_is_directory=True)
    (tree.impls / "plain" / "self").symlink_to(".", target_is_directory=True)
    (tree.impls / "plain" / "gone").symlink_to("no-such-folder", target_is_directory=True)
    out = run(tree, uv_cache, "plain")
    assert out.returncode == 0 and out.ran() == {"plain"}, out.stdout + out.stderr


def test_the_readme_names_the_left_out_list():
    from orchestrator.cache.hashing import LEFT_OUT

    readme = (REPO / "README.md").read_text()
    assert "LEFT_OUT" in readme and all(f"`{p}`" in readme for p in LEFT_OUT)


# -- locks ---------------------------------------------------------------------------------------------------------

def _one_line_exit_2(out, lock: Path, requirement: str):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(lines) == 1 and str(lock) in lines[0] and requirement in lines[0], out.stderr
    assert out.ran() == set()


@pytest.mark.parametrize("locked", [False, True])
def test_a_pin_that_breaks_the_scripts_requirement_is_refused(tree, uv_cache, locked):
    lock = tree.impls / "six_old" / "bench.lock.txt"
    lock.write_text(lock.read_text().replace("six==1.15.0", "six==1.16.0"))
    out = run(tree, uv_cache, "six_old", extra=["--locked"] if locked else [])
    _one_line_exit_2(out, lock, "six==1.15.0")  # before: exit 1 from uv's hash check, after building
    assert not (tree.artifacts / "six_old").exists()


@pytest.mark.parametrize("locked", [False, True])
def test_a_pin_without_a_hash_is_refused(tree, uv_cache, locked):
    lock = tree.impls / "six_old" / "bench.lock.txt"
    text = lock.read_text()
    lock.write_text(text[:text.index("six==")] + "six==1.15.0\n")
    out = run(tree, uv_cache, "six_old", extra=["--locked"] if locked else [])
    _one_line_exit_2(out, lock, "six==1.15.0")
    assert "hash" in out.stderr


def test_a_lock_rewrite_that_changes_no_pin_keeps_the_cache(tree, uv_cache):
    assert run(tree, uv_cache, "plain").ran() == {"plain"}
    lock = tree.impls / "plain" / "bench.lock.txt"
    lines = lock.read_text().splitlines(keepends=True)
    lock.write_text("# a note a maintainer added\n" + lines[0].replace("Do not edit.", "Do not edit!") + "".join(lines[1:]))
    assert run(tree, uv_cache, "plain").ran() == set()  # before: the header edit re-keyed
    relock = tree.cli("lock", "plain", env={"UV_CACHE_DIR": str(uv_cache)})
    assert relock.returncode == 0, relock.stderr
    assert run(tree, uv_cache, "plain").ran() == set()


def test_reordered_pins_and_hashes_keep_the_key():
    from orchestrator.cache.keys import pins_sha256

    a = "# h\nb==1 \\\n    --hash=sha256:22 \\\n    --hash=sha256:11\na==2 ; python_version < '3.12' \\\n    --hash=sha256:33\n"
    b = "a==2 ; python_version < '3.12' --hash=sha256:33\n# other header\nb==1 --hash=sha256:11 --hash=sha256:22\n"
    assert pins_sha256(a) == pins_sha256(b)
    assert pins_sha256(a) != pins_sha256(a.replace("b==1", "b==1.1"))


# -- requires-python -----------------------------------------------------------------------------------------------

def test_requires_python_excluding_this_interpreter_is_a_preskip(tree, uv_cache):
    script = tree.add_impl("future", PLAIN)
    script.write_text(script.read_text().replace("# /// script\n", '# /// script\n# requires-python = ">=3.99"\n'))
    out = run(tree, uv_cache, "future")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.states()["future"] == "skipped", out.stdout  # before: it ran, and "ok" was cached
    m = manifest(tree, "future")
    assert m["status"] == "skipped" and m["runner"] == {"executor": "none"}  # never run, no env built
    assert "requires-python >=3.99" in m["reason"] and sys.version.split()[0] in m["reason"]


def test_requires_python_clauses_match_packaging():
    from packaging.specifiers import SpecifierSet

    from orchestrator.run.plan import python_allowed

    for spec in (">=3.10", "<3.12", ">=3.10,<3.12", "==3.11.*", "!=3.11.*", "~=3.10", "~=3.11.2", "<=3.11", ">3.11",
                 "==3.11", ">=3.10.0, <3.14", "===3.11.7", ">= 3.9 , != 3.12.1"):
        for v in ("3.10.13", "3.11.7", "3.12.1", "3.13.0"):
            assert python_allowed(spec, v) == SpecifierSet(spec).contains(v, prereleases=True), (spec, v)
    assert python_allowed("three", "3.11.7") is None and python_allowed(">=3.11.*", "3.11.7") is None


# -- variables -----------------------------------------------------------------------------------------------------

def test_declared_variables_enter_the_key(tree, uv_cache):
    tree.add_impl("knob", PLAIN, settings='gpu = false\nenv = ["ORCH_TEST_KNOB"]')
    os.environ.pop("ORCH_TEST_KNOB", None)
    first = run(tree, uv_cache, "knob", env={"ORCH_TEST_KNOB": "1"})
    assert first.returncode == 0 and first.ran() == {"knob"}, first.stdout + first.stderr
    assert run(tree, uv_cache, "knob", env={"ORCH_TEST_KNOB": "1"}).ran() == set()
    assert run(tree, uv_cache, "knob", env={"ORCH_TEST_KNOB": "2"}).ran() == {"knob"}
    assert run(tree, uv_cache, "knob").ran() == {"knob"}  # unset is a value too
    assert run(tree, uv_cache, "knob", env={"ORCH_TEST_KNOB": "1"}).ran() == set()
    assert {json.loads((e / "manifest.json").read_text())["inputs"]["variables"]["ORCH_TEST_KNOB"]
            for e in entries(tree, "knob")} == {"1", "2", None}


def test_a_bad_env_setting_is_one_line_exit_2(tree, uv_cache):
    script = tree.add_impl("badenv", PLAIN, settings='gpu = false\nenv = ["NOT-A-NAME"]')
    out = run(tree, uv_cache, "badenv")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert str(script) in out.stderr and "[tool.orchestrator] env" in out.stderr


def test_framework_variables_are_recorded_in_the_manifest(tree, uv_cache):
    env = {"TORCH_TEST_FLAG": "1", "CUDA_TEST_FLAG": "2", "OMP_NUM_THREADS": "3", "HF_TEST_FLAG": "4",
           "ORCH_TEST_UNRELATED": "5"}
    out = run(tree, uv_cache, "plain", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    recorded = manifest(tree, "plain")["variables"]  # before: no such field
    assert {k: recorded.get(k) for k in env} == {**{k: v for k, v in env.items() if k != "ORCH_TEST_UNRELATED"},
                                                 "ORCH_TEST_UNRELATED": None}


# -- the hashes themselves ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("smalls", "extra"), [(0, 0), (0, 1), (0, 4096), (1, 0), (1, 1), (3, 7)])
def test_small_and_large_inputs_hash_like_hashlib(tmp_path, smalls, extra):
    """Small data goes to the built-in sha256, large to OpenSSL's: the digests are hashlib's either way."""
    import hashlib

    from orchestrator.cache import hashing

    data = os.urandom(smalls * hashing.SMALL + extra)
    path = tmp_path / "f"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert hashing.sha256_bytes(data) == want
    assert hashing.sha256_file(path) == want
