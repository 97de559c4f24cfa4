"""Isolated per-job environments built by uv, content-addressed by what is installed in them."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from orchestrator.cache.hashing import sha256_json
from orchestrator.env.check import TMP, after_job, discard, intact, record, sweep_tmp
from orchestrator.env.uv import Uv
from orchestrator.frozen import dataclass
from orchestrator.run.proc import run_tool

ENV_FORMAT = 2  # 2: files copied out of uv's cache (never hardlinked), stat snapshot
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
    def current(cls) -> Interpreter:
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


def ensure_env(pins: str, interp: Interpreter, envs_dir: Path, uv: Uv) -> Env:
    """The isolated env for these pins, built from the lock with hash checking."""
    return build_once(env_for(pins, interp, envs_dir), lambda tmp: _isolated(tmp, pins, interp, uv))


def build_once(env: Env, fill) -> Env:
    """Build `env` at most once across processes: `fill(tmp_root)` makes it in a temporary folder, then one rename.

    `fill` returns the installed package list recorded in the env's marker file. A built env that fails the cheap
    check (python gone, a file changed since the build) is discarded and rebuilt, so damage never sticks.
    """
    if is_built(env) and intact(env.root) is None:
        return env
    from filelock import FileLock

    envs_dir = env.root.parent
    (envs_dir / ".locks").mkdir(parents=True, exist_ok=True)
    with FileLock(str(envs_dir / ".locks" / f"{env.env_id}.lock")):
        if is_built(env) and intact(env.root) is None:
            return env
        sweep_tmp(envs_dir)  # folders of builds killed earlier (their pid is gone)
        discard(env.root)  # damaged, or an unfinished leftover
        tmp = envs_dir / TMP / f"{env.env_id}-{os.getpid()}-{os.urandom(4).hex()}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            packages = fill(tmp)
            (tmp / MARKER).write_text(json.dumps({"format": ENV_FORMAT, "packages": packages}, indent=1))
            record(tmp, env.root)
            os.rename(tmp, env.root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return env


def env_changed(env: Env) -> str | None:
    """After a job: what it changed in its env (which is then discarded, so the next job gets a fresh one)."""
    changed = after_job(env.root)
    if changed:
        discard(env.root)
    return changed


def create_venv(tmp: Path, python: str, uv: Uv) -> Path:
    """An empty relocatable venv (renamed into place after filling); returns its python."""
    run_tool([uv.exe, "venv", "--quiet", "--relocatable", "--no-project", "--python", python, str(tmp)],
             cwd=tmp.parent, env=uv.env(), what="creating venv")
    return tmp / "bin" / "python"


def freeze(py: Path, uv: Uv) -> list[str]:
    out = run_tool([uv.exe, "pip", "freeze", "--python", str(py)], env=uv.env(), what="listing packages")
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def _isolated(tmp: Path, pins: str, interp: Interpreter, uv: Uv) -> list[str]:
    py = create_venv(tmp, interp.path, uv)
    if not pins.strip():
        return []
    lock = tmp / "orch-pins.txt"
    lock.write_text(pins)
    run_tool([uv.exe, "pip", "sync", "--quiet", "--python", str(py), "--require-hashes", *uv.install_args(),
              *uv.source_args(), str(lock)],
             cwd=tmp, env=uv.env(), what="installing pins")
    lock.unlink()
    return freeze(py, uv)


class Isolated:
    """The default EnvProvider: one env per set of pins over this run's interpreter, built from the job's lock."""

    uses_locks = True
    base_python = None
    markers = None

    def interpreter(self, ctx) -> dict:
        return {"version": ctx.interp.version, "implementation": sys.implementation.name}

    def key_input(self, ctx) -> dict | None:
        return None

    def prepare(self, job, lock_text: str | None, ctx) -> None:
        """Nothing: the job's lock (written by the locking phase) is the record of what its env holds."""

    def conflict(self, job, lock_text: str | None, ctx) -> str | None:
        return None

    def env_for(self, job, lock_text: str | None, ctx) -> Env:
        return env_for(pins_of(lock_text or ""), ctx.interp, ctx.envs_dir)

    def ensure_env(self, job, lock_text: str | None, ctx) -> Env:
        return ensure_env(pins_of(lock_text or ""), ctx.interp, ctx.envs_dir, ctx.uv())


ISOLATED = Isolated()


def pins_of(lock_text: str) -> str:
    """The lock's requirement lines without our header comments (what actually gets installed)."""
    return "".join(line for line in lock_text.splitlines(keepends=True) if not line.startswith("#"))

