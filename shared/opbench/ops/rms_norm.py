"""RMSNorm over the last dim: y = x / sqrt(mean(x²) + eps) · weight, x (B, S, D), weight (D,)."""

from __future__ import annotations

from .base import Field, Op, elt_bytes, normal

EPS = 1e-6


def rows(wl) -> int:
    return wl.batch * wl.seq_len


def flops(wl) -> float:
    """Square, sum, scale by rstd, multiply by the weight: 4 per element (rstd itself is per row)."""
    return 4.0 * rows(wl) * wl.hidden


def bytes_moved(wl) -> float:
    """x read and y written once, the weight read once."""
    return float(elt_bytes(wl.dtype) * (2 * rows(wl) * wl.hidden + wl.hidden))


def inputs(wl) -> tuple:
    """x standard normal; the weight near 1 (as a trained norm's is), but not 1, so a dropped weight shows."""
    return normal(wl.seed, 0, (wl.batch, wl.seq_len, wl.hidden)), normal(wl.seed, 1, (wl.hidden,), 0.1, 1.0)


def args(tensors: tuple, wl) -> tuple:
    x, w = tensors
    return x, w, EPS


def torch_reference(tensors: tuple, wl):
    import torch

    x, w = (t.float() for t in tensors)
    with torch.no_grad():
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


OP = Op(
    name="rms_norm",
    title="RMSNorm",
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
)
