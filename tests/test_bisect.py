"""One impl across versions of a package, measured by the harness on a CPU: a version matrix of three and a bisect
that finds the slow release among seven. slowpkg is built here as wheels (its work() spins 1 ms, 3 ms from 1.0.4
on), served from a wheelhouse, offline, layered over the CPU torch base (host mode)."""

from __future__ import annotations

import csv
import os
import re

import pytest

from conftest import REPO, Tree, make_wheel

VERSIONS = ("1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4", "1.0.5", "1.0.6")
SLOW_FROM = (1, 0, 4)
SUITE = """[suite]
op = "rms_norm"
description = "one tiny block: the impl's own spin dominates"

[[workload]]
name = "tiny"
batch = 1
seq_len = 8
hidden = 64
dtype = "float32"
"""


def slowpkg(version: str) -> str:
    spin = 0.003 if tuple(map(int, version.split("."))) >= SLOW_FROM else 0.001
    return (f"__version__ = {version!r}\nimport time\n\n\ndef work():\n    t = time.perf_counter()\n"
            f"    while time.perf_counter() - t < {spin}:\n        pass\n")


def bench(settings: str = "") -> str:
    """An rms_norm impl through the harness, calling slowpkg.work() on every call."""
    return (
        "# /// script\n# requires-python = \">=3.10\"\n# dependencies = [\"opbench-harness\", \"torch\", \"slowpkg\"]\n#\n"
        f"# [tool.uv.sources]\n# opbench-harness = {{ path = \"{REPO / 'shared'}\", editable = true }}\n#\n"
        "# [tool.orchestrator]\n# op = \"rms_norm\"\n# gpu = false\n"
        "# tags = { family = \"slowpkg\", backend = \"spin\", compile = \"none\" }\n" + "".join(f"# {s}\n" for s in settings.splitlines())
        + "# ///\nimport opbench, slowpkg\nfrom opbench.eager import rms_norm\n\n\n"
        "def fn(x, weight, eps):\n    slowpkg.work()\n    return rms_norm(x, weight, eps)\n\n\n"
        "raise SystemExit(opbench.run(fn, requires_cuda=False, time_cap_s=0.15, warmup_s=0.01))\n"
    )


@pytest.fixture
def versions_tree(tmp_path, envs_dir, torch_base):
    tree = Tree(tmp_path / "checkout", tmp_path / "artifacts", envs_dir)
    (tree.impls / "slow").mkdir(parents=True)
    (tree.root / "suite.toml").write_text(SUITE)
    house = tmp_path / "wheelhouse"
    house.mkdir()
    for v in VERSIONS:
        # 1.0.2 needs a package nobody has: it cannot be installed here, so bisect must test around it
        make_wheel(house, "slowpkg", v, {"slowpkg/__init__.py": slowpkg(v)},
                   requires=("nosuchdep>=1",) if v == "1.0.2" else ())
    flags = ["--python", torch_base, "--offline", "--wheelhouse", house, "--wheelhouse", os.environ["UV_FIND_LINKS"]]
    return tree, flags


CPU = {"ORCH_FORCE_CPU": "1"}


def test_matrix_of_three_versions_measures_each_and_names_it_in_the_report(versions_tree):
    tree, flags = versions_tree
    (tree.impls / "slow" / "bench.py").write_text(bench('matrix = { slowpkg = ["1.0.0", "1.0.4", "1.0.6"] }'))
    out = tree.run("slow", extra=flags, env=CPU)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert out.ran() >= {f"slow@slowpkg={v}" for v in ("1.0.0", "1.0.4", "1.0.6")}, out.stdout
    rows = {r["Implementation"]: r for r in csv.DictReader((tree.artifacts / "latest" / "latency.csv").open())}
    p50 = {v: float(rows[f"slow @ slowpkg {v}"]["P50 (ms)"]) for v in ("1.0.0", "1.0.4", "1.0.6")}
    assert p50["1.0.4"] > 2 * p50["1.0.0"] and p50["1.0.6"] > 2 * p50["1.0.0"], p50
    assert all(rows[f"slow @ slowpkg {v}"]["ok"] == "True" for v in p50), rows
    page = (tree.artifacts / "latest" / "report.html").read_text()
    assert "slow @ slowpkg 1.0.4" in page


