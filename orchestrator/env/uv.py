"""Find uv and build the settings every uv call shares (where packages come from stays uv's configuration)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.frozen import dataclass


@dataclass(frozen=True)
class Uv:
    """The uv binary plus source options: extra wheel folders and whether the network may be used."""

    exe: str
    wheelhouses: tuple[Path, ...] = ()
    offline: bool = False

    def source_args(self) -> list[str]:
        args = [arg for wh in self.wheelhouses for arg in ("--find-links", str(wh))]
        if self.offline:
            args += ["--offline", "--no-index"]
        return args

    def install_args(self) -> list[str]:
        """For every install into an env: files are copied, never hardlinked, out of uv's cache, so a job writing
        into its env cannot change the cache or any other env (uv's `clone` falls back to hardlinks on ext4)."""
        return ["--link-mode", "copy"]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["UV_PYTHON_DOWNLOADS"] = "never"  # interpreters come from the machine, never from the network
        env.pop("VIRTUAL_ENV", None)
        return env


def find_uv(wheelhouses: tuple[Path, ...] = (), offline: bool = False) -> Uv:
    """uv from PATH, else the one the `uv` Python package ships; missing is a user error."""
    exe = shutil.which("uv")
    if exe is None:
        try:
            from uv import find_uv_bin

            exe = find_uv_bin()
        except (ImportError, FileNotFoundError):
            raise UserError("uv not found on PATH: install it with `pip install uv`") from None
    for wh in wheelhouses:
        if not wh.is_dir():
            raise UserError(f"--wheelhouse {wh}: not a folder")
    return Uv(exe=exe, wheelhouses=tuple(w.resolve() for w in wheelhouses), offline=offline)
