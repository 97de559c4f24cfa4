"""Shared helpers of the speed measurements in benchmarks/: venvs, a tree of trivial impls, a uvnote notebook,
whole-process timing, and the printed table + JSON of raw numbers.

Not a test module; imported by the scripts next to it (`python benchmarks/<name>.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE_PY = os.path.realpath(sys.executable)  # the interpreter itself, not a pyenv shim
VENVS = Path(tempfile.gettempdir()) / "orch-bench-venvs"
PYCACHE = VENVS / "pycache"  # PYTHONPYCACHEPREFIX of the measured processes
DROP = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "CONDA_PREFIX")

IMPL = """# /// script
# requires-python = ">=3.10"
# dependencies = []
#
# [tool.orchestrator]
# gpu = false
# ///
import json, os, pathlib
rec = {{"impl": "{name}", "status": "ok", "wl": {{"name": "x"}}, "lat_ms": {{"mean": 1.0}}}}
pathlib.Path(os.environ["ORCH_OUT"], "results.jsonl").write_text(json.dumps(rec) + "\\n")
"""
CELL = """```python id={cid}
import pathlib
pathlib.Path("out.txt").write_text("{cid}\\n")
```
"""
COMBINE_CELL = """```python id=combine needs={needs}
import os, pathlib
dirs = [os.environ[k] for k in os.environ["UVNOTE_INPUTS"].split(",")]
pathlib.Path("combined.txt").write_text("".join(pathlib.Path(d, "out.txt").read_text() for d in dirs))
```
"""


def parse_args(doc: str, **extra) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", type=Path, default=None,
                   help="folder for <name>.txt (the printed table) and <name>.json (raw numbers); default: a temp dir")
    p.add_argument("--fresh-venvs", action="store_true", help=f"rebuild the tool venvs under {VENVS}")
    for flag, (default, text) in extra.items():
        p.add_argument(f"--{flag.replace('_', '-')}", type=type(default), default=default, help=text)
    args = p.parse_args()
    args.out = (args.out or Path(tempfile.mkdtemp(prefix="orch-bench-out-"))).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def venv(name: str, pip_args: list[str], fresh: bool) -> Path:
    """A dedicated venv of the base interpreter (no pyenv shim, no base site-packages .pth files); returns its python."""
    root = VENVS / name
    marker = root / ".orch-bench-ok"
    if fresh or not marker.is_file() or marker.read_text() != json.dumps(pip_args):
        shutil.rmtree(root, ignore_errors=True)
        print(f"[setup] venv {root}: pip install {' '.join(pip_args)}", flush=True)
        sh([BASE_PY, "-m", "venv", root])
        sh([root / "bin" / "python", "-m", "pip", "install", "-q", *pip_args])
        marker.write_text(json.dumps(pip_args))
    return root / "bin" / "python"


def orch_venv(fresh: bool) -> Path:
    """The orchestrator's venv: its declared dependencies; the code itself is imported from the checkout (cwd=REPO).

    `pip install -e` would do the same but writes kernel_bench_orchestrator.egg-info into the checkout.
    """
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return venv("orchestrator", [d for d in deps if "python_version <" not in d], fresh)


def uvnote_venv(fresh: bool) -> Path:
    return venv("uvnote", ["uvnote==0.3.1"], fresh)


def tool_env(bindir: Path, bytecode: bool = True) -> dict[str, str]:
    """Parent environment for both tools: `bindir` (holding `uv`) first on PATH, no venv/pythonpath leaking in,
    UV_PYTHON set to the base interpreter (uvnote's `uv run` gets a temp HOME, under which pyenv shims break).

    This machine sets PYTHONDONTWRITEBYTECODE=1, so the checkout's modules would be compiled from source on every
    start (uvnote's got .pyc files from pip). bytecode=True drops it and sends every .pyc to PYCACHE, outside the
    checkout, as a normal install would have them; bytecode=False keeps the machine's setting."""
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["UV_PYTHON"] = BASE_PY
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def uv_bindir(root: Path, orch_py: Path, fake_log: Path | None = None) -> Path:
    """A folder holding only `uv`: the orchestrator venv's uv binary, or (fake_log) a wrapper recording every call."""
    real = orch_py.parent / "uv"
    d = root / ("fakeuv" if fake_log else "uvbin")
    d.mkdir(parents=True, exist_ok=True)
    target = d / "uv"
    if fake_log:
        target.write_text(f'#!/bin/sh\necho "uv $*" >> "{fake_log}"\nexec "{real}" "$@"\n')
        target.chmod(0o755)
    elif not target.exists():
        target.symlink_to(real)
    return d


def write_impls(root: Path, n: int = 12) -> tuple[Path, Path]:
    """`n` trivial impls (no dependencies, gpu = false) and a one-workload suite; returns (impls dir, suite)."""
    impls = root / "impls"
    for i in range(n):
        d = impls / f"impl_{i:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "bench.py").write_text(IMPL.format(name=d.name))
    suite = root / "suite.toml"
    suite.write_text('[[workload]]\nname = "x"\nbatch = 1\nseq_len = 8\nheads = 1\nhead_dim = 4\ndtype = "float32"\n')
    return impls, suite


def write_notebook(root: Path, n: int = 12) -> Path:
    """One uvnote notebook: `n` cells writing a file each, and a combine cell that needs all of them."""
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"c{i:02d}" for i in range(n)]
    text = "# bench\n\n" + "\n".join(CELL.format(cid=c) for c in ids) + "\n" + COMBINE_CELL.format(needs=",".join(ids))
    note = root / "note.md"
    note.write_text(text)
    return note


def orch_cmd(py: Path, impls: Path, artifacts: Path, envs: Path, suite: Path, *extra) -> list:
    return [py, "-m", "orchestrator", "run", "all", "--impls-dir", impls, "--artifacts", artifacts,
            "--envs-dir", envs, "--workloads", suite, *extra]


def uvnote_cmd(py: Path, verb: str = "build") -> list:
    return [py.parent / "uvnote", verb, "note.md", *(["-o", "site"] if verb == "build" else [])]


def timed(cmd, **kw) -> tuple[float, float, str]:
    """Whole-process wall time and CPU time (user + sys, children included) of one run, and its output;
    fails loudly on a non-zero exit. CPU time suffers less than wall time from other work on the machine. Output = stdout + stderr."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = sh(cmd, **kw)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), res.stdout + res.stderr


class Series:
    """Wall and CPU times of repeated runs of one thing."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, wall_cpu_out) -> str:
        self.wall.append(wall_cpu_out[0])
        self.cpu.append(wall_cpu_out[1])
        return wall_cpu_out[2]

    def stats(self) -> dict:
        return {"median": statistics.median(self.wall), "min": min(self.wall), "max": max(self.wall),
                "cpu_median": statistics.median(self.cpu), "n": len(self.wall), "wall": self.wall, "cpu": self.cpu}


def machine() -> dict:
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "orchestrator"], capture_output=True, text=True).stdout
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
            "platform": platform.platform(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "commit": head, "orchestrator_changes_uncommitted": dirty.splitlines()}


