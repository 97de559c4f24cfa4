"""`run()`: the whole life of one impl's job, as a short pipeline.

settings → backend → suite (the op's) and modes ($ORCH_MODE) → skip? → the GPU's lock (opbench.gate) → per workload,
per mode (the forward: opbench.measure; the backward modes: opbench.backward) → record → exit code. A workload that
raises becomes an `error` record and the run goes on; an impl that cannot run here at all becomes `skipped` records
and exit 77, and so does one without a backward asked only for backward modes (with one mode it can run, its other
records are `skipped` with the reason, exit 0).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from opbench import gate, output, script
from opbench.accuracy import Tolerance
from opbench.envinfo import package_versions, python_version
from opbench.errors import HarnessError, Skip, one_line
from opbench.measure import MAX_COPIES, ROTATE_L2_MULTIPLE, l2_plan, measure, verdict_reason
from opbench.phases import PhaseLog, process_age
from opbench.record import Env, Record
from opbench.reps import COLD_REPS, Phases, adaptive_reps, settle, timed_reps, warm_up
from opbench.suite import Suite, load_suite

SKIP_EXIT = 77
USER_ERROR_EXIT = 2
# what other code imports from here (the per-workload steps live in opbench.measure and opbench.reps)
__all__ = ["COLD_REPS", "MAX_COPIES", "ROTATE_L2_MULTIPLE", "SKIP_EXIT", "Options", "Phases", "adaptive_reps",
           "l2_plan", "measure", "run", "settle", "timed_reps", "verdict_reason", "warm_up"]


@dataclass(frozen=True)
class Options:
    """How to call and measure the impl; see `run` for each field."""

    prepare: Callable | None = None
    finish: Callable | None = None
    graph_safe: bool = True
    inplace: bool = False  # fn overwrites its inputs: only the first call's output can be checked
    backward: str | None = None  # None: differentiable through autograd; a string: why it has no backward
    grad_inplace: bool = False  # its backward overwrites dy or the forward's saved inputs: first call checked only
    tolerance: Tolerance = None
    warmup_s: float | None = None
    time_cap_s: float | None = None
    settle_s: float | None = None
    l2: str | None = None  # "cold" or "hot"; None: the op's default (cold for memory-bound ops)
    rel_ci: float = 0.01
    min_reps: int = 10
    max_reps: int = 2000

    def warmup(self, cuda: bool) -> float:
        return self.warmup_s if self.warmup_s is not None else (0.2 if cuda else 0.05)

    def settle(self, cuda: bool) -> float:
        return self.settle_s if self.settle_s is not None else (0.5 if cuda else 0.0)

    def time_cap(self, cuda: bool) -> float:
        return self.time_cap_s if self.time_cap_s is not None else (2.0 if cuda else 0.5)


def run(
    fn: Callable,
    *,
    op: str | None = None,
    name: str | None = None,
    tags: dict | None = None,
    prepare: Callable | None = None,
    finish: Callable | None = None,
    graph_safe: bool = True,
    inplace: bool = False,
    tolerance: Tolerance = None,
    requires_cuda: bool = True,
    check: Callable[[], Any] | None = None,
    framework: str = "torch",
    packages: tuple[str, ...] = (),
    backward: str | None = None,
    grad_inplace: bool = False,
    **measure: Any,
) -> int:
    """Benchmark `fn` on every workload of the suite; write $ORCH_OUT/results.jsonl; return the exit code.

    The op ($ORCH_OP from the script's `[tool.orchestrator] op`, else `op`, else attention) says what the inputs
    are: fn(*prepare(*inputs, wl)) — or fn(*op.args(inputs, wl)) without prepare, e.g. fn(q, k, v, causal) for
    attention, fn(x, weight, eps) for rms_norm — returns the output; finish(out) turns it into the op's canonical
    layout for the check. prepare and finish are never timed. check() raises Skip (or ImportError) when the impl
    cannot run here. tolerance: rel-L2 bound, a number or {dtype: number}. measure: warmup_s, settle_s,
    time_cap_s, l2 ("cold" | "hot"), rel_ci, min_reps, max_reps.

    The modes ($ORCH_MODE, a comma list of fwd, bwd, fwd_bwd; default fwd) say what is timed: the forward, the
    backward alone, or both. backward=None: fn is differentiable (autograd, jax.vjp); a string says why it has no
    backward, and its bwd and fwd_bwd records are `skipped` with that reason. grad_inplace: its backward rewrites
    the upstream gradient or the forward's saved inputs (Liger's do), so only its first call's gradients are checked.
    """
    try:
        opts = Options(prepare=prepare, finish=finish, graph_safe=graph_safe, inplace=inplace, tolerance=tolerance,
                       backward=backward, grad_inplace=grad_inplace, **measure)
        path = script.calling_script()
        impl = script.impl_name(path, name)
        tags = script.resolve_tags(path, tags)
        op_name = script.op_name(op)
        modes = script.modes()
        out_dir = Path(os.environ.get("ORCH_OUT") or os.getcwd())
        backend, reason = make_backend(framework)
        suite = load_suite(os.environ.get("ORCH_WORKLOADS") or ("seed" if backend and backend.has_cuda else "smoke"), op_name)
        if suite.op != op_name:
            raise HarnessError(f"{suite.path}: a suite of op {suite.op!r}; this impl is a {op_name!r} impl")
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    env = backend.env(tuple(packages)) if backend else bare_env(packages)
    reason = reason or skip_reason(backend, requires_cuda, check)
    spec = suite.workloads[0].spec
    if not reason and all(no_backward(spec, opts, m) for m in modes):
        reason = no_backward(spec, opts, modes[0])
    if reason:
        records = [Record(impl, wl, "skipped", tags, env, reason=reason, mode=m) for wl in suite.workloads
                   for m in modes]
        output.write_skipped(out_dir, records, reason)
        print(f"{impl}: skipped: {reason}", file=sys.stderr)
        return SKIP_EXIT
    ready_s = process_age()  # started, imported, checked: only now does the job need its GPU
    waited = gate.acquire()  # the GPU's lock (orchestrator/run/gate.py); another job may have been timing till now
    try:
        return run_suite(backend, fn, impl, tags, env, suite, opts, out_dir, modes, ready_s, waited)
    finally:
        gate.release()


def no_backward(spec, opts: Options, mode: str) -> str | None:
    """Why this impl cannot run `mode` (of op `spec`): it declared no backward, or the op defines none; else None."""
    if mode == "fwd":
        return None
    if opts.backward is not None:
        return f"no backward: {opts.backward}"
    if not spec.grads:
        return f"no backward: op {spec.name} defines no gradients"
    return None


def make_backend(framework: str):
    """(backend, None), or (None, reason) when the framework cannot even be imported here."""
    if framework not in ("torch", "jax"):
        raise HarnessError(f"opbench.run(framework={framework!r}): expected 'torch' or 'jax'")
    try:
        if framework == "jax":
            from opbench.jax_backend import JaxBackend

            return JaxBackend.create(), None
        from opbench.torch_backend import TorchBackend

        return TorchBackend.create(), None
    except Exception as exc:
        return None, f"{framework} is not usable here: {one_line(exc)}"


def bare_env(packages) -> Env:
    return Env(device="unknown", sm=None, driver=None, cuda=None, torch=None, python=python_version(),
               packages=package_versions(tuple(packages)))


def skip_reason(backend, requires_cuda: bool, check: Callable | None) -> str | None:
    """Why this impl cannot run here at all, or None. ImportError from check counts as a missing package."""
    if requires_cuda and not backend.has_cuda:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        return f"requires CUDA; no CUDA device is visible{shown}"
    if check is None:
        return None
    try:
        check()
    except Skip as exc:
        return str(exc) or "skipped by the impl's check"
    except ImportError as exc:
        return f"package not importable here: {one_line(exc)}"
    return None


def ceilings(backend, impl: str, memory_bound: bool) -> tuple[float | None, float | None]:
    """(matmul peak TFLOP/s, copy GB/s) of the device, each measured once per device and cached; the copy
    bandwidth only where an op is memory-bound. A failure leaves the ratio null; the timings are still good."""
    peak = bandwidth = None
    try:
        peak = backend.peak_tflops()
    except Exception as exc:
        print(f"{impl}: could not measure the bf16 matmul peak: {one_line(exc)}", file=sys.stderr)
    if memory_bound and hasattr(backend, "copy_gbps"):
        try:
            bandwidth = backend.copy_gbps()
        except Exception as exc:
            print(f"{impl}: could not measure the copy bandwidth: {one_line(exc)}", file=sys.stderr)
    return peak, bandwidth


def run_suite(backend, fn, impl, tags, env, suite: Suite, opts: Options, out_dir: Path,
              modes: tuple[str, ...], ready_s: float, gate_wait_s: float) -> int:
    spec = suite.workloads[0].spec
    log = PhaseLog(out_dir, ready_s, gate_wait_s)  # $ORCH_OUT/phases.json: where the job's time went
    t0 = time.perf_counter()
    peak, bandwidth = ceilings(backend, impl, spec.memory_bound)
    log.ceilings(time.perf_counter() - t0)
    env = replace(env, peak_tflops=peak, copy_gbps=bandwidth)
    with output.ResultsWriter(out_dir) as results:
        for wl in suite.workloads:
            for mode in modes:
                clock = Phases(f"{impl} {wl.name}" + ("" if mode == "fwd" else f" [{mode}]"))
                results.write(measure_mode(backend, fn, impl, tags, env, wl, opts, peak, mode, clock))
                log.add(wl.name, mode, clock.seconds)
    return 0


def measure_mode(backend, fn, impl, tags, env, wl, opts: Options, peak, mode: str,
                 clock: Phases | None = None) -> Record:
    """One workload in one mode: measured, skipped (no backward) or an error record; its line printed. clock
    gets the seconds of each step taken (all 0.0 for a skipped one)."""
    why = no_backward(wl.spec, opts, mode)
    if why:
        record = Record(impl, wl, "skipped", tags, env, reason=why, mode=mode)
    else:
        try:
            if mode == "fwd":
                record = measure(backend, fn, impl, tags, env, wl, opts, peak, clock)
            else:
                from opbench.backward import measure_grad

                record = measure_grad(backend, fn, impl, tags, env, wl, opts, peak, mode, clock)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            record = Record(impl, wl, "error", tags, env, reason=one_line(exc), mode=mode)
        finally:
            backend.release()
    print(output.summary_line(record), flush=True)
    return record
