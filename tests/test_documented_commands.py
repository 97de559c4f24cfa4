"""The documented ways in, run as a user runs them: nox, combine after a run, `run NAME` and latest/."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from conftest import REPO, repo_pythonpath


def nox(*args, env: dict, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": repo_pythonpath(), **env}, capture_output=True, text=True, timeout=600)


def test_nox_lists_a_session_per_impl_and_family_even_when_a_family_bears_an_impl_name():
    res = nox("-l", env={})
    assert res.returncode == 0, res.stdout + res.stderr
    for session in ("xformers", "torch_flash", "torch-sdpa", "hf-kernels", "tests"):
        assert f"- {session} " in res.stdout or f"* {session} " in res.stdout, (session, res.stdout)


def test_nox_runs_one_impl_session_on_a_fixture_tree(tree):
    env = {"ORCH_IMPLS_DIR": str(tree.impls)}
    listed = nox("-l", env=env)
    assert listed.returncode == 0 and "- plain " in listed.stdout, listed.stdout + listed.stderr
    res = nox("-s", "plain", "--", "--artifacts", str(tree.artifacts), "--envs-dir", str(tree.envs),
              "--workloads", str(tree.root / "suite.toml"), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tree.artifacts / "plain").is_dir() and (tree.artifacts / "latest" / "latency.csv").is_file()


def _impls_in_latest(tree) -> dict[str, str]:
    with open(tree.artifacts / "latest" / "latency.csv", encoding="utf-8") as f:
        return {row["Impl ID"]: row["status"] for row in csv.DictReader(f)}


def test_combine_works_when_it_has_work_to_do(tree):
    assert tree.run(extra=("--no-combine",)).returncode == 0
    first = tree.cli("combine")
    assert first.returncode == 0 and "internal error" not in first.stdout, first.stdout + first.stderr
    assert tree.cli("combine", "--force").returncode == 0
    base = tree.cli("combine", "--baseline", "plain")
    assert base.returncode == 0, base.stdout + base.stderr
    assert set(_impls_in_latest(tree)) >= {"plain", "up", "down"}


def test_run_one_name_keeps_every_impl_in_latest(tree):
    assert tree.run().returncode == 0
    script = tree.impls / "plain" / "bench.py"
    script.write_text(script.read_text() + "# edited\n")
    res = tree.run("plain")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.ran() == {"plain", "combine"}, res.states()
    statuses = _impls_in_latest(tree)
    assert {"plain", "up", "down", "six_old", "six_new"} <= set(statuses), statuses


def test_run_one_name_shows_uncached_others_as_not_run(tree):
    res = tree.run("plain")
    assert res.returncode == 0, res.stdout + res.stderr
    statuses = _impls_in_latest(tree)
    assert statuses["plain"] == "ok" and statuses["up"] == "missing", statuses


def test_a_suite_the_harness_rejects_is_exit_2_before_anything_runs(tree):
    bad = tree.root / "bad.toml"
    bad.write_text('[[workload]]\nname = "flux-L128"\nbatch = 1\nseq_len = 8\nheads = 1\nhead_dim = 4\ndtype = "float32"\n')
    res = orch_run_with_suite(tree, bad)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "bad.toml" in res.stderr and "workload[0].name" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tree.artifacts / "plain").exists()


def orch_run_with_suite(tree, suite):
    from conftest import orch

    return orch("run", "all", "--impls-dir", tree.impls, "--artifacts", tree.artifacts, "--envs-dir", tree.envs,
                "--workloads", suite)


def test_every_option_and_argument_of_every_command_has_help():
    import argparse

    from orchestrator.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.dest}" for name, p in sub.choices.items() for action in p._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []


ARGVS = [[], ["-h"], ["bogus"], ["-h", "run"], ["run"], ["run", "-h"], ["run", "all", "--bogus"], ["run", "all", "-j", "x"],
         ["run", "a", "b", "--no-com", "--work", "w", "--executor", "ray", "-j", "3"], ["run", "all", "--executor", "x"],
         ["list", "-h"], ["list", "--offline"], ["compare", "a"], ["compare", "a", "b", "--alpha", "0.1"],
         ["verify", "--envs", "x"], ["show", "x", "--python", "p"], ["reproduce"], ["combine", "--force"], ["lock"],
         ["lock", "a", "b"], ["clean", "--al"]]


def _parse(parser, argv) -> tuple:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result = vars(parser.parse_args(argv))
        except SystemExit as exc:
            result = exc.code
    return result, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", ARGVS, ids=" ".join)
def test_the_one_command_parser_reads_like_the_whole_one(argv, monkeypatch):
    """main() gives only the chosen command its arguments: values, help, usage and errors stay the same."""
    from orchestrator.cli import COMMANDS, SUBCOMMANDS, build_parser

    assert set(SUBCOMMANDS) == set(COMMANDS)
    monkeypatch.setenv("COLUMNS", "100")
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    assert _parse(build_parser(only), argv) == _parse(build_parser(), argv)


def test_a_typo_in_an_impl_name_suggests_the_nearest(tree):
    res = tree.run("plian")
    assert res.returncode == 2 and "did you mean plain?" in res.stderr, res.stderr


def test_an_empty_impls_folder_is_a_usage_error_not_success(tmp_path, tree):
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    from conftest import orch

    res = orch("run", "all", "--impls-dir", empty, "--artifacts", tree.artifacts, "--envs-dir", tree.envs,
               "--workloads", tree.root / "suite.toml")
    assert res.returncode == 2 and "no impls found" in res.stderr, res.stdout + res.stderr
    assert "notes: no bench.py" in res.stderr
    assert not (tree.artifacts / "combine").exists()


def test_a_job_that_writes_no_records_is_shown_as_such(tree):
    tree.add_impl("silent", "pass\n")
    res = tree.run("silent")
    assert res.returncode == 0
    assert any(line.startswith("✓ silent") and "no result records" in line for line in res.stdout.splitlines()), res.stdout
    assert "ok but wrote no result records: silent" in res.stdout


def test_list_has_a_header_and_human_ages_and_show_prints_results_once(tree):
    assert tree.run().returncode == 0
    listed = tree.cli("list")
    assert listed.stdout.splitlines()[0].split()[:3] == ["impl", "family", "status"], listed.stdout
    assert " h ago" not in listed.stdout and " s ago" in listed.stdout
    shown = orch_show(tree, "plain")
    assert shown.returncode == 0
    assert shown.stdout.count('"script_sha256"') == 1 and "results:" in shown.stdout
    assert "tiny" in shown.stdout.split("results:", 1)[1]


def orch_show(tree, name):
    from conftest import orch

    return orch("show", name, *tree.args())
