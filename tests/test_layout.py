"""The layout keeps its seams: checked on the source itself (imports read with ast, nothing executed)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "orchestrator"


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def test_the_runner_and_scheduler_never_import_ray_code():
    """An executor prepares and runs a job; run/ does not know that one of them is Ray."""
    offenders = {p.name: sorted(m for m in imports(p) if m.startswith("orchestrator.executors.ray"))
                 for p in (PACKAGE / "run").glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_run_names_no_executor_and_never_asks_where_a_job_runs():
    """The scheduler asks the executor which local slot a job occupies (a CPU slot, a GPU, or none: it runs elsewhere)
    and waits on the env it readies, the same way for every job: no word of Ray, and no `remote` branch, anywhere
    in run/ (code, comments and docstrings)."""
    import re

    word = re.compile(r"\b(ray|remote)\b", re.I)
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in sorted((PACKAGE / "run").glob("*.py"))
            for n, line in enumerate(p.read_text().splitlines(), 1) if word.search(line)]
    assert not hits, hits


def test_the_ray_worker_takes_the_gpu_locks_from_their_own_module():
    used = imports(PACKAGE / "executors" / "ray" / "worker.py")
    assert "orchestrator.run.device_locks.device_lock_path" in used
    assert not any(m.startswith("orchestrator.run.scheduler") for m in used)


def test_no_code_asks_whether_the_run_is_in_host_mode():
    """Host mode is an env provider: no `<ctx>.base` tests anywhere in the package."""
    hits = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "base" and isinstance(node.value, (ast.Name, ast.Attribute)):
                hits.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not hits, hits


def test_no_test_file_imports_another():
    """Shared fixtures live in conftest.py, shared material in helper modules (no test_ prefix)."""
    bad = {p.name: sorted(m for m in imports(p) if m.split(".")[0].startswith("test_"))
           for p in (REPO / "tests").glob("test_*.py")}
    assert not {k: v for k, v in bad.items() if v}, bad
