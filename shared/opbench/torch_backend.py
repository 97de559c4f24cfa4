"""The torch side of a run: inputs on the device, the fp32 reference, the comparison, memory and timers."""

from __future__ import annotations

import gc
import math
import time
from typing import Any, Callable

from opbench import envinfo, peak, torch_timing
from opbench.accuracy import Accuracy, judge
from opbench.inputs import host_qkv
from opbench.record import Env
from opbench.suite import Workload

REF_BUDGET = {"cuda": 512 << 20, "cpu": 64 << 20}  # bytes of fp32 scores per reference chunk


class TorchBackend:
    """Runs torch impls on the first visible CUDA device, else on the CPU."""

    framework = "torch"

    def __init__(self, torch, device: str):
        self.torch = torch
        self.device = torch.device(device)

    @classmethod
    def create(cls) -> "TorchBackend":
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

    def inputs(self, wl: Workload) -> tuple:
        """q (B,S,H,D), k and v (B,S,Hkv,D) on the device in the workload's dtype, from the shared seeded draw."""
        dtype = getattr(self.torch, wl.dtype)
        return tuple(self.torch.from_numpy(x).to(self.device).to(dtype) for x in host_qkv(wl))

    def reference(self, q, k, v, wl: Workload):
        """fp32 softmax(q·kᵀ/√D)·v in canonical layout, one block of query rows at a time so S=16384 fits."""
        torch = self.torch
        b, s, h, d = q.shape
        group = h // k.shape[2]
        saved = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")  # no TF32 in the reference
        try:
            with torch.no_grad():
                qf = q.float().permute(0, 2, 1, 3)
                kf = k.float().permute(0, 2, 1, 3).repeat_interleave(group, dim=1)
                vf = v.float().permute(0, 2, 1, 3).repeat_interleave(group, dim=1)
                out = torch.empty(b, s, h, d, dtype=torch.float32, device=q.device)
                rows = max(1, REF_BUDGET[q.device.type] // (b * h * s * 4))
                cols = torch.arange(s, device=q.device)
                for i in range(0, s, rows):
                    j = min(s, i + rows)
                    scores = torch.matmul(qf[:, :, i:j], kf.transpose(-1, -2)).mul_(1.0 / math.sqrt(d))
                    if wl.causal:
                        scores.masked_fill_(cols[None, :] > cols[i:j, None], float("-inf"))
                    scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
                    scores.div_(scores.sum(dim=-1, keepdim=True))
                    out[:, i:j] = torch.matmul(scores, vf).permute(0, 2, 1, 3)
                    del scores
        finally:
            torch.set_float32_matmul_precision(saved)
        return out

    def check(self, out, ref, tol: float) -> Accuracy:
        """Compare an output (canonical layout) with the reference; a wrong shape is an error, not a verdict."""
        torch = self.torch
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"impl returned {type(out).__name__}, expected a tensor (B, S, H, D)")
        if tuple(out.shape) != tuple(ref.shape):
            raise ValueError(f"output shape {tuple(out.shape)} != expected {tuple(ref.shape)} (B, S, H, D)")
        with torch.no_grad():
            o = out.detach().to(ref.device).float()
            finite = bool(torch.isfinite(o).all())
            diff = o - ref  # never in place: `o` may share storage with the impl's output
            max_abs = float(diff.abs().max())
            num = float(torch.linalg.vector_norm(diff, dtype=torch.float64))
            den = float(torch.linalg.vector_norm(ref, dtype=torch.float64))
        return judge(max_abs, num / den if den else math.inf, finite, tol)

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

    def timer(self, fn: Callable, args: tuple, graph_safe: bool) -> torch_timing.RepTimer:
        grad_free = lambda *a: self.call(fn, a)  # noqa: E731
        if self.has_cuda:
            return torch_timing.cuda_timer(self.torch, grad_free, args, graph_safe, self.device)
        return torch_timing.host_timer(grad_free, args)

    def release(self) -> None:
        """Give back what a workload left (after an error too), so the next one starts from a clean allocator."""
        gc.collect()
        if self.has_cuda:
            try:
                self.torch.cuda.synchronize(self.device)
            except Exception:
                pass
            self.torch.cuda.empty_cache()
