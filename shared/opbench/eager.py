"""torch eager versions of the memory-bound ops (what a model's own code calls), run as they are or compiled:
the `<op>_torch` and `<op>_compile` impls are this module plus an op name.

Each function takes the op's canonical call (`Op.args`) and returns its canonical output in the input's dtype. All
are differentiable by autograd (torch.compile's AOTAutograd compiles the backward too), so they run every mode.
"""

from __future__ import annotations

from collections.abc import Callable


def rms_norm(x, weight, eps):
    import torch.nn.functional as F

    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def layer_norm(x, weight, bias, eps):
    import torch.nn.functional as F

    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def rotary(q, k, cos, sin):
    """The HF/Llama formula: x·cos + rotate_half(x)·sin, cos/sin broadcast over batch and heads."""
    import torch

    c, s = cos[None, :, None, :], sin[None, :, None, :]

    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    return q * c + rotate_half(q) * s, k * c + rotate_half(k) * s


def swiglu(x):
    import torch.nn.functional as F

    d = x.shape[-1] // 2
    return F.silu(x[..., :d]) * x[..., d:]


FUNCTIONS: dict[str, Callable] = {"rms_norm": rms_norm, "layer_norm": layer_norm, "rotary": rotary, "swiglu": swiglu}


def run(op: str, compile_mode: str | None = None) -> int:
    """Benchmark the eager function of `op`, or torch.compile of it (a fresh static-shape compile per workload and
    mode, dynamo reset in `prepare`, so compile_ms is that workload's own compilation, its backward's in bwd)."""
    import opbench

    fn = FUNCTIONS[op]
    if compile_mode is None:
        return opbench.run(fn, op=op, requires_cuda=False)

    def prepare(*inputs_and_wl):
        import torch

        *inputs, wl = inputs_and_wl
        torch._dynamo.reset()
        compiled = torch.compile(fn, mode=compile_mode, dynamic=False, fullgraph=True)
        return (compiled, *wl.spec.args(tuple(inputs), wl))

    def call(compiled, *args):
        return compiled(*args)

    return opbench.run(call, op=op, prepare=prepare, requires_cuda=False)
