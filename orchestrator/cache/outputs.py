"""What a job left in its staging folder, checked before commit: plain files only, valid result lines, hashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator.cache.hashing import SKIP_DIRS, SKIP_INFIX, SKIP_SUFFIXES, sha256_file, sha256_tree
from orchestrator.cache.store import LOGS, MANIFEST, RESERVED

MAX_BAD_LINES_SHOWN = 1
MAX_OUTPUT_DEPTH = 64  # folders below the entry: deeper trees break path limits and recursive tools
UPSTREAMS_FILE = "upstreams.json"  # what the orchestrator hands the combine stage; no other job may write it
# Names at the top of an entry that the store writes itself (the manifest's temporary file included).
STORE_NAMES = RESERVED | {MANIFEST + ".tmp", UPSTREAMS_FILE}


def check_outputs(out: Path, keep: set[str]) -> str | None:
    """None when the outputs may be committed, else one line saying why not.

    Outputs must be plain files inside the folder (no links, which could point outside; no devices or fifos),
    must not use names the store writes itself, must not nest deeper than MAX_OUTPUT_DEPTH folders, and every
    `*.jsonl` line must be a JSON object. The walk is iterative: a tree of any depth is one line, never a crash.
    """
    for name in sorted(os.listdir(out)):
        if name in STORE_NAMES and name not in keep:
            return f"output {name!r} uses a name the orchestrator reserves ({', '.join(sorted(STORE_NAMES - keep))})"
    todo: list[tuple[str, int]] = [("", 0)]
    while todo:
        rel, depth = todo.pop()
        try:
            with os.scandir(out / rel if rel else out) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            return f"output {rel or '.'}: cannot be read ({exc.strerror or exc})"
        for e in entries:
            path = f"{rel}/{e.name}" if rel else e.name
            if e.is_symlink():
                return f"output {path} is a symbolic link; outputs must be plain files"
            if e.is_dir(follow_symlinks=False):
                if depth + 1 > MAX_OUTPUT_DEPTH:
                    shown = path if len(path) <= 120 else path[:100] + "…"
                    return f"output tree deeper than {MAX_OUTPUT_DEPTH} folders: {shown}"
                todo.append((path, depth + 1))
            elif not e.is_file(follow_symlinks=False):
                return f"output {path} is not a regular file"
            elif e.name.endswith(".jsonl"):
                problem = _bad_jsonl(Path(e.path))
                if problem:
                    return f"output {path}:{problem}"
    return None


def has_records(entry: Path) -> bool:
    """Whether any `*.jsonl` file under the entry is non-empty: Path.rglob's reading (links to folders are not
    walked, a link to a file counts by its target), one os.scandir per folder, stopping at the first found."""
    todo = [str(entry)]
    while todo:
        try:
            with os.scandir(todo.pop()) as it:
                found = list(it)
        except OSError:
            continue
        for e in found:
            try:
                if e.is_dir() and not e.is_symlink():
                    todo.append(e.path)
                    continue
            except OSError:
                pass
            if e.name.endswith(".jsonl") and Path(e.path).is_file() and os.stat(e.path).st_size > 0:
                return True
    return False


MAX_RECORD_BYTES = 8 << 20  # one result line; read with a bounded readline, so a 300 MB line costs nothing


def _bad_jsonl(path: Path) -> str | None:
    with open(path, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(MAX_RECORD_BYTES + 1)
            if not raw:
                return None
            lineno += 1
            if len(raw) > MAX_RECORD_BYTES:
                return f"{lineno}: line longer than {MAX_RECORD_BYTES >> 20} MiB (one record per line)"
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                return f"{lineno}: not valid JSON"
            if not isinstance(value, dict):
                return f"{lineno}: not a JSON object"


PHASES_FILE = "phases.json"  # the harness's seconds per step (opbench/phases.py); an output like any other
MAX_PHASES_BYTES = 1 << 20


def harness_phases(out: Path) -> dict | None:
    """The job's phases.json as a JSON object, read with one bounded read; None when absent, too large or not one."""
    try:
        with open(out / PHASES_FILE, "rb") as f:
            raw = f.read(MAX_PHASES_BYTES + 1)
        doc = json.loads(raw) if len(raw) <= MAX_PHASES_BYTES else None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


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


class SourceWatch:
    """The job's own folder and its path dependencies (shared/), as before the job; a job must leave them as found.

    A job that writes there would change its own key (and every sibling's) and rerun forever. Both a stat listing
    (catches a rewrite with the same bytes) and the key's own tree hash (catches a write with its mtime restored)
    are compared.
    """

    def __init__(self, roots: list[tuple[str, Path]]) -> None:
        self.roots = roots
        self.before = [(_listing(root), sha256_tree(root)) for _, root in roots]

    def problem(self) -> str | None:
        """None when every root is unchanged, else one line naming what changed."""
        for (what, root), (listing, digest) in zip(self.roots, self.before):
            now = _listing(root)
            changed = sorted(k for k in listing.keys() | now.keys() if listing.get(k) != now.get(k))
            if not changed and sha256_tree(root) != digest:
                changed = ["(file contents, with their times restored)"]
            if changed:
                shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
                return f"wrote into {what}: {shown}"
        return None


def _listing(root: Path) -> dict[str, tuple]:
    """relative path -> (type, size, mtime, inode) of what a tree hash reads under root."""
    found: dict[str, tuple] = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        try:
            entries = list(os.scandir(root / rel if rel else root))
        except OSError:
            continue
        for e in entries:
            path = f"{rel}/{e.name}" if rel else e.name
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if e.is_dir(follow_symlinks=False):
                if e.name not in SKIP_DIRS and not e.name.endswith(".egg-info"):
                    todo.append(path)
            elif not (e.name.endswith(SKIP_SUFFIXES) or SKIP_INFIX in e.name):
                found[path] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
    return found
