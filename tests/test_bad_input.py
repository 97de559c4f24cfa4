"""Bad input: one line naming the file and field, exit status 2, nothing run."""

from __future__ import annotations

import pytest

BAD_BLOCKS = {
    "bad_toml": ("# /// script\n# dependencies = [\n# ///\n", "invalid TOML"),
    "two_blocks": ("# /// script\n# dependencies = []\n# ///\n# /// script\n# dependencies = []\n# ///\n", "more than one"),
    "unclosed": ("# /// script\n# dependencies = []\nprint('x')\n", "not closed"),
    "unknown_key": ("# /// script\n# [tool.orchestrator]\n# gpus = 2\n# ///\n", "[tool.orchestrator] gpus: unknown key"),
    "bad_needs": ("# /// script\n# [tool.orchestrator]\n# needs = ['Up-Stream']\n# ///\n", "[tool.orchestrator] needs"),
    "bad_timeout": ("# /// script\n# [tool.orchestrator]\n# timeout = -1\n# ///\n", "[tool.orchestrator] timeout"),
}


@pytest.mark.parametrize("case", sorted(BAD_BLOCKS))
def test_malformed_metadata_is_one_line_exit_2_nothing_run(tree, case):
    text, expected = BAD_BLOCKS[case]
    folder = tree.impls / case
    folder.mkdir()
    (folder / "bench.py").write_text(text)
    out = tree.run()
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(folder / "bench.py") in lines[0], out.stderr
    assert not tree.artifacts.exists()


def test_needs_cycle_names_the_cycle(tree):
    tree.add_impl("ping", "", settings='needs = ["pong"]\ngpu = false')
    tree.add_impl("pong", "", settings='needs = ["ping"]\ngpu = false')
    out = tree.run()
    assert out.returncode == 2 and "cycle ping -> pong -> ping" in out.stderr, out.stderr


def test_unknown_upstream_lists_known_names(tree):
    tree.add_impl("lonely", "", settings='needs = ["ghost"]\ngpu = false')
    out = tree.run()
    assert out.returncode == 2 and "unknown impl 'ghost'" in out.stderr and "six_old" in out.stderr


def test_unknown_impl_and_workload(tree):
    out = tree.run("nope")
    assert out.returncode == 2 and "unknown impl 'nope'" in out.stderr
    out = orch_with_suite(tree, "no_such_suite")
    assert out.returncode == 2 and "unknown suite" in out.stderr


def orch_with_suite(tree, suite):
    from conftest import orch

    return orch("run", "all", "--impls-dir", tree.impls, "--artifacts", tree.artifacts, "--envs-dir", tree.envs, "--workloads", suite)


def test_invalid_workload_toml(tree):
    (tree.root / "suite.toml").write_text("[[workload]]\nname = 3\n")
    out = tree.run()
    assert out.returncode == 2 and "workload[0].name" in out.stderr and "suite.toml" in out.stderr


def test_uv_missing_from_path_is_exit_2(tree, tmp_path):
    import os
    import sys

    tree.add_impl("needs_uv", "", deps='["six==1.16.0"]')  # no lock yet: locking needs uv
    from conftest import REPO

    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python")
    shadow = tmp_path / "shadow" / "uv"  # hide the `uv` Python package too, as on a machine without it
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    out = tree.run(env={"PATH": str(bare), "PYTHONPATH": f"{shadow.parent}{os.pathsep}{REPO}"})
    assert out.returncode == 2 and "uv not found" in out.stderr, out.stderr + out.stdout


def test_list_and_show(tree):
    assert tree.run("plain", extra=["--no-combine"]).returncode == 0
    listing = tree.cli("list")
    assert listing.returncode == 0
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert "cached" in rows["plain"] and "never run" in rows["up"]
    shown = tree.cli("show", "plain")
    assert shown.returncode == 0 and '"script_sha256"' in shown.stdout and "manifest:" in shown.stdout


def test_output_cut_by_its_reader_ends_quietly(tree):
    """`list | head`, as a tired user types it: the reader leaves early (here `true`, which reads nothing, so every
    write finds the pipe closed); no traceback, and the shell's SIGPIPE status."""
    import os
    import subprocess
    import sys

    from conftest import repo_pythonpath

    shell = (f"{sys.executable} -m orchestrator list --impls-dir {tree.root / 'impls'} "
             f"--artifacts {tree.artifacts} | true; echo \"status=${{PIPESTATUS[0]}}\"")
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=tree.root,
                          env={**os.environ, "PYTHONPATH": repo_pythonpath()}, timeout=120)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.stdout.strip() == "status=141", done.stdout
