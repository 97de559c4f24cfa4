"""Env integrity: a stat snapshot taken when an env is built, compared before and after each job, and a full
check of installed files against their RECORD hashes (`verify --envs`).

Jobs may run as root, so nothing stops one from writing into its env; what we can do is notice. The snapshot holds
the relative path, size and mtime_ns of every file (a symlink: its target); on the torch env (15k files) taking one
and comparing it costs about 80 ms. It lives outside the env (`<envs>/.snapshots/<id>.json`).

A file that a job adds under `__pycache__` (Python writes bytecode there on import, numba its caches) is not counted
as a change but is deleted after the job, so a job cannot plant bytecode that a later job would load in place of the
source. Each job thus compiles what it imports (about 0.4 s for `import torch` on 2 cores); compiling all at build time instead
(`--compile-bytecode`) made the torch env rebuild 4 s slower.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

SNAPSHOTS = ".snapshots"
TMP = ".tmp"
SHOWN = 5  # changed paths named in a message


def snapshot_path(root: Path) -> Path:
    return root.parent / SNAPSHOTS / f"{root.name}.json"


def scan(root: Path) -> dict[str, list]:
    """relative path -> [size, mtime_ns] for files, ["link", target] for symlinks."""
    out: dict[str, list] = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel)))
        except OSError:
            continue
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            try:
                if e.is_symlink():
                    out[r] = ["link", os.readlink(e.path)]
                elif e.is_dir(follow_symlinks=False):
                    stack.append(r)
                else:
                    st = e.stat(follow_symlinks=False)
                    out[r] = [st.st_size, st.st_mtime_ns]
            except OSError:
                continue
    return out


def _bytecode(rel: str) -> bool:
    """A file in a __pycache__ folder: Python's bytecode (and its temporary files), numba's caches."""
    return rel.rpartition("/")[0].rsplit("/", 1)[-1] == "__pycache__"


def record(tmp_root: Path, final_root: Path) -> None:
    """Store the snapshot of a freshly built env (in tmp_root, about to be renamed to final_root)."""
    path = snapshot_path(final_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(scan(tmp_root), separators=(",", ":")))
    os.replace(part, path)


def changes(root: Path) -> tuple[list[str], list[str]] | None:
    """(what differs from the build snapshot, new bytecode files); None when the env has no snapshot."""
    try:
        want = json.loads(snapshot_path(root).read_text())
    except (OSError, ValueError):
        return None
    have = scan(root)
    new_pyc = [r for r in have if r not in want and _bytecode(r)]
    diff = [f"removed {r}" for r in want if r not in have]
    diff += [f"added {r}" for r in have if r not in want and not _bytecode(r)]
    diff += [f"changed {r}" for r, v in have.items() if r in want and want[r] != v]
    return sorted(diff), new_pyc


def describe(diff: list[str]) -> str:
    more = f" and {len(diff) - SHOWN} more" if len(diff) > SHOWN else ""
    return ", ".join(diff[:SHOWN]) + more


def intact(root: Path) -> str | None:
    """Why the env cannot be used as it is (python gone, files changed), or None. Cheap: stats only."""
    py = root / "bin" / "python"
    if not os.path.exists(py):  # follows the symlink: the interpreter it points to must exist too
        return "bin/python is missing"
    found = changes(root)
    if found is None:
        return "no build snapshot"
    return describe(found[0]) if found[0] else None


def after_job(root: Path) -> str | None:
    """What a job changed in its env (None if nothing); bytecode it added is deleted either way."""
    found = changes(root)
    if found is None:
        return None
    diff, new_pyc = found
    for rel in new_pyc:
        try:
            os.unlink(root / rel)
        except OSError:
            pass
    return describe(diff) if diff else None


def discard(root: Path) -> None:
    """Move a damaged env out of the way (one rename, so no process ever sees half of one), then delete it."""
    if not root.exists():
        return
    trash = root.parent / TMP / f"{root.name}-{os.getpid()}-{os.urandom(4).hex()}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(root, trash)
    except FileNotFoundError:
        return
    snapshot_path(root).unlink(missing_ok=True)
    shutil.rmtree(trash, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_tmp(envs_dir: Path) -> int:
    """Delete temporary build folders (`.tmp/<id>-<pid>-<rand>`) whose process is gone; returns how many."""
    removed = 0
    tmp = envs_dir / TMP
    for d in sorted(tmp.iterdir()) if tmp.is_dir() else []:
        parts = d.name.rsplit("-", 2)
        pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
        if pid is None or not pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed


# -- verify --envs ------------------------------------------------------------------------------------
def _digest(path: Path, algo: str) -> str:
    import base64
    import hashlib

    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def check_records(root: Path) -> list[str]:
    """Every installed file listed in a dist-info RECORD with a hash, checked against it."""
    import csv
    import hashlib

    problems = []
    for site in sorted(root.glob("lib/python*/site-packages")):
        for rec in sorted(site.glob("*.dist-info/RECORD")):
            with open(rec, newline="", encoding="utf-8", errors="replace") as f:
                rows = list(csv.reader(f))
            for row in rows:
                if len(row) < 2 or not row[1] or "=" not in row[1]:
                    continue
                algo, _, want = row[1].partition("=")
                path = (site / row[0]).resolve() if not os.path.isabs(row[0]) else Path(row[0])
                if not path.is_file():
                    problems.append(f"missing {os.path.relpath(path, root)}")
                elif algo in hashlib.algorithms_available and _digest(path, algo) != want:
                    problems.append(f"changed {os.path.relpath(path, root)}")
    return problems


def verify_envs(envs_dir: Path) -> tuple[int, list[tuple[Path, str]]]:
    """(envs checked, [(env, problem)]): python present, build snapshot matches, files match RECORD.

    A damaged env loses its snapshot, so its next use rebuilds it (a job may be using it now: it is not deleted).
    """
    problems = []
    envs = [d for d in sorted(envs_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")] if envs_dir.is_dir() else []
    for env in envs:
        found = intact(env)
        bad = check_records(env)
        if bad:
            found = "; ".join(x for x in (found, describe(bad)) if x)
        if found:
            problems.append((env, found))
            snapshot_path(env).unlink(missing_ok=True)
    return len(envs), problems
