"""Run planned jobs concurrently: env builds in the background, one timed job per device, CPU jobs up to -j.

A device admits up to 1 + PREPARE_AHEAD jobs at once: one times on it, the others start (Python, imports, the
impl's check) and wait for its lock (run/gate.py), so the GPU never waits for a job's start-up; a job that skips
after its check never holds it."""

from __future__ import annotations

import contextlib
import time

from orchestrator.cache.keys import TreeHashes
from orchestrator.errors import BuildError, StoreError
from orchestrator.executors.local import CPU, GPU
from orchestrator.model.context import Context
from orchestrator.run.device_locks import HOST_SLOT, device_lock_path
from orchestrator.run.gate import Gate
from orchestrator.run.jobrun import JobRunner, Result, gated, result_of
from orchestrator.run.plan import Planned, uninstallable_reason
from orchestrator.run.progress import Progress
from orchestrator.run.references import References
from orchestrator.run.stage import keyed, upstreams_doc

TYPE_CHECKING = False  # typing itself is not imported on the warm path
if TYPE_CHECKING:
    import queue

PREPARE_AHEAD = 2  # jobs per device that may be starting or waiting for its lock while another times on it
Slot = tuple[str | None, str | None]  # (CPU, None), (GPU, its device) or (None, None): placed by its executor elsewhere


