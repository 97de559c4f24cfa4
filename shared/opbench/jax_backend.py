"""The JAX side of a run: the same inputs and checks as torch, timed the way JAX allows.

JAX exposes no CUDA events. A rep is timed on the host clock from dispatch until the last result is
ready (block_until_ready), over enough work that one dispatch and one wake-up are under 1% of it:
- xla-batch (preferred): fn is traced into ONE jitted program that calls it once on each of several copies
  of the inputs. The calls run back to back on the device with no host gaps (JAX's analogue of a CUDA
  graph of many calls), XLA cannot merge them (distinct operands), and the copies together exceed
  FLUSH_BYTES (over twice the L2 of an H100/H200), so each call reads its inputs from memory, not L2.
  The program is launched a few times per rep; latency = rep time / calls.
- host-batch (fallback, when fn cannot be traced into a larger program): the same, one dispatch per call.
Peak memory is XLA's own account of fn compiled alone (temporary buffers + output).
"""
from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from typing import Any

from opbench import envinfo, peak
from opbench.accuracy import Accuracy, judge
from opbench.errors import one_line
from opbench.inputs import host_inputs
from opbench.record import Env
from opbench.suite import Workload
from opbench.torch_timing import RepTimer

FLUSH_BYTES = 128 << 20
MAX_COPIES = 16
MIN_CALLS = 4  # input copies at least: never two calls on the same buffers in a program
TARGET_REP_S = 0.005  # a rep lasts about this long, so one dispatch and one wake-up are <1% of it


