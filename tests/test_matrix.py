"""Version matrices in isolated envs: one impl against several versions of a package built here as wheels, each
variant with its own lock, env, key and report name; an unresolvable version is a skipped variant; offline."""

from __future__ import annotations

import csv
import json
import os

import pytest

from conftest import FIXTURES, Tree, make_wheel, orch

# A job that times slowpkg.work() itself (no torch: these envs hold only slowpkg) and writes one record.
TIMES_WORK = """import json, os, time, slowpkg
raw = []
for _ in range(15):
    t = time.perf_counter(); slowpkg.work(); raw.append((time.perf_counter() - t) * 1e3)
raw.sort()
rec = {"impl": os.environ["ORCH_IMPL"], "wl": {"name": "tiny"}, "status": "ok", "ok": True,
       "lat_ms": {"p50": raw[len(raw) // 2], "p10": raw[1], "p90": raw[-2], "raw": raw, "reps": len(raw)}}
out = os.environ["ORCH_OUT"]
open(os.path.join(out, "results.jsonl"), "w").write(json.dumps(rec) + "\\n")
open(os.path.join(out, "version.txt"), "w").write(slowpkg.__version__)
"""
VERSIONS = ("1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5", "1.0.6")


def slowpkg_source(version: str, slow_from: str = "1.0.4") -> str:
    """slowpkg.work() spins 1 ms, or 3 ms from `slow_from` on: the regression the tests look for."""
    from packaging.version import Version

    spin = 0.003 if Version(version) >= Version(slow_from) else 0.001
    return (f"__version__ = {version!r}\nimport time\n\n\ndef work():\n    t = time.perf_counter()\n"
            f"    while time.perf_counter() - t < {spin}:\n        pass\n")


def slowpkg_wheels(folder, versions=VERSIONS):
    folder.mkdir(parents=True, exist_ok=True)
    for v in versions:
        make_wheel(folder, "slowpkg", v, {"slowpkg/__init__.py": slowpkg_source(v)})
    return folder


@pytest.fixture
def matrix_tree(tmp_path, envs_dir):
    tree = Tree(tmp_path / "checkout", tmp_path / "artifacts", envs_dir)
    tree.impls.mkdir(parents=True)
    (tree.root / "suite.toml").write_text((FIXTURES / "tree" / "suite.toml").read_text())
    return tree, slowpkg_wheels(tmp_path / "wheelhouse")


def offline(house) -> list:
    return ["--offline", "--wheelhouse", house, "--wheelhouse", os.environ["UV_FIND_LINKS"]]  # + the report's wheels


def entry(tree: Tree, name: str):
    entries = [p for p in (tree.artifacts / name).iterdir() if p.is_dir()]
    assert len(entries) == 1, entries
    return entries[0]


def test_matrix_runs_each_version_in_its_own_env_and_skips_an_unresolvable_one(matrix_tree):
    tree, house = matrix_tree
    tree.add_impl("slow", TIMES_WORK, deps='["slowpkg>=1"]',
                  settings='gpu = false\nmatrix = { slowpkg = ["1.0.0", "1.0.4", "9.9.9"] }')
    out = tree.run("slow", extra=offline(house))
    assert out.returncode == 0, out.stdout + out.stderr
    names = ["slow@slowpkg=1.0.0", "slow@slowpkg=1.0.4", "slow@slowpkg=9.9.9"]
    assert {n: out.states()[n] for n in names} == {names[0]: "ok", names[1]: "ok", names[2]: "skipped"}
    assert "skipped slow@slowpkg=9.9.9: slowpkg 9.9.9 cannot be resolved here: " in out.stdout
    reason = next(line for line in out.stdout.splitlines() if line.startswith("  skipped slow@slowpkg=9.9.9"))
    assert "slowpkg==9.9.9" in reason, reason  # uv's own one-line reason
    for v in ("1.0.0", "1.0.4"):
        lock = tree.impls / "slow" / f"bench.slowpkg-{v}.lock.txt"
        assert f"slowpkg=={v} \\" in lock.read_text(), lock.read_text()
        e = entry(tree, f"slow@slowpkg={v}")
        assert (e / "version.txt").read_text() == v
        manifest = json.loads((e / "manifest.json").read_text())
        assert f"slowpkg=={v}" in manifest["packages"]
    assert not (tree.impls / "slow" / "bench.lock.txt").exists()  # the matrix replaces the plain impl
    keys = {json.loads((entry(tree, n) / "manifest.json").read_text())["key"] for n in names}
    assert len(keys) == 3
    rows = list(csv.DictReader((tree.artifacts / "latest" / "latency.csv").open()))
    by = {r["Implementation"]: r for r in rows}
    assert by["slow @ slowpkg 1.0.0"]["status"] == "ok" and by["slow @ slowpkg 1.0.4"]["status"] == "ok"
    assert by["slow @ slowpkg 9.9.9"]["status"] == "skipped"
    assert by["slow @ slowpkg 1.0.4"]["Impl ID"] == "slow@slowpkg=1.0.4"
    summary = (tree.artifacts / "latest" / "summary.txt").read_text()
    assert "slow @ slowpkg 1.0.0" in summary and "slow @ slowpkg 1.0.4" in summary

    compared = orch("compare", tree.artifacts / "latest", tree.artifacts / "latest")  # variants paired by label
    assert compared.returncode == 0 and "slow @ slowpkg 1.0.4" in compared.stdout, compared.stdout + compared.stderr
    assert "runs under" not in compared.stdout  # no variant was mistaken for another run of one impl

    again = tree.run("slow", extra=offline(house))
    assert again.returncode == 0 and again.ran() == set(), again.stdout  # every variant is cached
    one = tree.run("slow@slowpkg=1.0.4", extra=[*offline(house), "--no-combine", "--force"])
    assert one.returncode == 0 and one.ran() == {"slow@slowpkg=1.0.4"}, one.stdout


