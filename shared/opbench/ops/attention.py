"""Attention: softmax(q·kᵀ/√D)·v over (B, S, H, D) inputs, GQA when kv_heads < heads, optionally causal."""

from __future__ import annotations

import math

from .base import Field, Op

REF_BUDGET = {"cuda": 512 << 20, "gpu": 512 << 20, "cpu": 64 << 20}  # bytes of fp32 scores per reference chunk


def flops(wl) -> float:
    """Forward work, 4·B·H·S²·D, halved when causal."""
    work = 4.0 * wl.batch * wl.heads * wl.seq_len**2 * wl.head_dim
    return work / 2 if wl.causal else work


def bytes_moved(wl) -> float:
    """q, k, v read once, the output written once."""
    from .base import elt_bytes

    return float(elt_bytes(wl.dtype) * wl.batch * wl.seq_len * wl.head_dim * (2 * wl.heads + 2 * wl.kv_heads))


def bwd_flops(wl) -> float:
    """The backward's work, 2.5x the forward's (five S²·D products against the forward's two, the causal half
    included): fwd_bwd is then 3.5x."""
    return 2.5 * flops(wl)


def bwd_bytes(wl) -> float:
    """q, k, v, the output and its upstream gradient read once; dq, dk, dv written once."""
    from .base import elt_bytes

    return float(elt_bytes(wl.dtype) * wl.batch * wl.seq_len * wl.head_dim * (4 * wl.heads + 4 * wl.kv_heads))


def inputs(wl) -> tuple:
    """Standard-normal float32 q (B,S,H,D), k and v (B,S,Hkv,D)."""
    import numpy as np

    rng = np.random.default_rng(wl.seed)
    q_shape = (wl.batch, wl.seq_len, wl.heads, wl.head_dim)
    kv_shape = (wl.batch, wl.seq_len, wl.kv_heads, wl.head_dim)
    return tuple(rng.standard_normal(shape, dtype=np.float32) for shape in (q_shape, kv_shape, kv_shape))


def args(tensors: tuple, wl) -> tuple:
    q, k, v = tensors
    return q, k, v, wl.causal


def torch_reference(tensors: tuple, wl):
    """fp32 attention in canonical layout, one block of query rows at a time so S=16384 fits."""
    import torch

    q, k, v = tensors
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