def test_bisect_finds_the_slow_release_among_seven_and_reruns_nothing(versions_tree):
    tree, flags = versions_tree
    (tree.impls / "slow" / "bench.py").write_text(bench())
    first = tree.cli("bisect", "slow", "slowpkg", "1.0.0", "1.0.6", *flags, env=CPU)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert "7 versions: 1.0.0, 1.0.1, 1.0.2, 1.0.3, 1.0.4, 1.0.5, 1.0.6" in first.stdout
    assert "culprit: slowpkg 1.0.4 (the first version slower than 1.0.0 by more than 5%" in first.stdout
    assert "last good: 1.0.3" in first.stdout, first.stdout[-2000:]
    # 1.0.3 first (the middle); then 1.0.4 is slow; 1.0.2 was never needed
    assert first.ran() == {f"slow@slowpkg={v}" for v in ("1.0.0", "1.0.6", "1.0.3", "1.0.4")}, first.stdout
    table = first.stdout[first.stdout.index("version  role"):]
    assert re.search(r"^1\.0\.4 +probe +tiny +fwd +[\d.]+ +[\d.]+ +[\d.e+-]+ +SLOWER$", table, re.M), table
    assert re.search(r"^1\.0\.3 +probe +tiny +fwd .* (not significant|within 5%|same|faster)$", table, re.M), table

    again = tree.cli("bisect", "slow", "slowpkg", "1.0.0", "1.0.6", *flags, env=CPU)
    assert again.returncode == 0 and again.ran() == set(), again.stdout  # every step was an ordinary cached job
    assert set(again.states().values()) == {"cached"}
    assert "culprit: slowpkg 1.0.4" in again.stdout

    # around an untestable version: 1.0.2 cannot be installed (skipped), so 1.0.3 is tried instead
    narrow = tree.cli("bisect", "slow", "slowpkg", "1.0.1", "1.0.4", "--workload", "tiny", *flags, env=CPU)
    assert narrow.returncode == 0, narrow.stdout[-3000:] + narrow.stderr[-2000:]
    assert "slowpkg 1.0.2: skipped: " in narrow.stdout and "nosuchdep" in narrow.stdout, narrow.stdout
    assert "culprit: slowpkg 1.0.4" in narrow.stdout and "last good: 1.0.3" in narrow.stdout, narrow.stdout

    none = tree.cli("bisect", "slow", "slowpkg", "1.0.0", "1.0.3", *flags, env=CPU)
    assert none.returncode == 1, none.stdout[-3000:] + none.stderr
    assert "no regression between slowpkg 1.0.0 and 1.0.3" in none.stdout
    assert none.ran() == set()  # both ends were measured before


@pytest.mark.parametrize(("args", "message"), [
    (("slow", "slowpkg", "1.0.6", "1.0.0"), "bisect: GOOD 1.0.6 must be older than BAD 1.0.0"),
    (("slow", "slowpkg", "one", "1.0.6"), "bisect: GOOD 'one' is not a version"),
    (("slow", "slowpkg", "0.9", "1.0.6"), "bisect: GOOD slowpkg 0.9 is not a released version here"),
    (("slow", "slowpkg", "2.0", "3.0"), "slowpkg: no version from 2.0 to 3.0 can be resolved here"),
    (("slw", "slowpkg", "1.0.0", "1.0.6"), "unknown impl 'slw'; did you mean slow?"),
    (("slow", "slowpkg", "1.0.0", "1.0.6", "--threshold", "0"), "--threshold 0.0: must be a fraction above 0"),
])
def test_bisect_bad_input_is_one_line_and_exit_2(versions_tree, args, message):
    tree, flags = versions_tree
    (tree.impls / "slow" / "bench.py").write_text(bench())
    out = tree.cli("bisect", *args, *flags, env=CPU)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    assert not tree.artifacts.exists() or not (tree.artifacts / "slow@slowpkg=1.0.0").exists()
