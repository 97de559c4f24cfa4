"""Host mode: envs layered over a base interpreter, offline, with wheels from a local wheelhouse."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES, Tree


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = (),
               extras: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel, written by hand so the test needs no network."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Provides-Extra: {e}\n" for e in extras)
            + "".join(f"Requires-Dist: {r}\n" for r in requires))
    entries = {**files, f"{dist}.dist-info/METADATA": meta,
               f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in entries.items():
            data = text.encode()
            zf.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={digest},{len(data)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def make_base(path: Path, wheels: list[Path]) -> Path:
    """A base venv holding exactly the given wheels (installed offline with pip)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    py = path / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--target", str(next(path.glob("lib/python*/")) / "site-packages"), *map(str, wheels)], check=True)
    return py


@pytest.fixture
def host(tmp_path, envs_dir):
    """A base with basepkg 1.0, a wheelhouse with extrapkg 2.0 (needing basepkg) and a .pth-path package."""
    wheels = tmp_path / "base-wheels"
    wheels.mkdir()
    basepkg = make_wheel(wheels, "basepkg", "1.0", {"basepkg/__init__.py": "VERSION = '1.0'\n"})
    house = tmp_path / "wheelhouse"
    house.mkdir()
    make_wheel(house, "extrapkg", "2.0", {"extrapkg/__init__.py": "VERSION = '2.0'\n"},
               requires=("basepkg>=1", 'fastdep>=1; extra == "fast"'), extras=("fast",))
    make_wheel(house, "fastdep", "1.1", {"fastdep.py": "VERSION = '1.1'\n"})
    make_wheel(house, "pthpkg", "0.1", {"pthpkg.pth": "pthpkg_dir\n", "pthpkg_dir/hidden_mod.py": "WHERE = 'via .pth'\n"})
    base = make_base(tmp_path / "base", [basepkg])
    tree = Tree(tmp_path / "checkout", tmp_path / "artifacts", envs_dir)
    (tree.impls).mkdir(parents=True)
    (tree.root / "suite.toml").write_text((FIXTURES / "tree" / "suite.toml").read_text())
    return tree, base, house, tmp_path


def host_args(base: Path, house: Path) -> list:
    return ["--python", base, "--wheelhouse", house, "--offline"]


WRITE_VERSIONS = """import os, json, basepkg, extrapkg, hidden_mod
open(os.path.join(os.environ["ORCH_OUT"], "seen.json"), "w").write(json.dumps(
    {"basepkg": basepkg.VERSION, "extrapkg": extrapkg.VERSION, "hidden": hidden_mod.WHERE}))
"""


