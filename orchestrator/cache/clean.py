"""Delete what the cache no longer needs, never an entry or folder another process or checkout is using.

Checkouts sharing one artifacts folder each leave a root file, `.roots/<sha of the impls folder>.json`, naming
the key of every job their last runs used; `clean` keeps the union of the roots whose impls folder still exists.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from orchestrator.cache import parsed
from orchestrator.cache.hashing import sha256_json
from orchestrator.cache.store import FAILED, LATEST, LOCKS, STAGING, remove_tree
from orchestrator.model.context import Context
from orchestrator.model.job import Job, topo_order
from orchestrator.run.references import NAME as REFERENCES
from orchestrator.run.stage import STAGE

ROOTS = ".roots"


def _root_file(ctx: Context) -> Path:
    return ctx.store.root / ROOTS / f"{sha256_json(str(ctx.impls_dir))[:24]}.json"


def record_roots(ctx: Context, plans: dict) -> None:
    """Note the keys this checkout uses now (merged into what its earlier runs noted), for `clean` elsewhere."""
    keys = {n: p.key for n, p in plans.items() if p.key is not None and not p.job.stage}
    if not keys:
        return
    try:
        _write_roots(ctx, keys)
    except OSError:
        pass  # a read-only or full artifacts folder: nothing can be committed either, and the run says so itself


def _noted(old: dict | None, ctx: Context, keys: dict[str, str]) -> bool:
    return old is not None and old.get("impls_dir") == str(ctx.impls_dir) and {**old["keys"], **keys} == old["keys"]


def _write_roots(ctx: Context, keys: dict[str, str]) -> None:
    path = _root_file(ctx)
    # Nothing new (the warm path): no lock needed to see that. The file is only ever replaced whole, and a writer
    # merges under the lock with what it finds, so keys noted now stay noted.
    if _noted(_read_root(path), ctx, keys):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs of one checkout at once: neither loses the other's keys
        old = _read_root(path)
        if _noted(old, ctx, keys):
            return
        merged = {**(old or {}).get("keys", {}), **keys}
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        doc = {"impls_dir": str(ctx.impls_dir), "keys": merged, "updated": time.time()}
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, path)


def _read_root(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(doc, dict) and isinstance(doc.get("impls_dir"), str) and isinstance(doc.get("keys"), dict)
    return doc if ok else None


def live_roots(ctx: Context) -> set[tuple[str, str]]:
    """(name, key) of every entry another checkout sharing this artifacts folder still uses; dead roots are removed.

    This checkout's own root is not read: its current keys (the plan) are what it uses now.
    """
    keep: set[tuple[str, str]] = set()
    folder = ctx.store.root / ROOTS
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path == _root_file(ctx):
            continue
        doc = _read_root(path)
        if doc is None or not Path(doc["impls_dir"]).is_dir():
            path.unlink(missing_ok=True)  # that checkout is gone (or the file is unreadable): it keeps nothing
            path.with_suffix(".lock").unlink(missing_ok=True)
            continue
        keep |= {(n, k) for n, k in doc["keys"].items() if isinstance(n, str) and isinstance(k, str)}
    return keep


def _staging_owner(name: str) -> int | None:
    """Staging folders are named <job>-<key12>-<pid>-<rand>."""
    parts = name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def clean(ctx: Context, jobs: dict[str, Job], everything: bool) -> int:
    """Remove stale entries (or all with everything=True), the stored references, dead staging folders and failure
    logs."""
    from filelock import FileLock, Timeout

    from orchestrator.env.check import pid_alive, sweep_tmp
    from orchestrator.run.plan import plan

    swept = sweep_tmp(ctx.envs_dir)  # temporary folders of env builds whose process is gone
    if swept:
        print(f"removed {swept} unfinished env builds from {ctx.envs_dir}")
    store = ctx.store
    if not store.root.is_dir():
        print(f"nothing to clean in {store.root}")
        return 0
    keep: set[tuple[str, str]] = set()
    if not everything:
        keep = live_roots(ctx)
        if jobs:
            plans = plan(ctx, jobs, topo_order(jobs))
            keep |= {(n, p.key) for n, p in plans.items() if p.key is not None}
    removed = 0
    staging = store.root / STAGING
    for d in sorted(staging.iterdir()) if staging.is_dir() else []:
        pid = _staging_owner(d.name)
        if pid is None or not pid_alive(pid):
            remove_tree(d)
            removed += 1
    remove_tree(store.root / FAILED)  # failed outputs may be folders thousands deep
    for job_dir in sorted(store.root.iterdir()):  # the stored references too: a run remakes the set it needs
        hidden = job_dir.name.startswith(".") and job_dir.name != REFERENCES
        if hidden or job_dir.name == LATEST or not job_dir.is_dir():
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
        shutil.rmtree(store.root / ROOTS, ignore_errors=True)
        (store.root / parsed.FILE).unlink(missing_ok=True)
    print(f"removed {removed} folders from {store.root}")
    return 0
