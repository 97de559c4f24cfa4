"""`run()`: the whole life of one impl's job, as a short pipeline.

settings → backend → suite (the op's) → skip? → per workload (inputs → reference → first call → check →
warm-up → memory → timer (L2-cold rotation for memory-bound ops) → adaptive reps → record) → exit code.
A workload that raises becomes an `error` record and the run goes on; an impl that cannot run here at all
becomes `skipped` records and exit 77.
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

from opbench import output, script
from opbench.accuracy import Accuracy, Tolerance, tolerance_for
from opbench.envinfo import package_versions, python_version
from opbench.errors import HarnessError, Skip, one_line
from opbench.record import L2, Env, Record
from opbench.schema import l2_resident
from opbench.stats import median_stable, summarize
from opbench.suite import Suite, Workload, load_suite

SKIP_EXIT = 77
COLD_REPS = 25  # single-call replays after an L2 flush, for lat_ms.cold_p50
ROTATE_L2_MULTIPLE = 3  # memory-bound ops: the rotated input copies hold at least this many times the L2
MAX_COPIES = 1024  # with a flush before each replay, any copies >= calls per replay keep it cold too
USER_ERROR_EXIT = 2


@dataclass(frozen=True)
class Options:
    """How to call and measure the impl; see `run` for each field."""

    prepare: Callable | None = None
    finish: Callable | None = None
    graph_safe: bool = True
    inplace: bool = False  # fn overwrites its inputs: only the first call's output can be checked
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
    **measure: Any,
) -> int:
    """Benchmark `fn` on every workload of the suite; write $ORCH_OUT/results.jsonl; return the exit code.

    The op ($ORCH_OP from the script's `[tool.orchestrator] op`, else `op`, else attention) says what the inputs
    are: fn(*prepare(*inputs, wl)) — or fn(*op.args(inputs, wl)) without prepare, e.g. fn(q, k, v, causal) for
    attention, fn(x, weight, eps) for rms_norm — returns the output; finish(out) turns it into the op's canonical
    layout for the check. prepare and finish are never timed. check() raises Skip (or ImportError) when the impl
    cannot run here. tolerance: rel-L2 bound, a number or {dtype: number}. measure: warmup_s, settle_s,
    time_cap_s, l2 ("cold" | "hot"), rel_ci, min_reps, max_reps.
    """
    try:
        opts = Options(prepare=prepare, finish=finish, graph_safe=graph_safe, inplace=inplace, tolerance=tolerance,
                       **measure)
        path = script.calling_script()
        impl = script.impl_name(path, name)
        tags = script.resolve_tags(path, tags)
        op_name = script.op_name(op)
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
    if reason:
        records = [Record(impl, wl, "skipped", tags, env, reason=reason) for wl in suite.workloads]
        output.write_skipped(out_dir, records, reason)
        print(f"{impl}: skipped: {reason}", file=sys.stderr)
        return SKIP_EXIT
    return run_suite(backend, fn, impl, tags, env, suite, opts, out_dir)


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


def run_suite(backend, fn, impl, tags, env, suite: Suite, opts: Options, out_dir: Path) -> int:
    spec = suite.workloads[0].spec
    peak, bandwidth = ceilings(backend, impl, spec.memory_bound)
    env = replace(env, peak_tflops=peak, copy_gbps=bandwidth)
    with output.ResultsWriter(out_dir) as results:
        for wl in suite.workloads:
            try:
                record = measure(backend, fn, impl, tags, env, wl, opts, peak)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                record = Record(impl, wl, "error", tags, env, reason=one_line(exc))
            finally:
                backend.release()
            results.write(record)
            print(output.summary_line(record), flush=True)
    return 0


def l2_plan(backend, wl: Workload, args: tuple, opts: Options) -> tuple[int, L2]:
    """How many argument copies the timed calls rotate through, and the L2 policy the record states.

    cold (memory-bound ops' default): enough copies that one round is ROTATE_L2_MULTIPLE times the L2, so no call
    finds its inputs there (one copy when a call alone moves that much); hot: the inputs are reused by every call
    of a replay (each replay still starts after an L2 flush, so its first call is cold)."""
    policy = opts.l2 or ("cold" if wl.spec.memory_bound else "hot")
    if policy not in ("cold", "hot"):
        raise HarnessError(f"l2={policy!r}: expected 'cold' or 'hot'")
    l2 = backend.l2_bytes() if hasattr(backend, "l2_bytes") else None
    if not l2:
        return 1, L2(policy, "host clock, no L2 control" if not backend.has_cuda else "L2 size unknown")
    if policy == "hot":
        return 1, L2("hot", "inputs reused by the calls of a replay; L2 flushed before each replay")
    moved = max(backend.tensor_bytes(args), 1)
    if moved >= ROTATE_L2_MULTIPLE * l2:
        return 1, L2("cold", f"one call's inputs exceed {ROTATE_L2_MULTIPLE}x the {l2 >> 20} MiB L2")
    copies = min(MAX_COPIES, -(-ROTATE_L2_MULTIPLE * l2 // moved))
    return copies, L2("cold", f"calls rotate through {copies} input copies ({copies * moved / l2:.1f}x the "
                      f"{l2 >> 20} MiB L2)", copies=copies)


def measure(backend, fn, impl: str, tags: dict, env: Env, wl: Workload, opts: Options, peak: float | None) -> Record:
    """Measure one workload; raises whatever the impl raises (the caller turns it into an error record)."""
    spec = wl.spec
    finish = opts.finish or (lambda out: out)
    clock = Phases(f"{impl} {wl.name}")
    inputs = backend.inputs(wl)
    clock.mark("inputs")
    ref = backend.reference(inputs, wl)  # before the impl runs: an impl that writes its inputs can't bend it
    clock.mark("reference")
    args = tuple(opts.prepare(*inputs, wl)) if opts.prepare else tuple(spec.args(inputs, wl))
    out, compile_ms = backend.first_call(fn, args)
    tol = tolerance_for(wl.dtype, opts.tolerance, spec.tolerance)
    acc = backend.check(finish(out), ref, tol, spec.layout)
    del out
    clock.mark("prepare+first call+check")
    warm_up(backend, fn, args, opts.warmup(backend.has_cuda))
    peak_bytes = backend.peak_bytes(fn, args)
    clock.mark("warm-up+memory")
    copies, l2 = l2_plan(backend, wl, args, opts)
    timer = backend.timer(fn, args, opts.graph_safe, copies)
    if timer.note:
        print(f"{impl} {wl.name}: {timer.note}", file=sys.stderr)
    clock.mark(f"{timer.mode} setup")
    raw, cold = timed_reps(timer, opts, backend.has_cuda)
    if timer.graph_out is not None and not opts.inplace:  # what the replays computed must be right too
        acc = acc.worse(backend.check(finish(timer.graph_out), ref, tol, spec.layout))
    lat = summarize(raw, timer.mode, timer.calls, cold)
    del timer  # its graphs and input copies: free before the next workload
    clock.mark("reps")
    clock.report()
    seconds = lat.p50 * 1e-3
    tflops = wl.flops / seconds / 1e12 if lat.p50 > 0 else None
    gbps = wl.bytes / seconds / 1e9 if lat.p50 > 0 else None
    bandwidth = env.copy_gbps
    if l2_resident(gbps, bandwidth, l2.to_json()):
        l2 = replace(l2, resident=True)
    return Record(
        impl, wl, "ok", tags, env, lat_ms=lat, compile_ms=compile_ms, peak_bytes=peak_bytes,
        tflops=tflops, pct_peak=100.0 * tflops / peak if tflops and peak else None,
        gbps=gbps, pct_bandwidth=100.0 * gbps / bandwidth if gbps and bandwidth and not l2.resident else None,
        l2=l2, ok=acc.ok, err=acc, reason=None if acc.ok else verdict_reason(acc),
    )


class Phases:
    """Wall time of each step of a workload, printed to stderr when OPBENCH_VERBOSE is set (where time goes)."""

    def __init__(self, label: str):
        self.label, self.t = label, time.perf_counter()
        self.spent: list[str] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.spent.append(f"{name} {now - self.t:.2f}s")
        self.t = now

    def report(self) -> None:
        if os.environ.get("OPBENCH_VERBOSE"):
            print(f"{self.label}: " + ", ".join(self.spent), file=sys.stderr)


def warm_up(backend, fn, args, seconds: float) -> None:
    """Call until `seconds` have passed (at least twice): clocks, caches, lazy plans settle before timing."""
    t0 = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - t0 < seconds:
        backend.call(fn, args)
        backend.sync()
        calls += 1


def timed_reps(timer, opts: Options, cuda: bool) -> tuple[list[float], list[float] | None]:
    """A workload's recorded times: settle, adaptive reps, then the cold single calls (graph mode only; when a
    replay holds one call, its reps already are those). benchmarks/fidelity.py times through this too."""
    settle(timer.run, opts.settle(cuda))
    raw = adaptive_reps(timer.run, opts, cuda)
    if timer.cold:
        return raw, timer.cold(COLD_REPS)
    return raw, (raw if timer.mode == "graph" else None)


def settle(run_reps: Callable[[int], list[float]], seconds: float) -> None:
    """Run the timed pattern itself, unrecorded, for `seconds`: the GPU's clocks leave idle (or the warm-up's
    host-gapped load) and reach the steady state of back-to-back work before the first recorded rep."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run_reps(5)


def adaptive_reps(run_reps: Callable[[int], list[float]], opts: Options, cuda: bool) -> list[float]:
    """Reps in batches until the median's 95% CI is within ±rel_ci, max_reps, or the time cap (≥ 5 reps)."""
    t0 = time.perf_counter()
    raw = run_reps(3)
    per_rep = max((time.perf_counter() - t0) / 3, 1e-6)  # wall time of a rep (flush and batching included)
    batch = int(min(100, max(5, 0.05 / per_rep)))  # about 50 ms per batch between checks of the stopping rule
    cap = opts.time_cap(cuda)
    while len(raw) < opts.max_reps:
        if median_stable(raw, opts.rel_ci, opts.min_reps):
            break
        if time.perf_counter() - t0 >= cap and len(raw) >= 5:
            break
        raw += run_reps(min(batch, opts.max_reps - len(raw)))
    return raw


def verdict_reason(acc: Accuracy) -> str:
    if not acc.finite:
        return "output contains NaN or Inf"
    return f"output differs from the fp32 reference: rel_l2 {acc.rel_l2:.3g} > tol {acc.tol:.3g}"
