"""Rotary position embedding on q and k, "rotate_half" layout (GPT-NeoX, Llama, HF):
out = x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x[..., D/2:], x[..., :D/2]);
q (B, S, H, D), k (B, S, H, D), cos and sin (S, D) with equal halves. Returns (q_out, k_out)."""

from __future__ import annotations

from .base import Field, Op, elt_bytes, normal, torch_autograd_reference

BASE = 10000.0


def flops(wl) -> float:
    """Two multiplies and an add per element of q and k."""
    return 3.0 * 2 * wl.batch * wl.seq_len * wl.heads * wl.head_dim


def bytes_moved(wl) -> float:
    """q and k read and written once, cos and sin read once."""
    qk = wl.batch * wl.seq_len * wl.heads * wl.head_dim
    return float(elt_bytes(wl.dtype) * (4 * qk + 2 * wl.seq_len * wl.head_dim))


def bwd_bytes(wl) -> float:
    """The upstream gradients of q_out and k_out read and dq, dk written once, cos and sin read once: the forward's
    count (the backward is the transposed rotation)."""
    return bytes_moved(wl)


def inputs(wl) -> tuple:
    """q and k standard normal; cos and sin of the real RoPE angles pos·BASE^(−2i/D)."""
    import numpy as np

    shape = (wl.batch, wl.seq_len, wl.heads, wl.head_dim)
    q, k = normal(wl.seed, 0, shape), normal(wl.seed, 1, shape)
    half = wl.head_dim // 2
    inv = BASE ** (-np.arange(half, dtype=np.float64) * 2 / wl.head_dim)
    angles = np.arange(wl.seq_len, dtype=np.float64)[:, None] * inv[None, :]
    angles = np.concatenate([angles, angles], axis=1)
    return q, k, np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def args(tensors: tuple, wl) -> tuple:
    return tuple(tensors)


def formula(tensors: tuple, wl):
    """The fp32 math on fp32 tensors (differentiable: the gradient reference is autograd over it)."""
    import torch

    q, k, cos, sin = tensors
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]

    def rotate(x):
        half = x.shape[-1] // 2
        return torch.cat([-x[..., half:], x[..., :half]], dim=-1)

    return q * cos + rotate(q) * sin, k * cos + rotate(k) * sin


def torch_reference(tensors: tuple, wl):
    import torch

    with torch.no_grad():
        return formula(tuple(t.float() for t in tensors), wl)


def check(row) -> None:
    if row["head_dim"] % 2:
        raise ValueError(f"head_dim: must be even, got {row['head_dim']}")


OP = Op(
    name="rotary",
    title="Rotary embedding (q and k)",
    fields=(Field("batch", int, label="Batch"), Field("seq_len", int, label="Seq Length"),
            Field("heads", int, label="Heads"), Field("head_dim", int, label="Head Dim")),
    metric="gbps",
    x="seq_len",
    flops=flops,
    bytes=bytes_moved,
    inputs=inputs,
    args=args,
    reference={"torch": torch_reference},
    layout="((B, S, H, D), (B, S, H, D))",
    check=check,
    grads=("dq", "dk", None, None),  # cos and sin are tables, not learned: no gradient
    outputs=lambda wl: ((wl.batch, wl.seq_len, wl.heads, wl.head_dim),) * 2,
    bwd_flops=flops,
    bwd_bytes=bwd_bytes,
    grad_reference={"torch": torch_autograd_reference(formula)},
)