def torch_grad_reference(tensors: tuple, dys: tuple, wl) -> dict:
    """fp32 dq, dk, dv: autograd over the fp32 attention, one block of query rows at a time (rows are independent:
    a block's dq is its own, dk and dv are sums over the blocks), so the saved scores fit as the forward's do."""
    import torch

    q, k, v = tensors
    (dy,) = dys
    b, s, h, d = q.shape
    hkv = k.shape[2]
    group = h // hkv
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        # gradients of the repeated kv heads, folded into their kv head at the end
        kr, vr = (t.detach().float().permute(0, 2, 1, 3).repeat_interleave(group, dim=1).requires_grad_() for t in (k, v))
        dq = torch.empty(b, s, h, d, dtype=torch.float32, device=q.device)
        dk, dv = torch.zeros_like(kr), torch.zeros_like(vr)
        rows = max(1, REF_BUDGET[q.device.type] // (4 * b * h * s * 4))  # scores, probabilities and their grads
        cols = torch.arange(s, device=q.device)
        for i in range(0, s, rows):
            j = min(s, i + rows)
            qb = q[:, i:j].detach().float().permute(0, 2, 1, 3).requires_grad_()
            with torch.enable_grad():
                scores = torch.matmul(qb, kr.transpose(-1, -2)) * (1.0 / math.sqrt(d))
                if wl.causal:
                    scores = scores.masked_fill(cols[None, :] > cols[i:j, None], float("-inf"))
                out = torch.matmul(torch.softmax(scores, dim=-1), vr)
                gq, gk, gv = torch.autograd.grad(out, (qb, kr, vr), dy[:, i:j].detach().float().permute(0, 2, 1, 3))
            dq[:, i:j] = gq.permute(0, 2, 1, 3)
            dk += gk
            dv += gv
            del scores, out, gq, gk, gv
    finally:
        torch.set_float32_matmul_precision(saved)
    fold = lambda g: g.view(b, hkv, group, s, d).sum(2).permute(0, 2, 1, 3).contiguous()  # noqa: E731
    return {"dq": dq, "dk": fold(dk), "dv": fold(dv)}


def jax_reference(arrays: tuple, wl):
    """fp32 attention at HIGHEST matmul precision (no TF32), a block of query rows at a time.

    One program serves every block (q is padded to whole blocks), compiled with GEMM autotuning off:
    autotuning fp32 GEMMs costs seconds per shape and buys nothing for a reference.
    """
    import jax
    import jax.numpy as jnp

    q, k, v = arrays
    platform = next(iter(q.devices())).platform
    b, s, h, d = q.shape
    group = h // k.shape[2]
    kf = jnp.repeat(k.astype(jnp.float32), group, axis=2)
    vf = jnp.repeat(v.astype(jnp.float32), group, axis=2)
    rows = min(s, max(1, REF_BUDGET.get(platform, REF_BUDGET["cpu"]) // (b * h * s * 4)))
    blocks = math.ceil(s / rows)
    qf = jnp.pad(q.astype(jnp.float32), ((0, 0), (0, blocks * rows - s), (0, 0), (0, 0)))

    def block(qb, kb, vb, start):  # k and v are arguments, not constants baked into the program
        scores = jnp.einsum("bqhd,bkhd->bhqk", qb, kb, precision=jax.lax.Precision.HIGHEST) / math.sqrt(d)
        if wl.causal:
            qi = start + jnp.arange(rows)
            scores = jnp.where(jnp.arange(s)[None, :] > qi[:, None], -jnp.inf, scores)
        p = jax.nn.softmax(scores, axis=-1)
        return jnp.einsum("bhqk,bkhd->bqhd", p, vb, precision=jax.lax.Precision.HIGHEST)

    lowered = jax.jit(block).lower(qf[:, :rows], kf, vf, 0)
    try:
        run = lowered.compile(compiler_options={"xla_gpu_autotune_level": 0} if platform == "gpu" else None)
    except Exception:  # an XLA that does not take the option: autotune then
        run = lowered.compile()
    parts = [run(qf[:, i * rows : (i + 1) * rows], kf, vf, i * rows) for i in range(blocks)]
    return jax.block_until_ready(jnp.concatenate(parts, axis=1)[:, :s])


def jax_grad_reference(arrays: tuple, dys: tuple, wl) -> dict:
    """fp32 dq, dk, dv in JAX: jax.vjp of the fp32 attention (HIGHEST precision), a block of query rows at a time,
    one compiled program for every block (as the forward reference)."""
    import jax
    import jax.numpy as jnp

    q, k, v = arrays
    (dy,) = dys
    platform = next(iter(q.devices())).platform
    b, s, h, d = q.shape
    group = h // k.shape[2]
    rows = min(s, max(1, REF_BUDGET.get(platform, REF_BUDGET["cpu"]) // (4 * b * h * s * 4)))
    blocks = math.ceil(s / rows)
    pad = ((0, 0), (0, blocks * rows - s), (0, 0), (0, 0))
    qf, dyf = (jnp.pad(t.astype(jnp.float32), pad) for t in (q, dy))  # padded rows get a zero upstream gradient
    kf, vf = k.astype(jnp.float32), v.astype(jnp.float32)

    def block(qb, kb, vb, start):
        kr, vr = jnp.repeat(kb, group, axis=2), jnp.repeat(vb, group, axis=2)
        scores = jnp.einsum("bqhd,bkhd->bhqk", qb, kr, precision=jax.lax.Precision.HIGHEST) / math.sqrt(d)
        if wl.causal:
            qi = start + jnp.arange(rows)
            scores = jnp.where(jnp.arange(s)[None, :] > qi[:, None], -jnp.inf, scores)
        p = jax.nn.softmax(scores, axis=-1)
        return jnp.einsum("bhqk,bkhd->bqhd", p, vr, precision=jax.lax.Precision.HIGHEST)

    def grads(qb, kb, vb, dyb, start):
        return jax.vjp(lambda a, c, e: block(a, c, e, start), qb, kb, vb)[1](dyb)

    lowered = jax.jit(grads).lower(qf[:, :rows], kf, vf, dyf[:, :rows], 0)
    try:
        run = lowered.compile(compiler_options={"xla_gpu_autotune_level": 0} if platform == "gpu" else None)
    except Exception:  # an XLA that does not take the option: autotune then
        run = lowered.compile()
    dq, dk, dv = [], jnp.zeros_like(kf), jnp.zeros_like(vf)
    for i in range(blocks):
        gq, gk, gv = run(qf[:, i * rows : (i + 1) * rows], kf, vf, dyf[:, i * rows : (i + 1) * rows], i * rows)
        dq.append(gq)
        dk, dv = dk + gk, dv + gv
    return jax.block_until_ready({"dq": jnp.concatenate(dq, axis=1)[:, :s], "dk": dk, "dv": dv})


def check(row) -> None:
    if row["heads"] % row["kv_heads"]:
        raise ValueError(f"kv_heads: heads ({row['heads']}) must be a multiple of kv_heads ({row['kv_heads']})")


def seed_key(wl) -> str:
    return f"{wl.batch}x{wl.seq_len}x{wl.heads}x{wl.kv_heads}x{wl.head_dim}"


OP = Op(
    name="attention",
    title="Attention",
    fields=(
        Field("batch", int, label="Batch"),
        Field("seq_len", int, label="Seq Length"),
        Field("heads", int, label="Heads"),
        Field("kv_heads", int, same_as="heads", label="KV Heads"),
        Field("head_dim", int, label="Head Dim"),
        Field("causal", bool, default=False, label="Causal"),
    ),
    metric="tflops",
    x="seq_len",
    flops=flops,
    bytes=bytes_moved,
    inputs=inputs,
    args=args,
    reference={"torch": torch_reference, "jax": jax_reference},
    layout="(B, S, H, D)",
    check=check,
    seed_key=seed_key,
    grads=("dq", "dk", "dv"),
    outputs=lambda wl: ((wl.batch, wl.seq_len, wl.heads, wl.head_dim),),
    bwd_flops=bwd_flops,
    bwd_bytes=bwd_bytes,
    grad_reference={"torch": torch_grad_reference, "jax": jax_grad_reference},
)
