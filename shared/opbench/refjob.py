"""`python -m opbench.refjob`: every fp32 reference of a suite, computed once, into $ORCH_OUT (opbench.refstore).

The orchestrator runs it in a torch job's env, beside the suite's first job on a device; it reads the variables a
job gets ($ORCH_OP, $ORCH_WORKLOADS, $ORCH_MODE) and runs the harness alone. Like a job, it imports torch before it
asks for the device (opbench.gate), and it draws each workload's host inputs on a thread while the GPU computes the
one before, so the device is held for little more than the GPU work. The inputs are drawn and rounded as in every
job (TorchBackend.on_device), the references computed by the functions a job falls back to. Exit 77 (nothing written)
where torch cannot run; a workload whose reference fails (out of memory) is left out of the set, said on stderr,
and the jobs compute that one themselves.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def kinds_for(modes) -> list[str]:
    """fwd: the forward's output (modes fwd, fwd_bwd); grad: the gradients (bwd, fwd_bwd)."""
    return [k for k, wanted in (("fwd", {"fwd", "fwd_bwd"}), ("grad", {"bwd", "fwd_bwd"})) if wanted & set(modes)]


def main() -> int:
    from concurrent.futures import ThreadPoolExecutor

    from opbench import gate, refstore, script
    from opbench.errors import HarnessError, one_line
    from opbench.inputs import host_inputs
    from opbench.runner import SKIP_EXIT, USER_ERROR_EXIT
    from opbench.suite import load_suite

    out = Path(os.environ.get("ORCH_OUT") or os.getcwd())
    try:
        op = script.op_name(None)
        modes = script.modes()
        suite = load_suite(os.environ.get("ORCH_WORKLOADS") or "smoke", op)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT
    try:
        from opbench.torch_backend import TorchBackend

        backend = TorchBackend.create()
    except Exception as exc:  # no torch in this env (a JAX impl's): another env makes the set
        print(f"references: torch is not usable here: {one_line(exc)}", file=sys.stderr)
        return SKIP_EXIT
    env = backend.env()
    writer = refstore.Writer(out, {"op": op, "suite": suite.name, "modes": list(modes),
                                   "made_by": {"device": env.device, "torch": env.torch, "python": env.python}})
    kinds = kinds_for(modes)

    def draw(wl):
        grads = "grad" in kinds and wl.spec.grads and "torch" in wl.spec.grad_reference
        return host_inputs(wl), (wl.spec.upstream(wl) if grads else None)

    t_all = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        drawn = pool.submit(draw, suite.workloads[0])
        waited = gate.acquire()  # imported and drawing: only the GPU work holds the device
        try:
            for i, wl in enumerate(suite.workloads):
                t0 = time.perf_counter()
                host, dys_host = drawn.result()
                if i + 1 < len(suite.workloads):
                    drawn = pool.submit(draw, suite.workloads[i + 1])
                store(backend, writer, wl, host, dys_host, kinds)
                host = dys_host = ()
                print(f"references: {i + 1}/{len(suite.workloads)} {wl.name} ({time.perf_counter() - t0:.2f}s)",
                      file=sys.stderr)
        finally:
            gate.release()
    writer.close()
    print(f"references: {len(writer.index['entries'])} stored for {op} {suite.name} ({', '.join(kinds)}) in "
          f"{time.perf_counter() - t_all:.1f}s (waited {waited:.1f}s for the device)", file=sys.stderr)
    return 0


def store(backend, writer, wl, host, dys_host, kinds) -> None:
    """One workload's references into the set; a failure leaves it out (the jobs compute it themselves)."""
    from opbench.errors import one_line

    for kind in kinds:
        if kind == "grad" and dys_host is None:
            continue  # the op has no torch gradient reference
        value = None
        try:
            inputs = backend.on_device(host, wl)
            if kind == "fwd":
                ref = backend.reference(inputs, wl)
                value = tuple(t.cpu().numpy() for t in ref) if isinstance(ref, tuple) else ref.cpu().numpy()
            else:
                grads = backend.grad_reference(inputs, backend.on_device(dys_host, wl), wl)
                value = {n: t.cpu().numpy() for n, t in grads.items()}
            writer.add(wl, kind, value)
        except Exception as exc:
            print(f"references: {wl.name} {kind}: left out: {one_line(exc)}", file=sys.stderr)
        finally:
            inputs = value = None
            backend.release()


if __name__ == "__main__":
    sys.exit(main())
