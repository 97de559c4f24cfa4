"""The torch side of a run: inputs on the device, the fp32 reference, the comparison, memory and timers."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from typing import Any

from opbench import envinfo, peak, torch_timing
from opbench.accuracy import Accuracy, judge
from opbench.inputs import host_inputs
from opbench.record import Env
from opbench.suite import Workload


class TorchBackend:
    """Runs torch impls on the first visible CUDA device, else on the CPU."""

    framework = "torch"

    def __init__(self, torch, device: str):
        self.torch = torch
        self.device = torch.device(device)

    @classmethod
    def create(cls) -> TorchBackend:
        import torch  # ImportError here is the caller's "cannot run here"

        return cls(torch, "cuda" if torch.cuda.is_available() else "cpu")

    @property
    def has_cuda(self) -> bool:
        return self.device.type == "cuda"

    def env(self, extra_packages: tuple[str, ...] = ()) -> Env:
        torch = self.torch
        if self.has_cuda:
            props = torch.cuda.get_device_properties(self.device)
            device, sm = props.name, f"{props.major}.{props.minor}"
        else:
            device, sm = envinfo.cpu_name(), None
        return Env(
            device=device, sm=sm, driver=envinfo.nvidia_driver() if self.has_cuda else None,
            cuda=torch.version.cuda, torch=torch.__version__, python=envinfo.python_version(),
            packages=envinfo.package_versions(extra_packages),
        )

    def peak_tflops(self) -> float | None:
        if not self.has_cuda:
            return None
        name = self.torch.cuda.get_device_name(self.device)
        return peak.peak_tflops(name, lambda: peak.measure_torch(self.device))

    def copy_gbps(self) -> float | None:
        if not self.has_cuda:
            return None
        name = self.torch.cuda.get_device_name(self.device)
        return peak.copy_gbps(name, lambda: peak.measure_copy_torch(self.device))

    def nvml_target(self):
        """Which GPU NVML reads for the clocks (opbench.clocks): this device's PCI bus id and visible entry."""
        from opbench import clocks

        return clocks.torch_target(self.torch, self.device) if self.has_cuda else None

    def l2_bytes(self) -> int | None:
        if not self.has_cuda:
            return None
        return int(getattr(self.torch.cuda.get_device_properties(self.device), "L2_cache_size", 0) or 0) or None

    def inputs(self, wl: Workload) -> tuple:
        """The op's inputs on the device in the workload's dtype, from the shared seeded draw."""
        return self.on_device(host_inputs(wl), wl)

    def on_device(self, drawn: tuple, wl: Workload) -> tuple:
        """Host draws (float32 numpy) on the device, rounded to the workload's dtype."""
        dtype = getattr(self.torch, wl.dtype)
        return tuple(self.torch.from_numpy(x).to(self.device).to(dtype) for x in drawn)

    def reference(self, inputs: tuple, wl: Workload):
        """The op's fp32 reference (computed from the rounded inputs, before the impl ever sees them)."""
        return wl.spec.reference["torch"](inputs, wl)

    def stored(self, array):
        """A stored fp32 reference (opbench.refstore, a numpy array) on the device."""
        return self.torch.from_numpy(array).to(self.device)

    def upstream(self, wl: Workload) -> tuple:
        """The op's seeded upstream gradients on the device in the workload's dtype (drawn like the inputs)."""
        return self.on_device(wl.spec.upstream(wl), wl)

    def grad_reference(self, inputs: tuple, dys: tuple, wl: Workload) -> dict:
        """The fp32 reference's gradients {name: tensor} for the upstream gradients dys (before the impl runs)."""
        return wl.spec.grad_reference["torch"](inputs, dys, wl)

    def grad_task(self, fn: Callable, inputs: tuple, dys: tuple, wl: Workload, prepare, finish, mode: str,
                  inplace: bool = False):
        """What the backward modes time and check (opbench.torch_backward)."""
        from opbench.torch_backward import TorchGrad

        return TorchGrad(self, fn, inputs, dys, wl, prepare, finish, mode, inplace)

    def check(self, out, ref, tol: float, layout: str = "") -> Accuracy:
        """Compare an output (canonical layout; a tuple where the op returns several tensors) with the reference:
        rel-L2 over all of it. A wrong type or shape is an error, not a verdict."""
        torch = self.torch
        refs = ref if isinstance(ref, tuple) else (ref,)
        outs = tuple(out) if isinstance(out, (tuple, list)) and isinstance(ref, tuple) else (out,)
        if len(outs) != len(refs):
            raise TypeError(f"impl returned {len(outs)} outputs, expected {len(refs)} {layout}")
        finite, max_abs, num, den = True, 0.0, 0.0, 0.0
        for o, r in zip(outs, refs):
            if not isinstance(o, torch.Tensor):
                raise TypeError(f"impl returned {type(o).__name__}, expected a tensor {layout}")
            if tuple(o.shape) != tuple(r.shape):
                raise ValueError(f"output shape {tuple(o.shape)} != expected {tuple(r.shape)} {layout}")
            with torch.no_grad():
                of = o.detach().to(r.device).float()
                finite = finite and bool(torch.isfinite(of).all())
                diff = of - r  # never in place: `of` may share storage with the impl's output
                max_abs = max(max_abs, float(diff.abs().max()) if diff.numel() else 0.0)
                num += float(torch.linalg.vector_norm(diff, dtype=torch.float64)) ** 2
                den += float(torch.linalg.vector_norm(r, dtype=torch.float64)) ** 2
        return judge(max_abs, math.sqrt(num) / math.sqrt(den) if den else math.inf, finite, tol)

    def sync(self) -> None:
        if self.has_cuda:
            self.torch.cuda.synchronize(self.device)

    def first_call(self, fn: Callable, args: tuple) -> tuple[Any, float]:
        """The first, cold call (compilation, autotuning, plan selection included), timed on the host after a sync."""
        self.sync()
        t0 = time.perf_counter()
        with self.torch.no_grad():
            out = fn(*args)
        self.sync()
        return out, (time.perf_counter() - t0) * 1e3

    def call(self, fn: Callable, args: tuple) -> Any:
        with self.torch.no_grad():
            return fn(*args)

    def peak_bytes(self, fn: Callable, args: tuple) -> int | None:
        """Bytes the impl allocates beyond what already exists (its output included): max_memory_allocated delta."""
        if not self.has_cuda:
            return None
        cuda = self.torch.cuda
        self.sync()
        cuda.reset_peak_memory_stats(self.device)
        base = cuda.memory_allocated(self.device)
        with self.torch.no_grad():
            out = fn(*args)
        self.sync()
        used = cuda.max_memory_allocated(self.device) - base
        del out
        return max(0, int(used))

    def timer(self, fn: Callable, args: tuple, graph_safe: bool, copies: int = 1) -> torch_timing.RepTimer:
        """copies > 1: the calls rotate through that many copies of the tensor arguments (L2-cold inputs)."""
        grad_free = lambda *a: self.call(fn, a)  # noqa: E731
        if self.has_cuda:
            return torch_timing.cuda_timer(self.torch, grad_free, args, graph_safe, self.device, copies)
        return torch_timing.host_timer(grad_free, args)

    def tensor_bytes(self, args: tuple) -> int:
        return sum(a.numel() * a.element_size() for a in args if isinstance(a, self.torch.Tensor))

    def release(self) -> None:
        """Give back what a workload left (after an error too), so the next one starts from a clean allocator."""
        gc.collect()
        if self.has_cuda:
            try:
                self.torch.cuda.synchronize(self.device)
            except Exception:
                pass
            self.torch.cuda.empty_cache()
