"""One job's life after planning: environment, variables, run, output checks, manifest, commit."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from orchestrator.cache.outputs import UPSTREAMS_FILE, check_outputs, harness_phases, has_records, hash_outputs
from orchestrator.cache.store import Manifest, recorded_variables, remove_tree
from orchestrator.env.isolated import Env
from orchestrator.errors import StoreError
from orchestrator.executors.local import Launch, LocalExecutor
from orchestrator.frozen import dataclass
from orchestrator.model.context import Context
from orchestrator.model.mode import VARIABLE, mode_text
from orchestrator.run.plan import Planned
from orchestrator.run.stage import stage_settings

SKIP_EXIT = 77  # a script's "cannot run here" (the automake convention); reason in skipped.txt
SKIP_FILE = "skipped.txt"
DROPPED_VARS = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "CONDA_PREFIX",
                "OPBENCH_REFERENCES")  # the last: handed by the gate only (run/references.py), never inherited


@dataclass(frozen=True)
class Result:
    """How a job ended in this run. status: ok | skipped | failed; cached says it was not rerun."""

    name: str
    status: str
    reason: str = ""
    key: str | None = None
    entry: Path | None = None
    duration: float = 0.0
    cached: bool = False
    log_tail: str = ""

    @property
    def has_records(self) -> bool:
        """Whether an ok job left any result lines (a job that wrote none did nothing worth reporting)."""
        return self.entry is not None and has_records(self.entry)


HARNESS = "opbench-harness"  # the harness package (shared/): its jobs speak the gate (opbench.gate)


def gated(job) -> bool:
    """Whether a GPU job takes its device lock itself, when the harness asks for it, after its start and its check
    (run/gate.py): a job that uses the harness. Any other GPU job holds the lock from its start to its end."""
    return job.gpu and not job.stage and any(dep.name == HARNESS for dep in job.path_deps)


def artifact_var(name: str) -> str:
    return "ORCH_ARTIFACTS_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def result_of(p: Planned, manifest: Manifest, entry: Path, cached: bool) -> Result:
    return Result(p.job.name, manifest.status, manifest.reason, p.key, entry, manifest.duration, cached=cached)


class JobRunner:
    """Readies envs and runs planned jobs through an executor; commits what succeeded, never what failed.

    Stages (combine) run on a LocalExecutor of their own whatever runs the other jobs: they read committed entries
    in place, on this machine.
    """

    def __init__(self, ctx: Context, executor) -> None:
        self.ctx = ctx
        self.executor = executor
        self.stages = LocalExecutor()
        self.env_seconds: dict[str, float] = {}  # per job: how long readying its env took (its manifest's env_s)

    def executor_for(self, p: Planned):
        return self.stages if p.job.stage else self.executor

    def start(self, plans) -> None:
        """Let the executors of the jobs about to run connect (only now: a cached run never reaches one)."""
        for executor in {id(e): e for e in map(self.executor_for, plans)}.values():
            executor.start()

    def slot(self, p: Planned) -> str | None:
        """The local slot the job occupies while it runs (executors.local.CPU or GPU), None when its executor
        places it elsewhere."""
        return self.executor_for(p).slot(p.job)

    def ready_env(self, p: Planned, on_phase) -> Env:
        """The job's env as its executor needs it before the job starts: built here, or located (built where it runs)."""
        t0 = time.perf_counter()
        env = self.executor_for(p).env(self.ctx, p, on_phase)
        self.env_seconds[p.job.name] = time.perf_counter() - t0
        return env

    def cancel(self) -> None:
        from orchestrator.run.proc import kill_tools

        kill_tools()  # env builds under way stop now (their temporary folders are removed as they unwind)
        self.executor.cancel()
        self.stages.cancel()

    # -- environments -------------------------------------------------------------------------
    def env_of(self, p: Planned) -> Env:
        """Where the job's env is (built or not): pure, for reproduce and show."""
        return self.ctx.provider.env_for(p.job, p.lock_text, self.ctx)

    def build_env(self, p: Planned) -> Env:
        return self.ctx.provider.ensure_env(p.job, p.lock_text, self.ctx)

    # -- variables ----------------------------------------------------------------------------
    def variables(self, p: Planned, env: Env, upstream_entries: dict[str, Path], gpu_ids: tuple[str, ...]) -> dict[str, str]:
        """The variables a job sees beyond the parent environment (and that `reproduce` prints)."""
        job = p.job
        suite = self.ctx.suite_for(job)
        v = {
            "ORCH_IMPL": job.impl_name,  # a variant runs as its impl (the record's impl)
            "ORCH_OP": job.op,
            "ORCH_TAGS": json.dumps(job.tags, sort_keys=True),
            **({"ORCH_WORKLOADS": str(suite.path)} if suite and not job.stage else {}),
            "VIRTUAL_ENV": str(env.root),
            "PYTHONNOUSERSITE": "1",
        }
        mode = mode_text(self.ctx.modes)
        if mode is not None and not job.stage:  # absent: the forward, as every job before modes existed
            v[VARIABLE] = mode
        roots = [str(dep.root) for dep in job.path_deps]
        if roots:
            v["PYTHONPATH"] = os.pathsep.join(roots)
        for name, entry in sorted(upstream_entries.items()):
            v[artifact_var(name)] = str(entry)
        if job.stage:
            v.update(stage_settings(self.ctx))
        if not job.gpu:
            v["CUDA_VISIBLE_DEVICES"] = ""
        elif gpu_ids:
            v["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
        return v

    def launch(self, p: Planned, env: Env, variables: dict[str, str], gpu_ids: tuple[str, ...]) -> Launch:
        base = {k: v for k, v in os.environ.items() if k not in DROPPED_VARS}
        base["PATH"] = f"{env.root / 'bin'}{os.pathsep}{base.get('PATH', '')}"
        return Launch(
            name=p.job.name, argv=(str(env.python), str(p.job.script)), env={**base, **variables},
            timeout=p.job.timeout, gpu_ids=gpu_ids,
        )

    def reproduce_command(self, p: Planned, env: Env, variables: dict[str, str]) -> str:
        """One shell line that reruns the job standalone into a fresh folder, with the same variables."""
        import shlex

        assigns = " ".join(f"{k}={shlex.quote(val)}" for k, val in sorted(variables.items()))
        return (
            f'out="$(mktemp -d)" && cd "$out" && env -u PYTHONHOME ORCH_OUT="$out" {assigns} '
            f"{shlex.quote(str(env.python))} {shlex.quote(str(p.job.script))} && echo \"reproduced into $out\""
        )

    # -- running --------------------------------------------------------------------------------
    def run(self, p: Planned, env: Env, upstream_entries: dict[str, Path], gpu_ids: tuple[str, ...],
            upstreams_doc=None, waited: float = 0.0, lock: str | None = None, gate=None,
            handout=None) -> Result:
        """Run the job once and commit it if it ended ok or skipped. env is the one `ready_env` gave; lock: the
        device lock it holds here (a GPU id or the host's timing slot), which it waited `waited` seconds for — or,
        with a gate (run/gate.py), the lock the job takes when it asks for it. handout: what the gate hands the job
        with its GPU (run/references.py: the run's stored references, never in `reproduce`, which computes its own);
        after the run, a set it was handed that changed meanwhile fails it."""
        assert p.key is not None and p.inputs is not None, "a job runs only once keyed"
        store = self.ctx.store
        executor = self.executor_for(p)
        staging = store.new_staging(p.job.name, p.key)
        out, logs = staging / "out", staging / "logs"
        variables = self.variables(p, env, upstream_entries, gpu_ids)
        if upstreams_doc is not None:
            _write_or_drop(staging, out / UPSTREAMS_FILE, json.dumps(upstreams_doc, indent=1, sort_keys=True))
            variables["ORCH_UPSTREAMS"] = str(store.entry(p.job.name, p.key) / UPSTREAMS_FILE)
        launch = self.launch(p, env, {**variables, **_live(variables, out)}, gpu_ids)
        launch = executor.prepare(launch, self.ctx, p, env, upstream_entries)
        try:
            ran = executor.run(launch, out, logs, gate=gate)
        except BaseException:  # lost, or what came back is unusable: commit nothing, keep any logs that arrived
            if any(logs.iterdir()):
                store.keep_failure(staging, p.job.name)
            else:
                remove_tree(staging)
            raise
        finished = ran.finished
        if finished.cancelled:  # Ctrl-C, SIGTERM or SIGHUP: even a job that ended ok is not committed
            return self._failed(p, staging, finished.describe(), finished.duration)
        if ran.problem:  # it wrote into its sources or its env
            return self._failed(p, staging, ran.problem, finished.duration)
        if finished.returncode == 0:
            status, reason = "ok", ""
        elif finished.returncode == SKIP_EXIT and not finished.timed_out:
            status, reason = "skipped", _skip_reason(out, logs)
        else:
            return self._failed(p, staging, finished.describe(), finished.duration)
        problem = check_outputs(out, keep={UPSTREAMS_FILE} if upstreams_doc is not None else set())
        problem = problem or store.damaged_upstreams(upstream_entries)
        problem = problem or (handout.changed() if handout is not None else None)
        if problem:
            return self._failed(p, staging, problem, finished.duration)
        files = hash_outputs(out, logs)
        manifest = Manifest(
            name=p.job.name, key=p.key, inputs=p.inputs, status=status, reason=reason,
            started=finished.started, finished=finished.finished, returncode=finished.returncode,
            files=files, packages=env.packages() if ran.packages is None else ran.packages, device=self.ctx.device.to_json(),
            reproduce=self.reproduce_command(p, env, variables), runner={"env_id": env.env_id, **ran.where},
            variables=recorded_variables(launch.env),
            phases=self.phases(p, finished.duration, waited if gate is None else gate.waited_s, lock, out,
                               gate.held if gate is not None else None,
                               handout is not None and handout.handed is not None),
        )
        entry = store.commit(staging, manifest, replace=p.forced)
        return result_of(p, manifest, entry, cached=False)

    def phases(self, p: Planned, run_s: float, wait_s: float, lock: str | None, out: Path,
               held: tuple[float, float] | None = None, references: bool = False) -> dict:
        """Where the job's time went (never in its key): readying its env (a build, or the check of a reused
        one), waiting for its device lock (`lock`, null for none), its process's wall time; the harness's own steps
        from its phases.json, with start_s its process start to the harness ready to measure (null without one).
        A gated job (run/gate.py) also has `gated` true and `held`: the [start, end] epoch times it held the lock
        (null if it never asked); any other job held its lock for its whole process. `references` true: the job
        was handed the run's stored references (run/references.py)."""
        harness = harness_phases(out)
        ready = harness.get("ready_s") if harness else None
        start_s = float(ready) if isinstance(ready, (int, float)) and not isinstance(ready, bool) else None
        phases: dict = {"env_s": self.env_seconds.get(p.job.name, 0.0), "wait_s": wait_s, "run_s": run_s,
                        "start_s": start_s, "lock": lock}
        if lock is not None and gated(p.job):
            phases.update(gated=True, held=list(held) if held is not None else None, references=references)
        return {**phases, "harness": harness} if harness is not None else phases

    def _failed(self, p: Planned, staging: Path, reason: str, duration: float) -> Result:
        kept = self.ctx.store.keep_failure(staging, p.job.name)
        tail = (_tail(kept / "logs" / "stderr.log") or _tail(kept / "logs" / "stdout.log")) if kept else ""
        return Result(p.job.name, "failed", reason, p.key, None, duration, log_tail=tail)

    def commit_preskip(self, p: Planned) -> Result:
        """A job that cannot run here is recorded as skipped, without an env, so reports show why."""
        assert p.key is not None and p.inputs is not None and p.preskip is not None
        staging = self.ctx.store.new_staging(p.job.name, p.key)
        out = staging / "out"
        record = {"schema": 2, "op": p.job.op, "impl": p.job.name, "status": "skipped", "reason": p.preskip,
                  "tags": p.job.tags}  # schema 2 (opbench/schema.py); no `wl`: skipped before any workload
        _write_or_drop(staging, out / "results.jsonl", json.dumps(record, sort_keys=True) + "\n")
        _write_or_drop(staging, out / SKIP_FILE, p.preskip + "\n")
        now = time.time()
        manifest = Manifest(
            name=p.job.name, key=p.key, inputs=p.inputs, status="skipped", reason=p.preskip, started=now,
            finished=now, returncode=SKIP_EXIT, files=hash_outputs(out, staging / "logs"), packages=[],
            device=self.ctx.device.to_json(), reproduce="", runner={"executor": "none"},
        )
        entry = self.ctx.store.commit(staging, manifest, replace=True)
        return result_of(p, manifest, entry, cached=False)


def _write_or_drop(staging: Path, path: Path, text: str) -> None:
    """Write a file the orchestrator puts in a staging folder; on disk trouble drop the folder, say so in one line."""
    try:
        path.write_text(text)
    except OSError as exc:
        remove_tree(staging)
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None


def _live(variables: dict[str, str], out: Path) -> dict[str, str]:
    """Variables whose value differs between this run and a committed entry (the upstreams file's staging copy)."""
    if "ORCH_UPSTREAMS" in variables:
        return {"ORCH_UPSTREAMS": str(out / UPSTREAMS_FILE)}
    return {}


TAIL_BYTES = 64 * 1024  # a log tail is read from the end of the file, never the whole log (jobs may print GBs)
TAIL_LINE_CHARS = 500  # and each of its lines is cut to this
SKIP_REASON_BYTES = 4096


def _skip_reason(out: Path, logs: Path) -> str:
    try:
        with open(out / SKIP_FILE, "rb") as f:
            head = f.read(SKIP_REASON_BYTES)
        lines = head.decode("utf-8", errors="replace").strip().splitlines()
        if lines:
            return _cut(lines[0].strip())
    except OSError:
        pass
    return _tail(logs / "stderr.log", 1) or "skipped (no reason given)"


def _tail(path: Path, n: int = 20) -> str:
    """The last n lines of a log, read with one bounded read from its end; long lines are cut."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - TAIL_BYTES)
            f.seek(start)
            data = f.read(TAIL_BYTES)
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").rstrip().splitlines()
    if start > 0 and len(lines) > 1:
        lines = lines[1:]  # begins mid-line
    cut = [_cut(line) for line in lines[-n:]]
    if start > 0 and cut:
        cut[0] = "…" + cut[0]
    return "\n".join(cut)


def _cut(line: str) -> str:
    return line if len(line) <= TAIL_LINE_CHARS else f"{line[:TAIL_LINE_CHARS]}… (line cut)"
