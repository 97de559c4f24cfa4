"""A run's stored references (the harness's opbench.refstore): computed once per op, suite, modes and device.

Before the first harness job of a suite that runs on this machine, one process of the harness alone (`python -m
opbench.refjob`, in that job's env, holding its device) computes every fp32 reference of the suite; the jobs after
it read them instead of computing their own (the JAX impls' reference compiles a program per shape). The set is
committed like a result, under `<artifacts>/.references/<key>/` with a manifest of every file's sha256, keyed by
the harness's source tree, the suite file, the op, the modes and the device — not by which torch made it, which
its index records: a workload's fp32 math is the same in any of them, rounding aside. `clean` removes sets; a run
remakes the one it needs.

A job is handed the set's folder and its manifest's sha256, taken from the bytes this process checked every file
against (when it committed the set, or found it): a set anything changed is remade, and a change made while jobs
read it makes them compute their own (opbench.refstore checks each file). A job that takes no slot here (its
executor places it on another machine), one launched while the set is being made, or one whose env has no torch
while no set exists yet computes its own, as before.
"""

from __future__ import annotations

import json
import threading

from orchestrator.cache.hashing import sha256_bytes, sha256_file, sha256_json
from orchestrator.cache.outputs import hash_outputs
from orchestrator.cache.store import MANIFEST, Manifest, Store, remove_tree
from orchestrator.frozen import replace
from orchestrator.run.device_locks import device_lock_path

NAME = ".references"  # the store folder: never an impl's name (those match [a-z0-9_]+)
VARIABLE = "OPBENCH_REFERENCES"  # opbench.refstore.VARIABLE
FORMAT = 1
SKIP_EXIT = 77  # opbench.refjob: torch is not usable in this env
TIMEOUT_S = 1800.0  # a kernel suite's backward references take seconds on a GPU; minutes on a CPU at most


class References:
    """The sets of one run, by key; `variables` is what a job's launch adds (nothing when no set can be had)."""

    def __init__(self, ctx, runner, trees, on_progress) -> None:
        self.ctx, self.runner, self.trees, self.on_progress = ctx, runner, trees, on_progress
        self.sets: dict[str, str | None] = {}  # key -> the variable's value; None: it could not be made this run
        self.making: set[str] = set()
        self.no_torch: set[str] = set()  # env ids where the reference process found no torch
        self.key_locks: dict[str, threading.Lock] = {}
        self.seen: dict[str, dict] = {}  # key -> what its files looked like when vouched for (stat, ctime included)
        self.mutex = threading.Lock()

    def variables(self, p, env, dev: str | None, gpu_ids: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
        """({VARIABLE: "<folder>#<manifest sha256>"}, the set's key) for a harness job on one of this machine's
        device slots (`dev`: the scheduler asks only for those), the set made first if need be; ({}, None) when the
        job computes its own."""
        from orchestrator.run.jobrun import HARNESS, gated

        suite = self.ctx.suite_for(p.job)
        harness = next((d.root for d in p.job.path_deps if d.name == HARNESS), None)
        if suite is None or harness is None or dev is None or not gated(p.job):
            return {}, None
        key = sha256_json(self.key_inputs(p.job.op, suite, harness))
        with self.mutex:
            if env.env_id in self.no_torch:
                return {}, None  # this env cannot make it and none was found: this job computes its own
            key_lock = self.key_locks.setdefault(key, threading.Lock())
        with key_lock:  # a set being vouched for: wait for the answer (seconds at most)
            with self.mutex:
                if key in self.sets:
                    known = self.sets[key]
                    return ({VARIABLE: known}, key) if known else ({}, None)
                if key in self.making:
                    return {}, None  # being made for another job: this one computes its own rather than wait
            found = vouched(self.ctx.store, key)
            with self.mutex:
                if found is not None:
                    self._settle(key, found)
                    return {VARIABLE: found}, key
                self.making.add(key)
        value: str | None = None
        settled = True
        try:
            value, settled = self._ensure(p, env, dev, gpu_ids, key, suite, harness)
        finally:
            with self.mutex:
                self.making.discard(key)
                if settled:
                    self._settle(key, value)
                else:
                    self.no_torch.add(env.env_id)
        return ({VARIABLE: value}, key) if value else ({}, None)

    def _settle(self, key: str, value: str | None) -> None:
        """(under the mutex) The run's answer for key; a set's files as they were when vouched for."""
        self.sets[key] = value
        if value:
            self.seen[key] = listing(self.ctx.store.entry(NAME, key))

    def changed(self, key: str) -> str | None:
        """After a job that read set `key` ran: why the set is no longer what was vouched for (then it is removed,
        and remade for the next job), else None. A file rewritten in place, even with its old bytes and times put
        back, changes its ctime."""
        folder = self.ctx.store.entry(NAME, key)
        with self.mutex:
            if key not in self.seen or listing(folder) == self.seen[key]:
                return None
            self.sets.pop(key, None)
            self.seen.pop(key, None)
        remove_tree(folder)
        return (f"the run's stored references ({folder}) were changed while this job ran (by it or by another "
                "process); they are removed and made again, and this job will rerun")

    def key_inputs(self, op: str, suite, harness) -> dict:
        return {"format": FORMAT, "op": op, "suite": suite.name, "suite_sha256": sha256_file(suite.path),
                "modes": list(self.ctx.modes), "harness": self.trees(harness), "device": self.ctx.device.fingerprint}

    # -- a set: found sound, or made -----------------------------------------------------------------------------
    def _ensure(self, p, env, dev, gpu_ids, key, suite, harness) -> tuple[str | None, bool]:
        """(value, settled): settled False when this env has no torch (another job's env may make the set)."""
        from filelock import FileLock

        store = self.ctx.store
        found = vouched(store, key)
        if found is not None:
            return found, True
        with FileLock(str(store.lock_path(NAME, key))):  # another run on this machine may be making it
            found = vouched(store, key)
            if found is not None:
                return found, True
            return self._make(p, env, dev, gpu_ids, key, self.key_inputs(p.job.op, suite, harness))

    def _make(self, p, env, dev, gpu_ids, key, inputs) -> tuple[str | None, bool]:
        from filelock import FileLock

        store = self.ctx.store
        name = p.job.name
        executor = self.runner.executor_for(p)
        staging = store.new_staging(NAME, key)
        out, logs = staging / "out", staging / "logs"
        launch = self.runner.launch(p, env, self.runner.variables(p, env, {}, gpu_ids), gpu_ids)
        launch = replace(launch, name=NAME, argv=(str(env.python), "-m", "opbench.refjob"), timeout=TIMEOUT_S)
        launch = executor.prepare(launch, self.ctx, p, env, {})
        where = f"GPU {dev}" if gpu_ids else "this machine's timing slot"
        self.on_progress(name, "waiting", f"for {where}, to compute the {p.job.op} suite's references first")
        try:
            with FileLock(str(device_lock_path(dev))):
                self.on_progress(name, "running", f"computing the {p.job.op} suite's fp32 references, once for all impls")
                ran = executor.run(launch, out, logs)
        except BaseException:
            remove_tree(staging)
            raise
        fin = ran.finished
        if fin.returncode == SKIP_EXIT and not fin.timed_out and not ran.problem:
            remove_tree(staging)
            return None, False
        if fin.cancelled or fin.returncode != 0 or ran.problem:
            why = ran.problem or fin.describe()
            kept = store.keep_failure(staging, NAME)
            self.on_progress(name, "starting", f"the references could not be made ({why}; logs in {kept}); "
                                               "each job computes its own")
            return None, True
        manifest = Manifest(
            name=NAME, key=key, inputs=inputs, status="ok", reason="", started=fin.started, finished=fin.finished,
            returncode=0, files=hash_outputs(out, logs), packages=env.packages(), device=self.ctx.device.to_json(),
            reproduce="", runner={"env_id": env.env_id, **ran.where}, phases={"run_s": fin.duration},
        )
        store.commit(staging, manifest)
        return vouched(store, key), True


def listing(folder) -> dict:
    """Every file under folder with its inode, size, mtime and ctime (ns); folders are walked, links not followed."""
    import os

    seen = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            seen[os.path.relpath(path, folder)] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
    return seen


def vouched(store: Store, key: str) -> str | None:
    """The variable's value for a committed set whose files match the manifest read (and hashed) here, else None."""
    folder = store.entry(NAME, key)
    try:
        raw = (folder / MANIFEST).read_bytes()
        manifest = Manifest.from_json(json.loads(raw))
    except (OSError, ValueError, TypeError):
        return None
    if manifest.name != NAME or manifest.key != key or manifest.status != "ok":
        return None
    if Store.damaged_files(folder, manifest) or Store.unlisted_files(folder, manifest):
        return None
    return f"{folder}#{sha256_bytes(raw)}"

