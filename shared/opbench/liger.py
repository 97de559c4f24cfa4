"""Liger-Kernel's Triton kernels (`liger_kernel.ops`), called the way its modules call them: the `<op>_liger`
impls are this module plus an op name. Liger targets CUDA (its kernels are Triton GPU kernels): without a GPU the
impls are skipped before their env is built.

Every one is differentiable (Liger's autograd Functions): the backward modes time their Triton backward kernels.
Some of those write in place (rms_norm's dx into dy, SwiGLU's gradients into the saved halves, rotary's into dy):
only their first backward's gradients are checked, since a retained graph's later backwards read what the first
overwrote (the work, and so the time, is the same).
"""

from __future__ import annotations


def _rms_norm(x, weight, eps):
    from liger_kernel.ops.rms_norm import LigerRMSNormFunction

    return LigerRMSNormFunction.apply(x, weight, eps)  # offset 0, casting_mode "llama": fp32 math, as ours


def _layer_norm(x, weight, bias, eps):
    from liger_kernel.ops.layer_norm import LigerLayerNormFunction

    return LigerLayerNormFunction.apply(x, weight, bias, eps)


def _rotary_prepare(q, k, cos, sin, wl):
    """Liger takes (B, H, S, D) views of (B, S, H, D) storage: our canonical tensors, transposed (no copy).
    It rotates q and k in place, so each call gets tensors it may overwrite (copies made here, untimed)."""
    return q.clone().transpose(1, 2), k.clone().transpose(1, 2), cos, sin


def _rotary(q, k, cos, sin):
    from liger_kernel.ops.rope import LigerRopeFunction

    return LigerRopeFunction.apply(q, k, cos, sin)


def _rotary_finish(out):
    q, k = out
    return q.transpose(1, 2), k.transpose(1, 2)


def _swiglu_prepare(x, wl):
    """Liger's SwiGLU takes the gate and up projections as two tensors: split (and made contiguous) untimed."""
    d = wl.dim
    return x[..., :d].contiguous(), x[..., d:].contiguous()


def _swiglu(a, b):
    from liger_kernel.ops.swiglu import LigerSiLUMulFunction

    return LigerSiLUMulFunction.apply(a, b)


def run(op: str) -> int:
    import opbench

    def check():
        opbench.require("liger_kernel")

    kw: dict = {"op": op, "check": check, "packages": ("liger-kernel", "triton")}
    if op == "rms_norm":  # its backward writes dx into dy (in_place=True, Liger's default)
        return opbench.run(_rms_norm, grad_inplace=True, **kw)
    if op == "layer_norm":
        return opbench.run(_layer_norm, **kw)
    if op == "rotary":  # in place on its inputs (and its backward on dy): the graph's replays re-rotate them, so only
        # the first call is checked
        return opbench.run(_rotary, prepare=_rotary_prepare, finish=_rotary_finish, inplace=True, **kw)
    if op == "swiglu":  # its backward writes the gradients into the forward's saved gate and up halves
        return opbench.run(_swiglu, prepare=_swiglu_prepare, grad_inplace=True, **kw)
    raise ValueError(f"no Liger kernel for op {op!r}")
