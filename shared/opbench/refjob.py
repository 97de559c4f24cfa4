"""`python -m opbench.refjob`: every fp32 reference of a suite, computed once, into $ORCH_OUT (opbench.refstore).

The orchestrator runs it in a torch job's env, holding that job's device, before the suite's first job on it; it
reads the variables a job gets ($ORCH_OP, $ORCH_WORKLOADS, $ORCH_MODE) and runs the harness alone: the inputs are
drawn and rounded as in every job (TorchBackend.inputs), the references computed by the same functions a job falls
back to. Exit 77 (nothing written) where torch cannot run; a workload whose reference fails (out of memory) is left
out of the set, said on stderr, and the jobs compute that one themselves.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

SKIP_EXIT = 77


def main() -> int:
    from opbench import refstore, script
    from opbench.errors import HarnessError, one_line
    from opbench.suite import load_suite

    out = Path(os.environ.get("ORCH_OUT") or os.getcwd())
    try:
        op = script.op_name(None)
        modes = script.modes()
        suite = load_suite(os.environ.get("ORCH_WORKLOADS") or "smoke", op)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        from opbench.torch_backend import TorchBackend

        backend = TorchBackend.create()
    except Exception as exc:  # no torch in this env (a JAX impl's): another env makes the set
        print(f"references: torch is not usable here: {one_line(exc)}", file=sys.stderr)
        return SKIP_EXIT
    env = backend.env()
    writer = refstore.Writer(out, {"op": op, "suite": suite.name, "modes": list(modes),
                                   "made_by": {"device": env.device, "torch": env.torch, "python": env.python}})
    kinds = [k for k, wanted in (("fwd", {"fwd", "fwd_bwd"}), ("grad", {"bwd", "fwd_bwd"})) if wanted & set(modes)]
    t_all = time.perf_counter()
    for i, wl in enumerate(suite.workloads, 1):
        t0 = time.perf_counter()
        for kind in kinds:
            if kind == "grad" and (not wl.spec.grads or "torch" not in wl.spec.grad_reference):
                continue
            try:
                inputs = backend.inputs(wl)
                if kind == "fwd":
                    value = backend.reference(inputs, wl)
                    value = tuple(t.cpu().numpy() for t in value) if isinstance(value, tuple) else value.cpu().numpy()
                else:
                    value = {n: t.cpu().numpy() for n, t in backend.grad_reference(inputs, backend.upstream(wl), wl).items()}
                writer.add(wl, kind, value)
            except Exception as exc:  # the jobs compute this one themselves (and fail as honestly, if they must)
                print(f"references: {wl.name} {kind}: left out: {one_line(exc)}", file=sys.stderr)
            finally:
                inputs = value = ()  # freed before the next one
                backend.release()
        print(f"references: {i}/{len(suite.workloads)} {wl.name} ({time.perf_counter() - t0:.2f}s)", file=sys.stderr)
    writer.close()
    print(f"references: {len(writer.index['entries'])} stored for {op} {suite.name} "
          f"({', '.join(kinds)}) in {time.perf_counter() - t_all:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