def table(rows: list[tuple[str, dict]], unit: float = 1e3, label: str = "ms") -> str:
    width = max(len(r[0]) for r in rows)
    lines = [f"{'what':<{width}}  {'median':>8}  {'min':>8}  {'max':>8}  {'cpu med':>8}   n   (wall {label}; cpu = user+sys)"]
    for name, s in rows:
        lines.append(f"{name:<{width}}  {s['median'] * unit:8.1f}  {s['min'] * unit:8.1f}  {s['max'] * unit:8.1f}  "
                     f"{s['cpu_median'] * unit:8.1f}  {s['n']:2d}")
    return "\n".join(lines)


def report(out: Path, name: str, text: str, data: dict) -> None:
    """Print the table, and write it and the raw numbers (JSON) into `out`."""
    m = machine()
    text += f"\n\ncommit {m['commit']} ({len(m['orchestrator_changes_uncommitted'])} uncommitted changes under orchestrator/), " \
            f"load average {m['load_avg'][0]:.2f} at the end, {m['cpus']} CPUs"
    print(text)
    (out / f"{name}.txt").write_text(text + "\n")
    (out / f"{name}.json").write_text(json.dumps({"machine": m, **data}, indent=1))
    print(f"\nraw numbers: {out / (name + '.json')}")