def test_layered_impl_runs_offline_and_sees_base_version(host):
    tree, base, house, _ = host
    tree.add_impl("both", WRITE_VERSIONS, deps='["basepkg", "extrapkg", "pthpkg"]')
    out = tree.run("both", extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0, out.stdout + out.stderr
    entry = next((tree.artifacts / "both").iterdir())
    assert json.loads((entry / "seen.json").read_text()) == {"basepkg": "1.0", "extrapkg": "2.0", "hidden": "via .pth"}
    manifest = json.loads((entry / "manifest.json").read_text())
    assert "basepkg==1.0 (base)" in manifest["packages"]
    assert "extrapkg==2.0 (wheelhouse)" in manifest["packages"]
    assert not (tree.impls / "both" / "bench.lock.txt").exists()  # host mode neither needs nor writes a lock


def test_requested_extras_bring_their_dependencies_into_the_layer(host):
    tree, base, house, _ = host
    tree.add_impl("extras", "import os, fastdep\nopen(os.path.join(os.environ['ORCH_OUT'], 'v.txt'), 'w').write(fastdep.VERSION)\n",
                  deps='["extrapkg[fast]==2.0"]')
    out = tree.run("extras", extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert (next((tree.artifacts / "extras").iterdir()) / "v.txt").read_text() == "1.1"


def test_conflicting_pin_is_not_run_and_names_both_versions(host):
    tree, base, house, _ = host
    tree.add_impl("wants_new", "raise SystemExit('must not run')\n", deps='["basepkg>=2"]')
    tree.add_impl("absent", "raise SystemExit('must not run')\n", deps='["nosuchpkg==3.1"]')
    tree.add_impl("fine", "print('ran')\n", deps='["basepkg"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.states() == {"wants_new": "skipped", "absent": "skipped", "fine": "ok"}
    assert "requirement basepkg>=2: base has basepkg 1.0" in out.stdout
    assert "requirement nosuchpkg==3.1: not in the base, and no matching wheel" in out.stdout
    assert "must not run" not in out.stdout


def test_another_base_misses_the_cache(host):
    tree, base, house, tmp_path = host
    tree.add_impl("both", WRITE_VERSIONS, deps='["basepkg", "extrapkg", "pthpkg"]')
    assert tree.run("both", extra=["--no-combine", *host_args(base, house)]).returncode == 0
    assert tree.run("both", extra=["--no-combine", *host_args(base, house)]).ran() == set()
    other_wheels = tmp_path / "other-wheels"
    other_wheels.mkdir()
    other = make_base(tmp_path / "base2", [
        make_wheel(other_wheels, "basepkg", "1.0", {"basepkg/__init__.py": "VERSION = '1.0'\n"}),
        make_wheel(other_wheels, "unrelated", "0.3", {"unrelated.py": ""}),
    ])
    out = tree.run("both", extra=["--no-combine", *host_args(other, house)])
    assert out.returncode == 0 and out.ran() == {"both"}, out.stdout


CHAIN_BODY = """import json, os
seen = {}
for mod in ("a", "b", "c"):
    try:
        seen[mod] = __import__(mod).WHO
    except ImportError:
        seen[mod] = None
open(os.path.join(os.environ["ORCH_OUT"], "seen.json"), "w").write(json.dumps(seen))
"""


def chain_wheels(house: Path) -> None:
    """a -> b[x] -> c (c's wheel is not there yet)."""
    make_wheel(house, "a", "1.0", {"a.py": "WHO = 'a'\n"}, requires=("b[x]>=1", "basepkg"))
    make_wheel(house, "b", "1.0", {"b.py": "WHO = 'b'\n"}, requires=('c>=1; extra == "x"',), extras=("x",))


def seen_of(tree, name: str) -> tuple[dict, dict]:
    entry = next(e for e in (tree.artifacts / name).iterdir() if (e / "seen.json").exists())
    return json.loads((entry / "seen.json").read_text()), json.loads((entry / "manifest.json").read_text())


def test_a_missing_transitive_package_skips_before_running_with_its_chain_and_its_wheel_makes_a_new_layer(host):
    tree, base, house, _ = host
    chain_wheels(house)
    tree.add_impl("needs_c", CHAIN_BODY, deps='["a"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0 and out.states() == {"needs_c": "skipped"}, out.stdout + out.stderr
    assert "c (needed by a -> b[x] -> c): not in the base and no wheel in the wheelhouse (offline)" in out.stdout, out.stdout
    (skipped,) = (tree.artifacts / "needs_c").iterdir()
    assert not (skipped / "seen.json").exists()  # it never ran

    make_wheel(house, "c", "1.0", {"c.py": "WHO = 'c'\n"})
    out = tree.run("needs_c", extra=["--no-combine", *host_args(base, house)])
    assert out.states() == {"needs_c": "ok"}, out.stdout + out.stderr
    seen, manifest = seen_of(tree, "needs_c")
    assert seen == {"a": "a", "b": "b", "c": "c"}
    assert {"a==1.0 (wheelhouse)", "b==1.0 (wheelhouse)", "c==1.0 (wheelhouse)"} <= set(manifest["packages"]), manifest["packages"]


def test_optional_lets_an_impl_run_without_a_package_its_requirements_name(host):
    tree, base, house, _ = host
    chain_wheels(house)
    tree.add_impl("without_c", CHAIN_BODY, settings='gpu = false\noptional = ["c"]', deps='["a"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0 and out.states() == {"without_c": "ok"}, out.stdout + out.stderr
    seen, without = seen_of(tree, "without_c")
    assert seen == {"a": "a", "b": "b", "c": None}
    assert "c (optional, left out)" in without["packages"] and "a==1.0 (wheelhouse)" in without["packages"]
    make_wheel(house, "c", "1.0", {"c.py": "WHO = 'c'\n"})  # the closure with c is another env
    tree.add_impl("with_c", CHAIN_BODY, deps='["a"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.states() == {"without_c": "ok", "with_c": "ok"}, out.stdout + out.stderr
    assert seen_of(tree, "with_c")[0]["c"] == "c"
    assert seen_of(tree, "with_c")[1]["runner"]["env_id"] != without["runner"]["env_id"]


def test_optional_must_be_a_list_of_package_names(host):
    tree, base, house, _ = host
    tree.add_impl("bad", "", settings='gpu = false\noptional = "c"')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 2 and "[tool.orchestrator] optional: must be a list of package names" in out.stderr, out.stderr


def test_a_transitive_conflict_with_the_base_skips_before_running(host):
    tree, base, house, _ = host
    make_wheel(house, "wantsnew", "1.0", {"wantsnew.py": ""}, requires=("basepkg>=2",))
    tree.add_impl("conflicted", "raise SystemExit('must not run')\n", deps='["wantsnew"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0 and out.states() == {"conflicted": "skipped"}, out.stdout + out.stderr
    assert "its requirements cannot be met over the base" in out.stdout and "basepkg>=2" in out.stdout, out.stdout
    assert "must not run" not in out.stdout


def test_a_jobs_host_layer_is_worked_out_once_per_run(host, monkeypatch):
    """Planning (its conflict check), locating the env and building it all need the layer: one resolution serves
    them all. Counted by the requirement parses it takes (one per direct requirement and resolution)."""
    import packaging.requirements

    from orchestrator.cli import build_parser
    from orchestrator.cli.common import load_jobs, make_context
    from orchestrator.executors.local import LocalExecutor
    from orchestrator.run.jobrun import JobRunner
    from orchestrator.run.plan import plan

    tree, base, house, _ = host
    tree.add_impl("needs_base", "print('ok')\n", deps='["basepkg>=1", "extrapkg"]')
    args = build_parser().parse_args(["run", "needs_base", *map(str, tree.args(*host_args(base, house)))])
    ctx = make_context(args)
    parses = []
    real = packaging.requirements.Requirement.__init__
    monkeypatch.setattr(packaging.requirements.Requirement, "__init__",
                        lambda self, text: (parses.append(text), real(self, text))[1])
    p = plan(ctx, load_jobs(ctx), ["needs_base"])["needs_base"]
    assert p.preskip is None
    runner = JobRunner(ctx, LocalExecutor())
    env = runner.build_env(p)
    assert runner.env_of(p) == env
    assert parses.count("basepkg>=1") == 1 and parses.count("extrapkg") == 1, parses
