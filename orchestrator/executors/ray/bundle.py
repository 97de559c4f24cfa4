"""Folders as values that travel through Ray's object store: every file's bytes and sha256, safely re-created.

A Bundle keeps what a folder holds as it is, odd entries included (symbolic links, fifos), so that the receiving
side runs the same output checks as for a local job and reports them the same way; it never writes through a link
and never outside the destination folder. Imports nothing from Ray.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.cache.hashing import source_files
from orchestrator.errors import BuildError

MAX_BYTES = 1 << 30  # one job's outputs (or one upstream's artifacts) travelling at once


@dataclass(frozen=True)
class Bundle:
    """files: (relative path, bytes, sha256); links: (relative path, target); others: fifos, sockets, devices."""

    files: tuple[tuple[str, bytes, str], ...] = ()
    dirs: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    others: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(len(data) for _, data, _ in self.files)

    @classmethod
    def of(cls, folder: Path, source_tree: bool = False, limit: int = MAX_BYTES) -> Bundle:
        """Read a folder; source_tree leaves out what sha256_tree leaves out (caches, build output), links followed."""
        files, dirs, links, others, total = [], [], [], [], 0
        if source_tree:  # exactly the files sha256_tree hashes, so the worker computes the same key input
            for rel, path in source_files(folder):
                data = path.read_bytes()
                total += len(data)
                if total > limit:
                    raise BuildError(f"{folder}: more than {limit >> 20} MiB to send (the limit for one job)")
                files.append((os.path.normpath(rel), data, hashlib.sha256(data).hexdigest()))
            return cls(tuple(files))
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in sorted(dirnames + filenames):
                path = Path(dirpath, name)
                rel = path.relative_to(folder).as_posix()
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode):
                    links.append((rel, os.readlink(path)))
                elif path.is_dir():
                    dirs.append(rel)
                elif path.is_file():
                    data = path.read_bytes()
                    total += len(data)
                    if total > limit:
                        raise BuildError(f"{folder}: more than {limit >> 20} MiB to send (the limit for one job)")
                    files.append((rel, data, hashlib.sha256(data).hexdigest()))
                else:
                    others.append(rel)
        return cls(tuple(files), tuple(dirs), tuple(links), tuple(others))

    def write_to(self, dest: Path, limit: int = MAX_BYTES) -> None:
        """Re-create the folder under dest (which may exist); a bad path, size or checksum raises BuildError.

        Links and fifos are made last, so nothing is ever written through a link this bundle created.
        """
        if self.size > limit:
            raise BuildError(f"received {self.size >> 20} MiB for {dest.name}, over the {limit >> 20} MiB limit")
        try:
            self._write(dest)
        except OSError as exc:
            raise BuildError(f"received entries that cannot be re-created ({exc}); nothing was committed") from None

    def _write(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for rel in self.dirs:
            (dest / _safe(rel)).mkdir(parents=True, exist_ok=True)
        for rel, data, digest in self.files:
            if hashlib.sha256(data).hexdigest() != digest:
                raise BuildError(f"received file {rel} does not match its sha256 (damaged in transit)")
            path = dest / _safe(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for rel, target in self.links:
            path = dest / _safe(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, path)
        for rel in self.others:
            path = dest / _safe(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(path)  # stands for any special file: the output check rejects it the same way


def _safe(rel: str) -> str:
    """A relative path that stays inside its folder: no absolute paths, no `..`, no empty or NUL parts."""
    parts = PurePosixPath(rel).parts
    if not rel or "\0" in rel or rel.startswith("/") or not parts or any(p in ("..", ".", "") for p in parts):
        raise BuildError(f"received an unsafe path {rel!r}; nothing was committed")
    return os.path.join(*parts)