class JaxBackend:
    """Runs JAX impls on the first GPU JAX sees, else on its CPU device."""

    framework = "jax"

    def __init__(self, jax, device):
        self.jax = jax
        self.device = device

    @classmethod
    def create(cls) -> JaxBackend:
        import os

        # No up-front grab of 75 % of the GPU's memory: the job starts while another may be timing on the same GPU
        # (orchestrator/run/gate.py); XLA's allocator grows on demand instead, and keeps what it took.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return cls(jax, gpus[0] if gpus else jax.devices("cpu")[0])

    @property
    def has_cuda(self) -> bool:
        return self.device.platform == "gpu"

    def env(self, extra_packages: tuple[str, ...] = ()) -> Env:
        cc = getattr(self.device, "compute_capability", None)
        return Env(
            device=self.device.device_kind if self.has_cuda else envinfo.cpu_name(),
            sm=str(cc) if cc and self.has_cuda else None,
            driver=envinfo.nvidia_driver() if self.has_cuda else None,
            cuda=None, torch=None, python=envinfo.python_version(),
            packages=envinfo.package_versions(extra_packages),
        )

    def peak_tflops(self) -> float | None:
        if not self.has_cuda:
            return None
        return peak.peak_tflops(self.device.device_kind, lambda: peak.measure_jax(self.device))

    def nvml_target(self):
        """Which GPU NVML reads for the clocks (opbench.clocks): JAX gives no PCI bus id, so the visible entry of
        its local device index."""
        from opbench import clocks

        if not self.has_cuda:
            return None
        index = getattr(self.device, "local_hardware_id", None)
        return clocks.Target(None, clocks.visible_entry(int(self.device.id if index is None else index)))

    def inputs(self, wl: Workload) -> tuple:
        jnp = self.jax.numpy
        return tuple(self.jax.device_put(x, self.device).astype(getattr(jnp, wl.dtype)) for x in host_inputs(wl))

    def reference(self, inputs: tuple, wl: Workload):
        """The op's fp32 reference in JAX (ops without one cannot run JAX impls: a one-line error)."""
        ref = wl.spec.reference.get("jax")
        if ref is None:
            raise NotImplementedError(f"op {wl.op} has no JAX reference")
        return ref(inputs, wl)

    def stored(self, array):
        """A stored fp32 reference (opbench.refstore, a numpy array) on the device."""
        return self.jax.device_put(array, self.device)

    def check(self, out, ref, tol: float, layout: str = "") -> Accuracy:
        jnp = self.jax.numpy
        if not hasattr(out, "shape") or not hasattr(out, "dtype"):
            raise TypeError(f"impl returned {type(out).__name__}, expected an array {layout}")
        if tuple(out.shape) != tuple(ref.shape):
            raise ValueError(f"output shape {tuple(out.shape)} != expected {tuple(ref.shape)} {layout}")
        o = jnp.asarray(out).astype(jnp.float32)
        diff = o - ref
        finite = bool(jnp.isfinite(o).all())
        den = float(jnp.linalg.norm(ref.ravel()))
        rel = float(jnp.linalg.norm(diff.ravel())) / den if den else math.inf
        return judge(float(jnp.abs(diff).max()), rel, finite, tol)

    def sync(self) -> None:
        """Nothing to wait for: every call below blocks until its result is ready."""

    def first_call(self, fn: Callable, args: tuple) -> tuple[Any, float]:
        t0 = time.perf_counter()
        out = self.jax.block_until_ready(fn(*args))
        return out, (time.perf_counter() - t0) * 1e3

    def call(self, fn: Callable, args: tuple) -> Any:
        return self.jax.block_until_ready(fn(*args))

    def peak_bytes(self, fn: Callable, args: tuple) -> int | None:
        """Temporary + output bytes of fn compiled as one XLA program (its buffer assignment); None if untraceable."""
        jax = self.jax
        static = [i for i, a in enumerate(args) if not isinstance(a, jax.Array)]
        try:
            stats = jax.jit(fn, static_argnums=static).lower(*args).compile().memory_analysis()
            return int(stats.temp_size_in_bytes + stats.output_size_in_bytes)
        except Exception:  # not traceable, or the backend keeps no account: null is the honest answer
            return None

    def timer(self, fn: Callable, args: tuple, graph_safe: bool, copies: int = 1) -> RepTimer:
        """xla-batch: one jitted program calling fn on each input copy; host-batch (a call per copy) if untraceable."""
        jax = self.jax
        slots = [i for i, a in enumerate(args) if isinstance(a, jax.Array)]
        nbytes = sum(args[i].size * args[i].dtype.itemsize for i in slots) or 1
        copies = min(MAX_COPIES, max(MIN_CALLS, math.ceil(FLUSH_BYTES / nbytes)))
        sets = [[args[i] for i in slots]] + [[jax.numpy.copy(args[i]) for i in slots] for _ in range(copies - 1)]

        def call(arrays):
            full = list(args)
            for i, a in zip(slots, arrays):
                full[i] = a
            return fn(*full)

        return batch_timer(jax, call, sets)

    def upstream(self, wl: Workload) -> tuple:
        """The op's seeded upstream gradients on the device in the workload's dtype (drawn like the inputs)."""
        jnp = self.jax.numpy
        return tuple(self.jax.device_put(x, self.device).astype(getattr(jnp, wl.dtype)) for x in wl.spec.upstream(wl))

    def grad_reference(self, inputs: tuple, dys: tuple, wl: Workload) -> dict:
        """The fp32 reference's gradients in JAX (ops without one cannot run JAX impls' backward)."""
        ref = wl.spec.grad_reference.get("jax")
        if ref is None:
            raise NotImplementedError(f"op {wl.op} has no JAX gradient reference")
        return ref(inputs, dys, wl)

    def grad_task(self, fn: Callable, inputs: tuple, dys: tuple, wl: Workload, prepare, finish, mode: str,
                  inplace: bool = False):
        """What the backward modes time and check (opbench.jax_backward)."""
        from opbench.jax_backward import JaxGrad

        return JaxGrad(self, fn, inputs, dys, wl, prepare, finish, mode)

    def release(self) -> None:
        gc.collect()


def batch_timer(jax, call: Callable, sets: list) -> RepTimer:
    """Time call(set) over every set: xla-batch (one jitted program calling it once per set), else host-batch (one
    dispatch per call); a rep is enough launches to last TARGET_REP_S, host clock until the results are ready."""
    copies = len(sets)
    note = None
    try:  # distinct inputs per call, so XLA can neither merge the calls nor serve them from L2
        batch = jax.jit(lambda all_sets: [call(arrays) for arrays in all_sets])
        jax.block_until_ready(batch(sets))
        mode, calls, launch = "xla-batch", copies, (lambda i: batch(sets))
    except Exception as exc:
        note = f"fn cannot be traced into one program, timed per dispatched call: {one_line(exc)}"
        mode, calls, launch = "host-batch", 1, (lambda i: call(sets[i % copies]))
    t0 = time.perf_counter()
    jax.block_until_ready(launch(0))
    launches = max(copies if calls == 1 else 1, math.ceil(TARGET_REP_S / max(time.perf_counter() - t0, 1e-6)))

    def run(n: int) -> list[float]:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            for i in range(launches):
                out = launch(i)
            jax.block_until_ready(out)
            times.append((time.perf_counter() - t0) * 1e3 / (launches * calls))
        return times

    return RepTimer(mode, run, calls=launches * calls, note=note, keep=sets)
