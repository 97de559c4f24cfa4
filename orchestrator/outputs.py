"""What a job left in its staging folder, checked before commit: plain files only, valid result lines, hashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator.hashing import sha256_file
from orchestrator.store import LOGS, RESERVED

MAX_BAD_LINES_SHOWN = 1


def check_outputs(out: Path, keep: set[str]) -> str | None:
    """None when the outputs may be committed, else one line saying why not.

    Outputs must be plain files inside the folder (no links, which could point outside; no devices or fifos),
    must not use names the orchestrator reserves, and every `*.jsonl` line must be a JSON object.
    """
    for name in os.listdir(out):
        if name in RESERVED and name not in keep:
            return f"output {name!r} uses a name the orchestrator reserves"
    for dirpath, dirnames, filenames in os.walk(out):
        for fname in dirnames + filenames:
            path = Path(dirpath, fname)
            rel = path.relative_to(out)
            if path.is_symlink():
                return f"output {rel} is a symbolic link; outputs must be plain files"
            if not (path.is_dir() or path.is_file()):
                return f"output {rel} is not a regular file"
            if fname.endswith(".jsonl") and path.is_file():
                problem = _bad_jsonl(path)
                if problem:
                    return f"output {rel}:{problem}"
    return None


def _bad_jsonl(path: Path) -> str | None:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                return f"{lineno}: not valid JSON"
            if not isinstance(value, dict):
                return f"{lineno}: not a JSON object"
    return None


def hash_outputs(out: Path, logs: Path) -> dict[str, str]:
    """sha256 of every output file and log, by path relative to the entry."""
    files = {}
    for dirpath, _, filenames in os.walk(out):
        for fname in filenames:
            path = Path(dirpath, fname)
            files[str(path.relative_to(out))] = sha256_file(path)
    for path in sorted(logs.iterdir()) if logs.is_dir() else []:
        files[f"{LOGS}/{path.name}"] = sha256_file(path)
    return dict(sorted(files.items()))
