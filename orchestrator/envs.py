"""Isolated per-job environments built by uv, content-addressed by what is installed in them."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from orchestrator.hashing import sha256_json
from orchestrator.proc import run_tool
from orchestrator.uvtool import Uv

ENV_FORMAT = 1
MARKER = "orch-env.json"


def default_envs_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(os.environ.get("ORCH_ENVS_DIR") or os.path.join(base, "orchestrator", "envs"))


@dataclass(frozen=True)
class Interpreter:
    """The Python an environment is made from; `identity` is what envs and keys depend on."""

    path: str
    version: str

    @classmethod
    def current(cls) -> "Interpreter":
        return cls(path=os.path.realpath(sys.executable), version=".".join(map(str, sys.version_info[:3])))

    @property
    def identity(self) -> dict:
        return {"path": self.path, "version": self.version}


@dataclass(frozen=True)
class Env:
    """A built environment: where it is, its python, and what uv installed in it."""

    root: Path
    env_id: str

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def packages(self) -> list[str]:
        try:
            return json.loads((self.root / MARKER).read_text())["packages"]
        except (OSError, ValueError, KeyError):
            return []


def env_id(pins: str, interp: Interpreter, layer: dict | None = None) -> str:
    """Content address: the exact pins, the interpreter and (host mode) the base it is layered over."""
    return sha256_json({"format": ENV_FORMAT, "pins": pins, "python": interp.identity, "layer": layer})[:24]


def env_for(pins: str, interp: Interpreter, envs_dir: Path, layer: dict | None = None) -> Env:
    eid = env_id(pins, interp, layer)
    return Env(root=envs_dir / eid, env_id=eid)


def is_built(env: Env) -> bool:
    return (env.root / MARKER).is_file()


def ensure_env(pins: str, interp: Interpreter, envs_dir: Path, uv: Uv, layer: dict | None = None, prepare=None) -> Env:
    """Return the built env for these pins, building it (atomically, once across processes) if needed.

    `prepare(tmp_root)` runs after the venv exists and before pins are installed (host mode layers the base there).
    """
    env = env_for(pins, interp, envs_dir, layer)
    if is_built(env):
        return env
    from filelock import FileLock

    (envs_dir / ".locks").mkdir(parents=True, exist_ok=True)
    with FileLock(str(envs_dir / ".locks" / f"{env.env_id}.lock")):
        if is_built(env):
            return env
        tmp = envs_dir / ".tmp" / f"{env.env_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            _build(tmp, pins, interp, uv, prepare)
            if env.root.exists():  # an unfinished leftover from a killed build
                shutil.rmtree(env.root)
            os.rename(tmp, env.root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return env


def _build(tmp: Path, pins: str, interp: Interpreter, uv: Uv, prepare) -> None:
    uenv = uv.env()
    run_tool([uv.exe, "venv", "--quiet", "--relocatable", "--no-project", "--python", interp.path, str(tmp)],
             cwd=tmp.parent, env=uenv, what="creating venv")
    if prepare:
        prepare(tmp)
    py = str(tmp / "bin" / "python")
    if pins.strip():
        lock = tmp / "orch-pins.txt"
        lock.write_text(pins)
        run_tool([uv.exe, "pip", "sync", "--quiet", "--python", py, "--require-hashes", *uv.source_args(), str(lock)],
                 cwd=tmp, env=uenv, what="installing pins")
        lock.unlink()
        frozen = run_tool([uv.exe, "pip", "freeze", "--python", py], cwd=tmp, env=uenv, what="listing packages")
    else:
        frozen = ""
    packages = sorted(line.strip() for line in frozen.splitlines() if line.strip())
    (tmp / MARKER).write_text(json.dumps({"format": ENV_FORMAT, "python": interp.identity, "packages": packages}, indent=1))


def pins_of(lock_text: str) -> str:
    """The lock's requirement lines without our header comments (what actually gets installed)."""
    return "".join(line for line in lock_text.splitlines(keepends=True) if not line.startswith("#"))

