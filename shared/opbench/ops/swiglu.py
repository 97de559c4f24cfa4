"""SwiGLU activation: y = silu(x[..., :D]) · x[..., D:], x (T, 2·D), y (T, D)."""

from __future__ import annotations

from .base import Field, Op, elt_bytes, normal


def flops(wl) -> float:
    """silu (negate, exp, add, divide, multiply) and the product: 6 per output element."""
    return 6.0 * wl.tokens * wl.dim


def bytes_moved(wl) -> float:
    """Both halves of x read once, y written once."""
    return float(elt_bytes(wl.dtype) * 3 * wl.tokens * wl.dim)


def inputs(wl) -> tuple:
    return (normal(wl.seed, 0, (wl.tokens, 2 * wl.dim)),)


def args(tensors: tuple, wl) -> tuple:
    return tuple(tensors)


def torch_reference(tensors: tuple, wl):
    import torch

    (x,) = tensors
    x = x.float()
    with torch.no_grad():
        return torch.nn.functional.silu(x[..., : wl.dim]) * x[..., wl.dim :]


OP = Op(
    name="swiglu",
    title="SwiGLU activation",
    fields=(Field("tokens", int, label="Tokens"), Field("dim", int, label="Dim")),
    metric="gbps",
    x="tokens",
    flops=flops,
    bytes=bytes_moved,
    inputs=inputs,
    args=args,
    reference={"torch": torch_reference},
    layout="(T, D)",
)