BACKEND_THAT_CANNOT_BUILD = """import os
def get_requires_for_build_wheel(config_settings=None):
    return []
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    os.makedirs(os.path.join(metadata_directory, "slowpkg-1.0.3.dist-info"))
    with open(os.path.join(metadata_directory, "slowpkg-1.0.3.dist-info", "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\\nName: slowpkg\\nVersion: 1.0.3\\n")
    return "slowpkg-1.0.3.dist-info"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("slowpkg 1.0.3 does not build here")
"""


def sdist_that_cannot_build(house):
    """slowpkg 1.0.3 as a source archive whose backend gives its metadata (so it resolves and locks) but fails to
    build the wheel (so its env cannot be made): a C extension whose compiler is missing, in miniature."""
    import io
    import tarfile

    files = {"pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
                               '\n[project]\nname = "slowpkg"\nversion = "1.0.3"\n',
             "PKG-INFO": "Metadata-Version: 2.1\nName: slowpkg\nVersion: 1.0.3\n", "backend.py": BACKEND_THAT_CANNOT_BUILD}
    (house / "slowpkg-1.0.3-py3-none-any.whl").unlink()
    with tarfile.open(house / "slowpkg-1.0.3.tar.gz", "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"slowpkg-1.0.3/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_a_version_that_resolves_but_does_not_install_is_a_skipped_variant(matrix_tree):
    """It resolves and its lock is written; its env cannot be built: skipped with uv's reason, not a failed run;
    the other variant runs."""
    tree, house = matrix_tree
    sdist_that_cannot_build(house)
    tree.add_impl("slow", TIMES_WORK, deps='["slowpkg>=1"]',
                  settings='gpu = false\nmatrix = { slowpkg = ["1.0.0", "1.0.3"] }')
    out = tree.run("slow", extra=[*offline(house), "--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.states()["slow@slowpkg=1.0.0"] == "ok" and out.states()["slow@slowpkg=1.0.3"] == "skipped", out.stdout
    assert "slowpkg==1.0.3" in (tree.impls / "slow" / "bench.slowpkg-1.0.3.lock.txt").read_text()  # it resolved
    reason = next(line for line in out.stdout.splitlines() if line.startswith("  skipped slow@slowpkg=1.0.3"))
    assert "slowpkg 1.0.3 cannot be installed here: " in reason and "does not build here" in reason, reason


def test_matrix_flag_makes_a_one_off_matrix_with_locks_of_its_own(matrix_tree):
    tree, house = matrix_tree
    tree.add_impl("slow", TIMES_WORK, deps='["slowpkg"]')
    out = tree.run("slow", extra=[*offline(house), "--no-combine", "--matrix", "slowpkg=1.0.1,1.0.5"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.ran() == {"slow@slowpkg=1.0.1", "slow@slowpkg=1.0.5"}, out.stdout
    assert (entry(tree, "slow@slowpkg=1.0.5") / "version.txt").read_text() == "1.0.5"
    plain = tree.run("slow", extra=[*offline(house), "--no-combine"])  # without the flag: the impl as it is
    assert plain.returncode == 0 and plain.ran() == {"slow"}, plain.stdout
    assert (entry(tree, "slow") / "version.txt").read_text() == "1.0.6"
    assert {p.name for p in (tree.impls / "slow").glob("*.lock.txt")} == {
        "bench.lock.txt", "bench.slowpkg-1.0.1.lock.txt", "bench.slowpkg-1.0.5.lock.txt"}


def test_a_downstream_impl_needs_every_variant(matrix_tree):
    tree, house = matrix_tree
    tree.add_impl("slow", TIMES_WORK, deps='["slowpkg"]', settings='gpu = false\nmatrix = { slowpkg = ["1.0.0", "1.0.2"] }')
    tree.add_impl("reader", "import json, os\nvs = sorted(k for k in os.environ if k.startswith('ORCH_ARTIFACTS_'))\n"
                  "open(os.path.join(os.environ['ORCH_OUT'], 'seen.json'), 'w').write(json.dumps(vs))\n",
                  settings='gpu = false\nneeds = ["slow"]')
    out = tree.run("reader", extra=[*offline(house), "--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.ran() == {"reader", "slow@slowpkg=1.0.0", "slow@slowpkg=1.0.2"}, out.stdout
    assert json.loads((entry(tree, "reader") / "seen.json").read_text()) == [
        "ORCH_ARTIFACTS_SLOW_SLOWPKG_1_0_0", "ORCH_ARTIFACTS_SLOW_SLOWPKG_1_0_2"]


@pytest.mark.parametrize(("settings", "flag", "message"), [
    ('matrix = ["1.0"]', None, "[tool.orchestrator] matrix: must be a table of one package"),
    ('matrix = { slowpkg = ["1.0"], other = ["2"] }', None, "[tool.orchestrator] matrix: must be a table of one package"),
    ('matrix = { slowpkg = [] }', None, "[tool.orchestrator] matrix: slowpkg: must be a non-empty list"),
    ('matrix = { slowpkg = ["one"] }', None, "[tool.orchestrator] matrix: slowpkg: 'one' is not a version"),
    ('matrix = { slowpkg = ["1.0", "1.0.0"] }', None, "version 1.0.0 is listed twice"),
    ("", "slowpkg", "--matrix slowpkg: expected PACKAGE=V1,V2"),
    ("", "slowpkg=1.0,x.y", "--matrix slowpkg=1.0,x.y: 'x.y' is not a version"),
    ("", "absentpkg=1.0", "--matrix absentpkg: no impl requires absentpkg"),
])
def test_bad_matrix_is_one_line_naming_the_field(matrix_tree, settings, flag, message):
    tree, house = matrix_tree
    script = tree.add_impl("slow", "raise SystemExit('must not run')\n", deps='["slowpkg"]',
                           settings="gpu = false\n" + settings)
    out = tree.run(extra=[*offline(house), *(["--matrix", flag] if flag else [])])
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    if not flag:
        assert str(script) in out.stderr
    assert not list((tree.impls / "slow").glob("*.lock.txt")) and not tree.artifacts.exists()


def test_a_matrixed_impl_name_in_show_asks_for_one_variant(matrix_tree):
    tree, house = matrix_tree
    tree.add_impl("slow", TIMES_WORK, deps='["slowpkg"]', settings='gpu = false\nmatrix = { slowpkg = ["1.0.0", "1.0.2"] }')
    out = tree.cli("show", "slow", *offline(house))
    assert out.returncode == 2
    assert "'slow' is a version matrix; name one of its variants: slow@slowpkg=1.0.0, slow@slowpkg=1.0.2" in out.stderr
    listed = tree.cli("list", *offline(house))
    assert listed.returncode == 0 and "slow@slowpkg=1.0.2" in listed.stdout, listed.stdout


def test_lock_writes_every_variants_lock_and_locked_refuses_a_missing_one(matrix_tree):
    tree, house = matrix_tree
    tree.add_impl("slow", TIMES_WORK, deps='["slowpkg"]', settings='gpu = false\nmatrix = { slowpkg = ["1.0.0", "1.0.2"] }')
    out = tree.cli("lock", *offline(house), "slow")
    assert out.returncode == 0, out.stdout + out.stderr
    locks = {v: tree.impls / "slow" / f"bench.slowpkg-{v}.lock.txt" for v in ("1.0.0", "1.0.2")}
    assert all(f"slowpkg=={v} \\" in lock.read_text() for v, lock in locks.items())
    assert "python -m orchestrator lock slow@slowpkg=1.0.2" in locks["1.0.2"].read_text()
    locks["1.0.2"].unlink()
    refused = tree.run("slow", extra=[*offline(house), "--locked", "--no-combine"])
    assert refused.returncode == 2 and str(locks["1.0.2"]) in refused.stderr, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1 and not locks["1.0.2"].exists()
    one = tree.cli("lock", *offline(house), "slow@slowpkg=1.0.2")
    assert one.returncode == 0 and locks["1.0.2"].exists(), one.stdout + one.stderr
