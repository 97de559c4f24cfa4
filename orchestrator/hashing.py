"""sha256 of files, byte strings, JSON values and source trees: the raw material of cache keys."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist", ".venv", ".nox"}
# Bytecode, and lock files: a job's lock is keyed on its own, and another process may be writing one right now.
SKIP_SUFFIXES = (".pyc", ".pyo", ".lock.txt")
SKIP_INFIX = ".lock.txt.tmp"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(value) -> str:
    """Hash of a JSON value in canonical form (sorted keys, no whitespace)."""
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def sha256_tree(root: Path) -> str:
    """Hash of every source file under root by relative path and bytes; caches and build output are left out."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        rel = os.path.relpath(dirpath, root)
        for fname in sorted(filenames):
            if fname.endswith(SKIP_SUFFIXES) or SKIP_INFIX in fname:
                continue
            h.update(f"{rel}/{fname}\0".encode())
            h.update(sha256_file(Path(dirpath, fname)).encode())
    return h.hexdigest()
