"""The README as a contract: every `python -m orchestrator …` and `nox …` command in its code blocks runs as shown.

The commands run in README order in a scratch checkout whose impls are trivial stand-ins with the real impls'
names and settings (so `requires = ["cuda"]` skips as it does for real, families match, nothing downloads
torch); `results/` and `shared/` are the repository's own. Commands that need a GPU cluster are only parsed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, repo_pythonpath

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
PARSE_ONLY = ("--executor ray",)  # needs a Ray cluster with GPUs: checked by the parser only
NOT_RUN = ("python -m pytest", "nox -s tests")  # the suite itself
STANDIN = '''import os, platform
from opbench.record import Env, Record
from opbench.stats import summarize
from opbench.suite import load_suite

env = Env(device="cpu", sm=None, driver=None, cuda=None, torch=None, python=platform.python_version())
with open(os.path.join(os.environ["ORCH_OUT"], "results.jsonl"), "w") as f:
    for wl in load_suite(os.environ["ORCH_WORKLOADS"]).workloads:
        rec = Record(impl=os.environ["ORCH_IMPL"], wl=wl, status="ok", tags={}, env=env, ok=True,
                     lat_ms=summarize([1.0, 1.01, 0.99, 1.0], "host"))
        f.write(rec.to_line() + "\\n")
'''
HEADER = ("# /// script\n# dependencies = [\"opbench-harness\"]\n#\n# [tool.uv.sources]\n"
          "# opbench-harness = { path = \"../../shared\", editable = true }\n#\n# [tool.orchestrator]\n")


def readme_commands(text: str) -> list[str]:
    """Each orchestrator or nox command in the README's shell code blocks, in order (`a && b` gives a and b)."""
    found = []
    for lang, body in FENCE.findall(text):
        if lang not in ("bash", "sh", "shell", ""):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in (p.strip() for p in line.split("&&")):
                if part.startswith(("python -m orchestrator ", "nox ")):
                    found.append(part)
    return found


def test_the_readme_shows_the_documented_ways_in():
    cmds = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert any(c == "python -m orchestrator run all" for c in cmds), cmds
    assert any(c.startswith("nox -l") for c in cmds) and any(c.startswith("nox -s ") for c in cmds), cmds
    assert any(c.startswith("python -m orchestrator reproduce ") for c in cmds), cmds
    for cmd in cmds:
        assert "[" not in cmd and "..." not in cmd and "…" not in cmd, f"placeholder in a runnable command: {cmd}"


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A scratch checkout: stand-in impls with the real names and settings (writing real records through the
    harness), the real shared/ and results/."""
    sys.path.insert(0, str(REPO))
    from orchestrator.model.job import discover

    root = tmp_path / "checkout"
    for name, job in discover(REPO / "impls").items():
        settings = [f'op = "{job.op}"', f"gpu = {str(job.gpu).lower()}",
                    f"requires = {list(job.requires)!r}".replace("'", '"')]
        tags = ", ".join(f'{k} = "{v}"' for k, v in job.tags.items())
        block = "".join(f"# {s}\n" for s in [*settings, f"tags = {{ {tags} }}"])
        folder = root / "impls" / name
        folder.mkdir(parents=True)
        (folder / "bench.py").write_text(f"{HEADER}{block}# ///\n{STANDIN}")
    for shared in ("shared", "results"):
        (root / shared).symlink_to(REPO / shared)
    return root


def _argv(cmd: str, root: Path) -> list[str]:
    words = shlex.split(os.path.expandvars(cmd.replace('"$(which python3)"', sys.executable)))
    if words[0] == "nox":
        return [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), *words[1:]]
    return [sys.executable, *words[1:]]


def test_every_readme_command_runs_as_shown(checkout):
    env = {**os.environ, "PYTHONPATH": repo_pythonpath(), "ORCH_FORCE_CPU": "1", "ORCH_IMPLS_DIR": str(checkout / "impls")}
    ran = []
    for cmd in readme_commands((REPO / "README.md").read_text(encoding="utf-8")):
        if any(cmd.startswith(n) for n in NOT_RUN):
            continue
        if any(flag in cmd for flag in PARSE_ONLY):
            from orchestrator.cli import build_parser

            build_parser().parse_args(shlex.split(cmd)[3:])  # SystemExit here fails the test
            continue
        res = subprocess.run(_argv(cmd, checkout), cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
        ran.append(cmd)
        out = res.stdout + res.stderr
        assert "Traceback" not in out and "internal error" not in out, f"{cmd}\n{out[-3000:]}"
        if cmd.startswith("python -m orchestrator bisect "):
            # the stand-ins cannot run the real impl's CUDA kernels, nor is any release of its package offline here:
            # bisect refuses in one line (exit 2) before it runs anything; tests/test_bisect.py runs one for real
            assert res.returncode == 2 and re.search(r"cannot run here|can be resolved here", res.stderr), f"{cmd}\n{out}"
        elif cmd.startswith("python -m orchestrator compare "):
            # on a CPU the smoke suite shares no workload with the GPU results: exit 2 says exactly that
            assert res.returncode in (0, 1) or "in common" in res.stderr, f"{cmd}\n{out[-3000:]}"
        else:
            assert res.returncode == 0, f"{cmd} exited {res.returncode}\n{out[-3000:]}"
        if cmd.startswith("python -m orchestrator reproduce "):
            line = res.stdout.strip().splitlines()[-1]
            again = subprocess.run(["bash", "-c", line], cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
            assert again.returncode == 0 and "reproduced into" in again.stdout, line + again.stdout + again.stderr
    assert len(ran) >= 8, ran
