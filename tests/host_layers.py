"""Host mode's test material: hand-written wheels, a base venv holding some of them, the CLI flags that use it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import make_wheel  # noqa: F401 - one wheel builder, re-exported for the host-mode tests


def make_base(path: Path, wheels: list[Path]) -> Path:
    """A base venv holding exactly the given wheels (installed offline with pip)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    py = path / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--target", str(next(path.glob("lib/python*/")) / "site-packages"), *map(str, wheels)], check=True)
    return py


def host_args(base: Path, house: Path) -> list:
    """The host-mode flags; the suite's own wheelhouse (UV_FIND_LINKS: the combine stage's matplotlib and Jinja2,
    which no test base holds) comes after the test's."""
    return ["--python", base, "--wheelhouse", house, "--wheelhouse", os.environ["UV_FIND_LINKS"], "--offline"]


WRITE_VERSIONS = """import os, json, basepkg, extrapkg, hidden_mod
open(os.path.join(os.environ["ORCH_OUT"], "seen.json"), "w").write(json.dumps(
    {"basepkg": basepkg.VERSION, "extrapkg": extrapkg.VERSION, "hidden": hidden_mod.WHERE}))
"""


def fake_uv(folder: Path, log: Path) -> Path:
    """A folder holding only `uv`: a wrapper that logs every call (one line of arguments) and runs the real uv.
    Put first on PATH, it shows whether a command ran uv at all (the orchestrator finds uv on PATH first)."""
    try:
        from uv import find_uv_bin

        real = find_uv_bin()
    except (ImportError, FileNotFoundError):
        real = shutil.which("uv")
    assert real, "uv is needed for the host-mode tests"
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "uv"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return folder


def uv_calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []
