"""A run's stored references (the harness's opbench.refstore): computed once per op, suite, modes and device.

When the first harness job of a suite is about to run on one of this machine's device slots, one process of the
harness alone (`python -m opbench.refjob`, in that job's env: no impl's code runs in it) starts beside it and
computes every fp32 reference of the suite; like a job, it imports and draws its inputs before it takes the
device's lock (run/gate.py), so it holds the GPU only for the GPU work. Every harness job is handed the set with its
GPU (the gate's handout), so none takes the GPU before the set exists and all of them read it instead of computing
their own (the JAX impls' reference compiles a program per shape).

The set is committed like a result, under `<artifacts>/.references/<key>/` with a manifest of every file's sha256,
keyed by the harness's source tree, the suite file, the op, the modes and the device — not by which torch made it,
which its index records: a workload's fp32 math is the same in any of them, rounding aside. `clean` removes sets; a
run remakes the one it needs.

A job is handed the set's folder and its manifest's sha256, taken from the bytes this process checked every file
against (when it committed the set, or found it): a set anything changed is remade, and one changed while a job
read it fails that job and is removed (opbench.refstore also checks each file it reads). A job that takes no slot
here (its executor places it on another machine), or whose set could not be made (no torch in the env that was to
make it, an error), computes its own, as before.
"""

from __future__ import annotations

import contextlib
import os
import threading

from orchestrator.cache.hashing import sha256_bytes, sha256_file, sha256_json
from orchestrator.cache.outputs import hash_outputs
from orchestrator.cache.store import Manifest, Store, remove_tree
from orchestrator.errors import StoreError
from orchestrator.frozen import replace
from orchestrator.run.device_locks import device_lock_path
from orchestrator.run.gate import Gate

NAME = ".references"  # the store folder: never an impl's name (those match [a-z0-9_]+)
VARIABLE = "OPBENCH_REFERENCES"  # opbench.refstore.VARIABLE
FORMAT = 1
TIMEOUT_S = 1800.0  # a kernel suite's backward references take seconds on a GPU; minutes on a CPU at most


class Handout:
    """What one job gets with its GPU (Gate's handout): the set's variable once the set is settled, else {}.
    Called from the job's gate thread, never holding the device lock; `close` after the job's process is gone."""

    def __init__(self, refs: References, key: str, settled: threading.Event) -> None:
        self.refs, self.key, self.settled = refs, key, settled
        self.handed: str | None = None  # the key of the set this job was handed
        self._reading = contextlib.ExitStack()

    def __call__(self) -> dict[str, str]:
        self.settled.wait()
        value = self.refs.value(self.key)
        if not value or self.handed:
            return {VARIABLE: value} if value else {}
        try:  # the store's shared lock on the set, so `clean` leaves it be while the job reads it
            self._reading.enter_context(self.refs.ctx.store.reading([(NAME, self.key)]))
        except (OSError, StoreError):
            pass
        self.handed = self.key
        return {VARIABLE: value}

    def changed(self) -> str | None:
        """After the job ran: why the set it was handed can no longer be vouched for, else None."""
        return self.refs.changed(self.handed) if self.handed else None

    def close(self) -> None:
        self._reading.close()


class References:
    """The sets of one run, by key."""

    def __init__(self, ctx, runner, trees, on_progress) -> None:
        self.ctx, self.runner, self.trees, self.on_progress = ctx, runner, trees, on_progress
        self.sets: dict[str, str | None] = {}  # key -> the variable's value; None: it could not be made this run
        self.settling: dict[str, threading.Event] = {}  # key -> set when the key's attempt ended
        self.no_torch: set[str] = set()  # env ids where the reference process found no torch
        self.seen: dict[str, dict] = {}  # key -> what its files looked like when vouched for (stat, ctime included)
        self.mutex = threading.Lock()

    def handout(self, p, env, dev: str | None, gpu_ids: tuple[str, ...]) -> Handout | None:
        """The handout of a harness job on one of this machine's device slots (`dev`), its set's making started if
        need be (beside the job, not before it); None for a job that is handed nothing."""
        from orchestrator.run.jobrun import HARNESS, gated

        suite = self.ctx.suite_for(p.job)
        harness = next((d.root for d in p.job.path_deps if d.name == HARNESS), None)
        if suite is None or harness is None or dev is None or not gated(p.job):
            return None
        inputs = self.key_inputs(p.job.op, suite, harness)
        key = sha256_json(inputs)
        with self.mutex:
            event = self.settling.get(key)
            if event is None or (event.is_set() and key not in self.sets):  # never tried, or its env had no torch
                if env.env_id in self.no_torch:
                    return None
                event = self.settling[key] = threading.Event()
                threading.Thread(target=self._settle, args=(p, env, dev, gpu_ids, key, inputs, event),
                                 name="references", daemon=True).start()
        return Handout(self, key, event)

    def value(self, key: str) -> str | None:
        with self.mutex:
            return self.sets.get(key)

    def key_inputs(self, op: str, suite, harness) -> dict:
        return {"format": FORMAT, "op": op, "workloads": {"name": suite.name, "sha256": sha256_file(suite.path)},
                "modes": list(self.ctx.modes), "harness": self.trees(harness), "device": self.ctx.device.fingerprint}

    def changed(self, key: str) -> str | None:
        """After a job that read set `key` ran: why the set is no longer what was vouched for (then it is removed,
        and a later run remakes it), else None. A file rewritten in place, even with its old bytes and times put
        back, changes its ctime."""
        folder = self.ctx.store.entry(NAME, key)
        with self.mutex:
            if key not in self.seen or listing(folder) == self.seen[key]:
                return None
            self.sets[key] = None  # this run's later jobs compute their own
            self.seen.pop(key, None)
        remove_tree(folder)
        return (f"the run's stored references ({folder}) were changed while this job ran (by it or by another "
                "process); they are removed, and this job will rerun")

    # -- a set: found sound, or made -----------------------------------------------------------------------------
    def _settle(self, p, env, dev, gpu_ids, key, inputs, event: threading.Event) -> None:
        value: str | None = None
        settled = True
        try:
            value, settled = self._ensure(p, env, dev, gpu_ids, key, inputs)
        except Exception as exc:  # noqa: BLE001 - a set that cannot be made: every job computes its own
            self.on_progress(p.job.name, "starting", f"the references could not be made ({exc}); each job computes its own")
        finally:
            with self.mutex:
                if settled:
                    self.sets[key] = value
                    if value:
                        self.seen[key] = listing(self.ctx.store.entry(NAME, key))
                else:
                    self.no_torch.add(env.env_id)
            event.set()

    def _ensure(self, p, env, dev, gpu_ids, key, inputs) -> tuple[str | None, bool]:
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
            return self._make(p, env, dev, gpu_ids, key, inputs)

    def _make(self, p, env, dev, gpu_ids, key, inputs) -> tuple[str | None, bool]:
        store = self.ctx.store
        executor = self.runner.executor_for(p)
        staging = store.new_staging(NAME, key)
        out, logs = staging / "out", staging / "logs"
        launch = self.runner.launch(p, env, self.runner.variables(p, env, {}, gpu_ids), gpu_ids)
        launch = replace(launch, name=NAME, argv=(str(env.python), "-m", "opbench.refjob"), timeout=TIMEOUT_S)
        launch = executor.prepare(launch, self.ctx, p, env, {})
        gate = Gate(str(device_lock_path(dev)))
        try:
            ran = executor.run(launch, out, logs, gate=gate)
        except BaseException:
            remove_tree(staging)
            raise
        from orchestrator.run.jobrun import SKIP_EXIT  # opbench.refjob's: torch is not usable in this env

        fin = ran.finished
        if fin.returncode == SKIP_EXIT and not fin.timed_out and not ran.problem:
            remove_tree(staging)
            return None, False
        if fin.cancelled or fin.returncode != 0 or ran.problem:
            why = ran.problem or fin.describe()
            kept = store.keep_failure(staging, NAME)
            self.on_progress(p.job.name, "starting", f"the references could not be made ({why}; logs in {kept}); "
                                                     "each job computes its own")
            return None, True
        held = list(gate.held) if gate.held is not None else None
        manifest = Manifest(
            name=NAME, key=key, inputs=inputs, status="ok", reason="", started=fin.started, finished=fin.finished,
            returncode=0, files=hash_outputs(out, logs), packages=env.packages(), device=self.ctx.device.to_json(),
            reproduce="", runner={"env_id": env.env_id, **ran.where},
            phases={"run_s": fin.duration, "wait_s": gate.waited_s, "lock": dev, "gated": True, "held": held},
        )
        store.commit(staging, manifest)
        return vouched(store, key), True


def listing(folder) -> dict:
    """Every file under folder with its inode, size, mtime and ctime (ns); folders are walked, links not followed."""
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
    raw, manifest, problem = store.inspect_bytes(NAME, key)
    if problem or manifest is None or raw is None or manifest.status != "ok":
        return None
    return f"{store.entry(NAME, key)}#{sha256_bytes(raw)}"
