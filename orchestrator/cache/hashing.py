"""sha256 of files, byte strings, JSON values and source trees: the raw material of cache keys."""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

try:  # CPython's own sha256: same digests as hashlib's, without loading OpenSSL (~3 ms at start-up)
    from _sha256 import sha256 as _small_sha256  # type: ignore[import-not-found]  # Python 3.11
except ImportError:  # pragma: no cover - 3.12 renamed it; any other build: hashlib's
    try:
        from _sha2 import sha256 as _small_sha256  # type: ignore[import-not-found,no-redef]
    except ImportError:
        from hashlib import sha256 as _small_sha256  # type: ignore[assignment]

# Data up to this size is hashed by the built-in sha256; more by OpenSSL's, which is about 6x faster on big inputs
# (64 MiB: 40 vs 240 ms here) but costs its import once. A warm run hashes only small files: it never loads it.
SMALL = 1 << 20

# Everything a tree hash leaves out, and nothing else (the README names this list): caches and tool state that no
# job imports, bytecode, and lock files (a job's lock is keyed on its own, normalised; another process may be
# writing one right now). A pattern ending in "/" matches folders, the others file names (fnmatch).
LEFT_OUT = (
    "__pycache__/", ".git/", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".venv/", ".nox/", "*.egg-info/",
    "*.pyc", "*.pyo", "*.lock.txt", "*.lock.txt.tmp*",
)
LEFT_OUT_DIRS = tuple(p[:-1] for p in LEFT_OUT if p.endswith("/"))
LEFT_OUT_FILES = tuple(p for p in LEFT_OUT if not p.endswith("/"))
# Older names, still read by executors/ray/bundle.py: folder names and file-name endings left out.
SKIP_DIRS = {p for p in LEFT_OUT_DIRS if "*" not in p}
SKIP_SUFFIXES = (".pyc", ".pyo", ".lock.txt")
SKIP_INFIX = ".lock.txt.tmp"


def _sha256(data: bytes = b""):
    """A sha256 object, from the implementation that suits `data`'s size (`.update` may add more later)."""
    if len(data) <= SMALL:
        return _small_sha256(data)
    import hashlib

    return hashlib.sha256(data)


def sha256_bytes(data: bytes) -> str:
    return _sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(SMALL + 1)  # a small file is read whole here
        h = _sha256(head)
        if len(head) > SMALL:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def sha256_json(value) -> str:
    """Hash of a JSON value in canonical form (sorted keys, no whitespace)."""
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def left_out(name: str, is_dir: bool) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in (LEFT_OUT_DIRS if is_dir else LEFT_OUT_FILES))


def source_files(root: Path):
    """(relative path, path) of every file a job could import under root, in a fixed order.

    Symbolic links are followed, to folders too (a kernel folder linked into an impl is source like any other);
    a folder already visited (a link cycle, or two links to one folder) is walked once, at its first path.
    """
    seen: set[tuple[int, int]] = set()
    st = os.stat(root)
    seen.add((st.st_dev, st.st_ino))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if left_out(d, True):
                continue
            try:
                st = os.stat(os.path.join(dirpath, d))
            except OSError:  # a dangling link to a folder: nothing to import there
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                keep.append(d)
        dirnames[:] = keep
        rel = os.path.relpath(dirpath, root)
        for fname in sorted(filenames):
            if not left_out(fname, False):
                yield f"{rel}/{fname}", Path(dirpath, fname)


def sha256_tree(root: Path) -> str:
    """Hash of every source file under root by relative path and bytes (LEFT_OUT is all it leaves out)."""
    h = _small_sha256()  # fed only names and digests
    for rel, path in source_files(root):
        h.update(f"{rel}\0".encode())
        try:
            h.update(sha256_file(path).encode())
        except FileNotFoundError:  # a dangling link: its target names what it would import once it exists
            h.update(f"dangling link to {os.readlink(path)}".encode())
    return h.hexdigest()
