"""SwiGLU activation: y = silu(x[..., :D]) · x[..., D:], x (T, 2·D), y (T, D)."""

from __future__ import annotations

from .base import Field, Op, elt_bytes, normal, torch_autograd_reference


def flops(wl) -> float:
    """silu (negate, exp, add, divide, multiply) and the product: 6 per output element."""
    return 6.0 * wl.tokens * wl.dim


def bytes_moved(wl) -> float:
    """Both halves of x read once, y written once."""
    return float(elt_bytes(wl.dtype) * 3 * wl.tokens * wl.dim)


def bwd_flops(wl) -> float:
    """sigmoid (4), silu, d_up = dy·silu, silu' = s·(1 + g·(1 − s)) (4), d_gate = dy·up·silu' (2): 12 per output
    element."""
    return 12.0 * wl.tokens * wl.dim


def bwd_bytes(wl) -> float:
    """x (both halves) and dy read once, dx (both halves) written once."""
    return float(elt_bytes(wl.dtype) * 5 * wl.tokens * wl.dim)


def inputs(wl) -> tuple:
    return (normal(wl.seed, 0, (wl.tokens, 2 * wl.dim)),)


def args(tensors: tuple, wl) -> tuple:
    return tuple(tensors)


def formula(tensors: tuple, wl):
    """The fp32 math on fp32 tensors (differentiable: the gradient reference is autograd over it)."""
    import torch

    (x,) = tensors
    return torch.nn.functional.silu(x[..., : wl.dim]) * x[..., wl.dim :]


def torch_reference(tensors: tuple, wl):
    import torch

    with torch.no_grad():
        return formula(tuple(t.float() for t in tensors), wl)


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
    grads=("dx",),
    outputs=lambda wl: ((wl.tokens, wl.dim),),
    bwd_flops=bwd_flops,
    bwd_bytes=bwd_bytes,
    grad_reference={"torch": torch_autograd_reference(formula)},
)
