"""One workload's backward measurement (mode bwd: the backward alone, over the retained graph of a forward run
outside the timed region; fwd_bwd: the forward and the backward), framework-neutral: the backend's grad task says
how (opbench.torch_backward, opbench.jax_backend).

inputs and the seeded upstream gradient → the fp32 reference's gradients → first call → every gradient checked
against its reference (GRAD_TOL_FACTOR × the forward's tolerance; fwd_bwd checks the output too) → warm-up → memory →
timer (L2-cold rotation: every input copy with its own forward) → adaptive reps → the replays' gradients checked →
record (mode, grad_err per gradient, the worst as `err`, the mode's work counts).
"""

from __future__ import annotations

import sys

from opbench import refstore
from opbench.accuracy import Accuracy, tolerance_for
from opbench.clocks import probe_for
from opbench.measure import l2_plan, rated, verdict_reason
from opbench.record import Env, Record
from opbench.reps import Phases, clocked_reps, warm_up
from opbench.stats import summarize
from opbench.suite import Workload

GRAD_TOL_FACTOR = 2.0  # gradients pass at this many times the forward's rel-L2 tolerance (they compound its rounding)


def check_grads(backend, grads: dict, ref: dict, tol: float, layout: str) -> tuple[Accuracy, str, dict]:
    """Each gradient against its reference: (the worst verdict, its gradient's name, {name: rel_l2})."""
    worst: Accuracy | None = None
    worst_name = ""
    per: dict = {}
    for name, want in ref.items():
        if name not in grads:
            raise ValueError(f"no gradient {name} from the impl")
        acc = backend.check(grads[name], want, tol, f"({name}, shaped like its input)")
        per[name] = acc.rel_l2
        if worst is None or _worse(acc, worst):
            worst, worst_name = acc, name
    assert worst is not None, "an op with a backward has gradients"
    return worst, worst_name, per


def _worse(a: Accuracy, b: Accuracy) -> bool:
    """a is a worse verdict than b: failing where b passes, else the larger rel_l2 (None, non-finite, is worst)."""
    if a.ok != b.ok:
        return not a.ok
    return a.rel_l2 is None or (b.rel_l2 is not None and a.rel_l2 > b.rel_l2)


def merge(per: dict, again: dict) -> dict:
    """Per gradient, the worse of two checks (first call, graph replay)."""
    def pick(a, b):
        return None if a is None or b is None else max(a, b)

    return {n: pick(per[n], again.get(n, per[n])) for n in per}


def measure_grad(backend, fn, impl: str, tags: dict, env: Env, wl: Workload, opts, peak: float | None,
                 mode: str, clock: Phases | None = None) -> Record:
    """Measure one workload's backward in `mode` (bwd | fwd_bwd); raises whatever the impl raises. clock (made here
    if None) is marked after each step."""
    spec = wl.spec
    clock = Phases(f"{impl} {wl.name} [{mode}]") if clock is None else clock
    inputs = backend.inputs(wl)
    dys = backend.upstream(wl)
    clock.mark("inputs", "inputs_s")
    ref = refstore.grad_reference(backend, inputs, dys, wl)  # before the impl runs, like the forward's reference
    fwd_ref = refstore.reference(backend, inputs, wl) if mode == "fwd_bwd" else None
    clock.mark("reference", "reference_s")
    task = backend.grad_task(fn, inputs, dys, wl, opts.prepare, opts.finish, mode, opts.inplace)
    grads, out, compile_ms = task.first()
    tol = tolerance_for(wl.dtype, opts.tolerance, spec.tolerance)
    acc, name, per = check_grads(backend, grads, ref, GRAD_TOL_FACTOR * tol, spec.layout)
    reason = None if acc.ok else verdict_reason(acc, f"gradient {name}")
    if out is not None:
        fwd_acc = backend.check(out, fwd_ref, tol, spec.layout)
        if acc.ok and not fwd_acc.ok:
            reason = verdict_reason(fwd_acc)
        acc = acc.worse(fwd_acc)
    del grads, out
    clock.mark("prepare+first call+check", "first_call_s")
    warm_up(backend, task.call, (), opts.warmup(backend.has_cuda))
    peak_bytes = task.peak_bytes()
    clock.mark("warm-up+memory", "warmup_s")
    copies, l2 = l2_plan(backend, wl, task.moved, opts)
    timer = task.timer(opts.graph_safe, copies)
    if timer.note:
        print(f"{impl} {wl.name} [{mode}]: {timer.note}", file=sys.stderr)
    clock.mark(f"{timer.mode} setup", "setup_s")
    raw, cold, clk = clocked_reps(timer, opts, backend.has_cuda, probe_for(backend), clock)
    if timer.graph_out is not None and not (opts.inplace or opts.grad_inplace):  # the replays' gradients too
        again, again_name, again_per = check_grads(backend, task.canonical(timer.graph_out), ref,
                                                   GRAD_TOL_FACTOR * tol, spec.layout)
        per = merge(per, again_per)
        if acc.ok and not again.ok:
            reason = verdict_reason(again, f"gradient {again_name} (graph replay)")
        acc = acc.worse(again)
    lat = summarize(raw, timer.mode, timer.calls, cold)
    del timer, task  # graphs, retained forwards and input copies: free before the next workload
    clock.mark("check", "check_s")
    clock.report()
    flops, nbytes = spec.work(wl, mode)
    return rated(impl, wl, tags, env, lat, compile_ms, peak_bytes, l2, acc, peak, flops, nbytes, reason,
                 mode=mode, grad_err=per, clocks=clk)
