"""Delete what the cache no longer needs, never an entry or folder another process is using."""

from __future__ import annotations

import os
import shutil

from orchestrator.context import STAGE, Context
from orchestrator.discover import Job, topo_order
from orchestrator.store import FAILED, LATEST, LOCKS, STAGING, remove_tree


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _staging_owner(name: str) -> int | None:
    """Staging folders are named <job>-<key12>-<pid>-<rand>."""
    parts = name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def clean(ctx: Context, jobs: dict[str, Job], everything: bool) -> int:
    """Remove stale entries (or all with everything=True), dead staging folders and failure logs."""
    from filelock import FileLock, Timeout

    from orchestrator.plan import plan

    store = ctx.store
    if not store.root.is_dir():
        print(f"nothing to clean in {store.root}")
        return 0
    keep: set[tuple[str, str]] = set()
    if not everything and jobs:
        plans = plan(ctx, jobs, topo_order(jobs), create_locks=False)
        keep = {(n, p.key) for n, p in plans.items()}
    removed = 0
    staging = store.root / STAGING
    for d in sorted(staging.iterdir()) if staging.is_dir() else []:
        pid = _staging_owner(d.name)
        if pid is None or not _pid_alive(pid):
            remove_tree(d)
            removed += 1
    remove_tree(store.root / FAILED)  # failed outputs may be folders thousands deep
    for job_dir in sorted(store.root.iterdir()):
        if job_dir.name.startswith(".") or job_dir.name == LATEST or not job_dir.is_dir():
            continue
        for entry in store.entries(job_dir.name):
            if (job_dir.name, entry.name) in keep or (job_dir.name == STAGE and not everything):
                continue
            try:
                with FileLock(str(store.lock_path(job_dir.name, entry.name)), timeout=0):
                    shutil.rmtree(entry)
                    removed += 1
            except Timeout:
                print(f"kept {entry}: in use by another process")
    if everything:
        (store.root / LATEST).unlink(missing_ok=True)
        shutil.rmtree(store.root / LOCKS, ignore_errors=True)
    print(f"removed {removed} folders from {store.root}")
    return 0
