"""One workload's forward measurement: inputs → reference → prepare → first call → check → warm-up → memory → timer
(L2-cold rotation for memory-bound ops) → adaptive reps → record. The backward modes: opbench.backward."""

from __future__ import annotations

import sys
from dataclasses import replace

from opbench import refstore
from opbench.accuracy import Accuracy, tolerance_for
from opbench.clocks import probe_for
from opbench.errors import HarnessError
from opbench.record import L2, Clocks, Env, Record
from opbench.reps import Phases, clocked_reps, warm_up
from opbench.schema import l2_resident
from opbench.stats import Latency, summarize
from opbench.suite import Workload

ROTATE_L2_MULTIPLE = 3  # memory-bound ops: the rotated input copies hold at least this many times the L2
MAX_COPIES = 1024  # with a flush before each replay, any copies >= calls per replay keep it cold too


def l2_plan(backend, wl: Workload, args: tuple, opts) -> tuple[int, L2]:
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


def measure(backend, fn, impl: str, tags: dict, env: Env, wl: Workload, opts, peak: float | None,
            clock: Phases | None = None) -> Record:
    """Measure one workload's forward; raises whatever the impl raises (the caller turns it into an error record).
    clock (made here if None) is marked after each step."""
    spec = wl.spec
    finish = opts.finish or (lambda out: out)
    clock = Phases(f"{impl} {wl.name}") if clock is None else clock
    inputs = backend.inputs(wl)
    clock.mark("inputs", "inputs_s")
    ref = refstore.reference(backend, inputs, wl)  # before the impl runs: one that writes its inputs can't bend it
    clock.mark("reference", "reference_s")
    args = tuple(opts.prepare(*inputs, wl)) if opts.prepare else tuple(spec.args(inputs, wl))
    out, compile_ms = backend.first_call(fn, args)
    tol = tolerance_for(wl.dtype, opts.tolerance, spec.tolerance)
    acc = backend.check(finish(out), ref, tol, spec.layout)
    del out
    clock.mark("prepare+first call+check", "first_call_s")
    warm_up(backend, fn, args, opts.warmup(backend.has_cuda))
    peak_bytes = backend.peak_bytes(fn, args)
    clock.mark("warm-up+memory", "warmup_s")
    copies, l2 = l2_plan(backend, wl, args, opts)
    timer = backend.timer(fn, args, opts.graph_safe, copies)
    if timer.note:
        print(f"{impl} {wl.name}: {timer.note}", file=sys.stderr)
    clock.mark(f"{timer.mode} setup", "setup_s")
    raw, cold, clk = clocked_reps(timer, opts, backend.has_cuda, probe_for(backend), clock)
    if timer.graph_out is not None and not opts.inplace:  # what the replays computed must be right too
        acc = acc.worse(backend.check(finish(timer.graph_out), ref, tol, spec.layout))
    lat = summarize(raw, timer.mode, timer.calls, cold)
    del timer  # its graphs and input copies: free before the next workload
    clock.mark("check", "check_s")
    clock.report()
    return rated(impl, wl, tags, env, lat, compile_ms, peak_bytes, l2, acc, peak, wl.flops, wl.bytes,
                 None if acc.ok else verdict_reason(acc), clocks=clk)


def rated(impl: str, wl: Workload, tags: dict, env: Env, lat: Latency, compile_ms: float, peak_bytes: int | None,
          l2: L2, acc: Accuracy, peak: float | None, flops: float, nbytes: float, reason: str | None,
          mode: str = "fwd", grad_err: dict | None = None, clocks: Clocks | None = None) -> Record:
    """The ok record of a measurement: TFLOP/s and GB/s of the timed call's work from the median, against the
    device's measured ceilings (GB/s not as a memory throughput where the result is L2-resident)."""
    seconds = lat.p50 * 1e-3
    tflops = flops / seconds / 1e12 if lat.p50 > 0 else None
    gbps = nbytes / seconds / 1e9 if lat.p50 > 0 else None
    bandwidth = env.copy_gbps
    if l2_resident(gbps, bandwidth, l2.to_json()):
        l2 = replace(l2, resident=True)
    return Record(
        impl, wl, "ok", tags, env, lat_ms=lat, compile_ms=compile_ms, peak_bytes=peak_bytes,
        tflops=tflops, pct_peak=100.0 * tflops / peak if tflops and peak else None,
        gbps=gbps, pct_bandwidth=100.0 * gbps / bandwidth if gbps and bandwidth and not l2.resident else None,
        l2=l2, ok=acc.ok, err=acc, reason=reason, mode=mode, grad_err=grad_err, clocks=clocks,
    )


def verdict_reason(acc: Accuracy, what: str = "output") -> str:
    if not acc.finite:
        return f"{what} contains NaN or Inf"
    return f"{what} differs from the fp32 reference: rel_l2 {acc.rel_l2:.3g} > tol {acc.tol:.3g}"
