"""LayerNorm over the last dim: y = (x − mean) / sqrt(var + eps) · weight + bias (biased variance)."""

from __future__ import annotations

from .base import Field, Op, elt_bytes, normal, torch_autograd_reference

EPS = 1e-5


def rows(wl) -> int:
    return wl.batch * wl.seq_len


def flops(wl) -> float:
    """Mean, centre, square, sum, scale, weight, bias: 7 per element."""
    return 7.0 * rows(wl) * wl.hidden


def bytes_moved(wl) -> float:
    """x read and y written once, weight and bias read once."""
    return float(elt_bytes(wl.dtype) * (2 * rows(wl) * wl.hidden + 2 * wl.hidden))


def bwd_flops(wl) -> float:
    """dy·w, x̂, the row sums of dy·w and dy·w·x̂, dx = rstd·(dy·w − mean(dy·w) − x̂·mean(dy·w·x̂)), dw += dy·x̂,
    db += dy: 12 per element."""
    return 12.0 * rows(wl) * wl.hidden


def bwd_bytes(wl) -> float:
    """x, dy and the weight read once; dx, dw and db written once (the bias is not needed)."""
    return float(elt_bytes(wl.dtype) * (3 * rows(wl) * wl.hidden + 3 * wl.hidden))


def inputs(wl) -> tuple:
    """x with a non-zero mean (so a missing centring shows), a weight near 1 and a small bias."""
    x = normal(wl.seed, 0, (wl.batch, wl.seq_len, wl.hidden), 1.0, 0.5)
    return x, normal(wl.seed, 1, (wl.hidden,), 0.1, 1.0), normal(wl.seed, 2, (wl.hidden,), 0.1)


def args(tensors: tuple, wl) -> tuple:
    x, w, b = tensors
    return x, w, b, EPS


def formula(tensors: tuple, wl):
    """The fp32 math on fp32 tensors (differentiable: the gradient reference is autograd over it)."""
    import torch

    x, w, b = tensors
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var + EPS) * w + b


def torch_reference(tensors: tuple, wl):
    import torch

    with torch.no_grad():
        return formula(tuple(t.float() for t in tensors), wl)


OP = Op(
    name="layer_norm",
    title="LayerNorm",
    fields=(Field("batch", int, label="Batch"), Field("seq_len", int, label="Seq Length"),
            Field("hidden", int, label="Hidden")),
    metric="gbps",
    x="seq_len",
    flops=flops,
    bytes=bytes_moved,
    inputs=inputs,
    args=args,
    reference={"torch": torch_reference},
    layout="(B, S, D)",
    grads=("dx", "dweight", "dbias"),
    outputs=lambda wl: ((wl.batch, wl.seq_len, wl.hidden),),
    bwd_flops=bwd_flops,
    bwd_bytes=bwd_bytes,
    grad_reference={"torch": torch_autograd_reference(formula)},
)