class Scheduler:
    """Event loop over a plan; returns one Result per job."""

    def __init__(self, ctx: Context, runner: JobRunner, plans: dict[str, Planned], progress: Progress,
                 initial: dict[str, Result] | None = None) -> None:
        """`initial` holds outcomes decided elsewhere (combine's cached upstreams) that plans may need."""
        self.ctx, self.runner, self.progress = ctx, runner, progress
        self.plans = dict(plans)  # a stage's entry is replaced by its keyed plan once its upstreams ended
        self.results: dict[str, Result] = dict(initial or {})
        self.events: queue.Queue[tuple] | None = None  # made only when something has to run
        self.envs: dict = {}  # name -> concurrent.futures.Future of its Env, as its executor readies it
        devices = list(ctx.gpus) if ctx.device.has_gpu else [HOST_SLOT]
        self.device_load = dict.fromkeys(devices, 0)  # jobs admitted per device: timing, starting or waiting
        self.cpu_slots = max(1, ctx.jobs)
        self.running: dict[str, Slot] = {}
        self.trees = TreeHashes()
        self.references = References(ctx, runner, self.trees, progress.set)

    def run(self) -> dict[str, Result]:
        for name, p in self.plans.items():
            if name in self.results:
                continue  # decided by the caller (combine's cached upstreams)
            if p.cached is not None:
                assert p.key is not None  # a cached plan was found by its key
                self._finish(result_of(p, p.cached, self.ctx.store.entry(name, p.key), cached=True))
            elif p.preskip is not None and p.job.stage:  # no key before its upstreams end: nothing to commit
                self._finish(Result(name, "failed", f"the {name} stage cannot run here: {p.preskip}", None, None, 0.0))
            elif p.preskip is not None:
                self._finish(self.runner.commit_preskip(p))
            elif p.job.stage and all(u in self.results for u in p.job.needs):
                self._stage_cached(name)  # a warm run finds the stage cached without building anything
        pending = [n for n in self.plans if n not in self.results]
        if not pending:
            return self.results
        self.ctx.store.check_writable()  # a read-only artifacts folder is one line before anything runs
        self.runner.start([self.plans[n] for n in pending])  # only now: a cached run never connects an executor
        elsewhere = sum(1 for n in pending if self.runner.slot(self.plans[n]) is None)  # they take no slot here
        # Imported here: a fully cached run returns above without paying for threads and queues.
        import queue
        from concurrent.futures import ThreadPoolExecutor

        self.events = events = queue.Queue[tuple]()
        builders = ThreadPoolExecutor(max_workers=max(1, self.ctx.jobs), thread_name_prefix="env")
        per_device = 1 + PREPARE_AHEAD
        workers = ThreadPoolExecutor(max_workers=len(self.device_load) * per_device + self.cpu_slots + elsewhere,
                                     thread_name_prefix="job")
        try:
            for name in pending:
                self.envs[name] = builders.submit(self.runner.ready_env, self.plans[name], self.progress.set)
                self.envs[name].add_done_callback(lambda f, n=name: events.put(("env", n)))
            while not self._all_done():
                if self._start_ready(pending, workers):
                    continue  # something finished without running: its dependents may be ready now
                kind, name, *rest = events.get()
                if kind == "done":
                    self._release(name)
                    self._finish(rest[0])
        except KeyboardInterrupt:
            self.runner.cancel()
            raise
        finally:
            builders.shutdown(wait=True, cancel_futures=True)
            workers.shutdown(wait=True)
        return self.results

    def _all_done(self) -> bool:
        return all(n in self.results for n in self.plans)

    # -- steps ----------------------------------------------------------------------------------
    def _start_ready(self, pending: list[str], workers) -> bool:
        """Start every job whose env and upstreams are ready and that has a slot; True if one finished here."""
        before = len(self.results)
        for name in pending:
            if name in self.results or name in self.running or not self.envs[name].done():
                continue
            p = self.plans[name]
            found = [self.results.get(u) for u in p.job.needs]
            ups = [u for u in found if u is not None]
            if len(ups) < len(found):
                continue
            failed = [u.name for u in ups if u.status == "failed"]
            if failed and not p.job.stage:
                self._finish(Result(name, "failed", f"upstream {', '.join(failed)} failed", p.key))
                continue
            exc = self.envs[name].exception()
            if exc is not None:
                self._finish(self._env_result(p, exc))
                continue
            if p.job.stage and p.key is None:
                if self._stage_cached(name):
                    continue
                p = self.plans[name]
            slot = self._take_slot(p)
            if slot is None:
                continue
            self.running[name] = slot
            workers.submit(self._execute, p, slot)
        return len(self.results) > before

    def _stage_cached(self, name: str) -> bool:
        """Key a stage by its upstreams' keys and outcomes; True when that result is already committed."""
        p = self.plans[name] = keyed(self.plans[name], self.ctx, self.trees, self.results)
        if p.cached is not None:
            self._finish(result_of(p, p.cached, self.ctx.store.entry(p.job.name, p.key), cached=True))
            return True
        return False

    def _take_slot(self, p: Planned) -> Slot | None:
        """The slot the job's executor says it occupies, if free; None: wait for one to be released."""
        need = self.runner.slot(p)
        if need is None:
            return (None, None)  # its executor places it elsewhere
        if need == GPU:
            free = [d for d, n in self.device_load.items() if n < 1 + PREPARE_AHEAD]
            if not free:
                return None
            device = min(free, key=lambda d: self.device_load[d])  # the least loaded; ties: the first
            self.device_load[device] += 1
            return (GPU, device)
        if self.cpu_slots > 0:
            self.cpu_slots -= 1
            return (CPU, None)
        return None

    def _release(self, name: str) -> None:
        need, device = self.running.pop(name)
        if need == GPU:
            assert device is not None
            self.device_load[device] -= 1
        elif need == CPU:
            self.cpu_slots += 1

    def _execute(self, p: Planned, slot: Slot) -> None:
        try:
            result = self._execute_locked(p, slot)
        except Exception as exc:  # noqa: BLE001 - any crash becomes this job's failure, not the run's
            result = self._error_result(p, exc)
        assert self.events is not None  # made before any job is submitted
        self.events.put(("done", p.job.name, result))

    def _execute_locked(self, p: Planned, slot: Slot) -> Result:
        from filelock import FileLock

        store = self.ctx.store
        assert p.key is not None, "a job runs only once keyed"
        with FileLock(str(store.lock_path(p.job.name, p.key))):
            if not p.forced:
                # Another process may have committed it while we built the env or waited for the lock.
                m = store.lookup(p.job.name, p.key)
                if m is not None:
                    return result_of(p, m, store.entry(p.job.name, p.key), cached=True)
            need, dev = slot
            gpu_ids: tuple[str, ...] = (dev,) if need == GPU and dev is not None and dev != HOST_SLOT else ()
            ups = {u: entry for u in p.job.needs if (entry := self.results[u].entry) is not None}
            doc = upstreams_doc(p.job, self.plans, self.results) if p.job.stage else None
            env = self.envs[p.job.name].result()
            reading = [(u, key) for u in ups if (key := self.results[u].key) is not None]  # an entry has a key
            waited = 0.0
            name = p.job.name
            gate = None
            what = f"GPU {dev}" if gpu_ids else "this machine's timing slot"
            on = f"on GPU {dev}" if gpu_ids else ""
            handout = None
            with store.reading(reading), contextlib.ExitStack() as held:
                if need == GPU and dev is not None and gated(p.job):
                    handout = self.references.handout(p, env, dev, gpu_ids)  # the set's making starts beside it
                    if handout is not None:
                        held.callback(handout.close)
                    gate = Gate(str(device_lock_path(dev)),
                                on_wait=lambda: self.progress.set(name, "waiting", f"for {what} (started, checked)"),
                                on_run=lambda: self.progress.set(name, "running", on),
                                handout=handout or dict)
                    self.progress.set(name, "starting", f"imports and checks before it takes {what}")
                elif need == GPU and dev is not None:
                    self.progress.set(name, "waiting", f"for {what} (another run may be timing on it)")
                    t0 = time.perf_counter()
                    held.enter_context(FileLock(str(device_lock_path(dev))))
                    waited = time.perf_counter() - t0
                    self.progress.set(name, "running", on)
                elif need is None:
                    pass  # placed elsewhere: its executor reports waiting / building env / running as it gets there
                else:
                    self.progress.set(p.job.name, "running")
                return self.runner.run(p, env, ups, gpu_ids, doc, waited, dev if need == GPU else None, gate,
                                       handout)

    def _env_result(self, p: Planned, exc: BaseException) -> Result:
        """A job whose env could not be built: failed, except a version-matrix variant whose version resolved but
        does not install here, which is skipped with uv's reason (as one that does not resolve is), so the other
        variants and a bisect go on around it."""
        if isinstance(exc, BuildError) and p.job.variant is not None:
            return Result(p.job.name, "skipped", uninstallable_reason(p.job, exc), p.key, log_tail=str(exc))
        return self._error_result(p, exc)

    def _error_result(self, p: Planned, exc: BaseException) -> Result:
        if isinstance(exc, BuildError):
            return Result(p.job.name, "failed", str(exc).splitlines()[0], p.key, log_tail=str(exc))
        if isinstance(exc, StoreError):  # disk trouble: the line names the path; a traceback would add nothing
            return Result(p.job.name, "failed", str(exc), p.key)
        import traceback

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return Result(p.job.name, "failed", f"internal error: {exc!r}", p.key, log_tail=tb)

    def _finish(self, r: Result) -> None:
        """Record the outcome; a skip's reason is printed once, by the summary, not here too."""
        self.results[r.name] = r
        if r.status == "skipped":
            self.progress.set(r.name, "skipped", "cached" if r.cached else "")
        elif r.cached:
            self.progress.set(r.name, "cached", "" if r.has_records else "no result records")
        elif r.status == "ok":
            self.progress.set(r.name, "ok", f"{r.duration:.1f}s" + ("" if r.has_records else ", no result records"))
        else:
            self.progress.set(r.name, r.status, r.reason)
