"""Rotary position embedding (rotate_half layout: GPT-NeoX / Llama / HF) as one Triton kernel, forward and backward.

out = x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]), for q (B, S, H, D) and
k (B, S, Hk, D) in one launch. Written as a memory-bound kernel: each element of q and k is read once and its
output written once (new tensors), the math is fp32 in registers, and one program rotates every head of BLOCK_S
consecutive (b, s) positions, so the cos/sin rows of those positions are loaded once and reused for all q and k
heads. Per position, x splits into its two halves x1 = x[:D/2], x2 = x[D/2:] (two contiguous loads each), and

    out1 = x1 * cos1 - x2 * sin1        out2 = x2 * cos2 + x1 * sin2

with cos1/cos2 (sin1/sin2) the halves of cos (sin): full-width cos/sin are read as given, so halves that are
not equal are handled exactly too. The backward is the transposed rotation, the same kernel with TRANSPOSE:

    dx1 = g1 * cos1 + g2 * sin2         dx2 = g2 * cos2 - g1 * sin1

(with equal halves: the forward with sin negated). Launch sizes come from a fixed table (launch_config), no
autotuning: the first call compiles one kernel and runs it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Elements of x (both halves, padded) one program rotates per loop step: 8 warps hold 16 fp32 values of each
# half per thread (two 16-byte bf16 vectors), enough bytes in flight per SM at the occupancy those registers allow.
TILE_ELEMS = 4096
# num_warps by the tile's element count (the usual memory-bound table): <= 2048 -> 4, <= 8192 -> 8, above -> 16.
WARPS_SMALL, WARPS_MEDIUM, WARPS_LARGE = 4, 8, 16
SMALL_TILE, MEDIUM_TILE = 2048, 8192
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _rotate_heads(X, XO, in_row, out_row, row_ok, c1, c2, sa, sb, stride_h,
                  NH: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_HALF: tl.constexpr,
                  MASKED: tl.constexpr):
    """Rotate the NH heads of BLOCK_S positions, BLOCK_H heads per step: out1 = x1*c1 + x2*sa, out2 = x2*c2 + x1*sb.

    in_row / out_row: [BLOCK_S, 1, 1] element offsets of each position's row in X / XO (XO is contiguous);
    row_ok: [BLOCK_S, 1, 1] positions that exist. MASKED: some lane is past NH heads, HALF or the last row.
    """
    d = tl.arange(0, BLOCK_HALF)[None, None, :]
    for h0 in range(0, NH, BLOCK_H):
        h = h0 + tl.arange(0, BLOCK_H)[None, :, None]
        src = X + in_row + h.to(tl.int64) * stride_h + d  # a strided input's head stride may be S*D
        dst = XO + out_row + h * (2 * HALF) + d
        if MASKED:
            m = row_ok & (h < NH) & (d < HALF)
            x1 = tl.load(src, mask=m, other=0.0).to(tl.float32)
            x2 = tl.load(src + HALF, mask=m, other=0.0).to(tl.float32)
        else:
            x1 = tl.load(src).to(tl.float32)
            x2 = tl.load(src + HALF).to(tl.float32)
        o1 = (x1 * c1 + x2 * sa).to(XO.dtype.element_ty)
        o2 = (x2 * c2 + x1 * sb).to(XO.dtype.element_ty)
        if MASKED:
            tl.store(dst, o1, mask=m)
            tl.store(dst + HALF, o2, mask=m)
        else:
            tl.store(dst, o1)
            tl.store(dst + HALF, o2)


@triton.jit
def _rotary_kernel(Q, K, COS, SIN, QO, KO, n_rows, seq_len,
                   stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh, stride_cos, stride_sin,
                   H: tl.constexpr, HK: tl.constexpr, HALF: tl.constexpr,
                   BLOCK_S: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_HK: tl.constexpr, BLOCK_HALF: tl.constexpr,
                   MASK_COS: tl.constexpr, MASK_Q: tl.constexpr, MASK_K: tl.constexpr, TRANSPOSE: tl.constexpr):
    """One program: positions [pid*BLOCK_S, +BLOCK_S) of the flattened (B*S) rows, all q heads then all k heads.

    MASK_*: whether some lane of that tensor's tiles is past the last row, D/2 or the head count (else no masks).
    """
    rows = tl.program_id(0) * BLOCK_S + tl.arange(0, BLOCK_S)
    row_ok = (rows < n_rows)[:, None, None]
    b = (rows // seq_len).to(tl.int64)[:, None, None]
    s = (rows % seq_len).to(tl.int64)[:, None, None]
    d = tl.arange(0, BLOCK_HALF)[None, None, :]
    cos_p = COS + s * stride_cos + d
    sin_p = SIN + s * stride_sin + d
    if not MASK_COS:
        c1 = tl.load(cos_p).to(tl.float32)
        c2 = tl.load(cos_p + HALF).to(tl.float32)
        s1 = tl.load(sin_p).to(tl.float32)
        s2 = tl.load(sin_p + HALF).to(tl.float32)
    else:
        m = row_ok & (d < HALF)
        c1 = tl.load(cos_p, mask=m, other=0.0).to(tl.float32)
        c2 = tl.load(cos_p + HALF, mask=m, other=0.0).to(tl.float32)
        s1 = tl.load(sin_p, mask=m, other=0.0).to(tl.float32)
        s2 = tl.load(sin_p + HALF, mask=m, other=0.0).to(tl.float32)
    if TRANSPOSE:  # the rotation's transpose: the gradient's pass
        sa = s2
        sb = -s1
    else:
        sa = -s1
        sb = s2
    rows64 = rows.to(tl.int64)[:, None, None]
    _rotate_heads(Q, QO, b * stride_qb + s * stride_qs, rows64 * (H * 2 * HALF), row_ok, c1, c2, sa, sb, stride_qh,
                  H, HALF, BLOCK_H, BLOCK_HALF, MASK_Q)
    _rotate_heads(K, KO, b * stride_kb + s * stride_ks, rows64 * (HK * 2 * HALF), row_ok, c1, c2, sa, sb, stride_kh,
                  HK, HALF, BLOCK_HK, BLOCK_HALF, MASK_K)


def warps_for(tile_elems: int) -> int:
    """num_warps for a program whose largest tile has this many elements."""
    if tile_elems <= SMALL_TILE:
        return WARPS_SMALL
    return WARPS_MEDIUM if tile_elems <= MEDIUM_TILE else WARPS_LARGE


def launch_config(n_rows: int, heads: int, kv_heads: int, head_dim: int) -> dict:
    """Block sizes and num_warps for n_rows = B*S positions: the fixed heuristic table, no autotuning.

    A position's q heads (padded to powers of two) fill up to TILE_ELEMS per step; when they fill less, several
    positions share a program (BLOCK_S) so each program still moves a full tile; when they fill more, the heads
    are rotated BLOCK_H at a time. k uses the same positions and at most as many heads per step.
    """
    block_half = triton.next_power_of_2(head_dim // 2)
    width = 2 * block_half  # one head's padded row
    all_heads = triton.next_power_of_2(heads)
    if all_heads * width >= TILE_ELEMS:
        block_s, block_h = 1, max(1, TILE_ELEMS // width)
    else:
        block_s = min(TILE_ELEMS // (all_heads * width), triton.next_power_of_2(max(n_rows, 1)))
        block_h = all_heads
    block_hk = min(triton.next_power_of_2(kv_heads), block_h)
    return dict(BLOCK_S=block_s, BLOCK_H=block_h, BLOCK_HK=block_hk, BLOCK_HALF=block_half,
                num_warps=warps_for(block_s * block_h * width))


def _check(q, k, cos, sin) -> None:
    """ValueError naming the argument for anything the kernel does not handle."""
    for name, t in (("q", q), ("k", k), ("cos", cos), ("sin", sin)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"rotary: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in DTYPES:
            raise ValueError(f"rotary: {name} dtype {t.dtype} is not supported (float32, float16, bfloat16)")
        if t.device != q.device:
            raise ValueError(f"rotary: {name} is on {t.device}, q on {q.device}")
    if q.dim() != 4 or k.dim() != 4:
        raise ValueError(f"rotary: q and k must be (B, S, H, D); got q {tuple(q.shape)}, k {tuple(k.shape)}")
    bsz, seq, _, dim = q.shape
    if k.shape[0] != bsz or k.shape[1] != seq or k.shape[3] != dim:
        raise ValueError(f"rotary: k {tuple(k.shape)} must match q {tuple(q.shape)} in B, S and D")
    if dim % 2:
        raise ValueError(f"rotary: head_dim {dim} must be even (rotate_half splits it in two)")
    for name, t in (("cos", cos), ("sin", sin)):
        if tuple(t.shape) != (seq, dim):
            raise ValueError(f"rotary: {name} must be (S, D) = ({seq}, {dim}); got {tuple(t.shape)}")
    for name, t in (("q", q), ("k", k), ("cos", cos), ("sin", sin)):
        if t.numel() and t.stride(-1) != 1:
            raise ValueError(f"rotary: {name}'s last dimension must be contiguous (stride 1), got {t.stride(-1)}")


def _launch(q, k, cos, sin, transpose: bool):
    """New contiguous outputs for q and k, filled by one launch; transpose=True applies the rotation's transpose."""
    _check(q, k, cos, sin)
    bsz, seq, heads, dim = q.shape
    kv_heads = k.shape[2]
    q_out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    k_out = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    n_rows = bsz * seq
    if n_rows == 0 or dim == 0 or heads + kv_heads == 0:
        return q_out, k_out
    cfg = launch_config(n_rows, heads, kv_heads, dim)
    ragged = n_rows % cfg["BLOCK_S"] != 0 or dim // 2 != cfg["BLOCK_HALF"]
    grid = (triton.cdiv(n_rows, cfg["BLOCK_S"]),)
    _rotary_kernel[grid](q, k, cos, sin, q_out, k_out, n_rows, seq,
                         q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
                         cos.stride(0), sin.stride(0), H=heads, HK=kv_heads, HALF=dim // 2,
                         MASK_COS=ragged, MASK_Q=ragged or heads % cfg["BLOCK_H"] != 0,
                         MASK_K=ragged or kv_heads % cfg["BLOCK_HK"] != 0, TRANSPOSE=transpose, **cfg)
    return q_out, k_out


def rotary(q, k, cos, sin):
    """(q_out, k_out) = (q, k) * cos + rotate_half((q, k)) * sin; q (B, S, H, D), k (B, S, Hk, D), cos/sin (S, D).

    Outputs are new contiguous tensors in the inputs' dtypes; inputs may be strided except in their last dim.
    """
    return _launch(q, k, cos, sin, transpose=False)


class RotaryFn(torch.autograd.Function):
    """rotary with a Triton backward: dq, dk by the transposed rotation (cos/sin get no gradient)."""

    @staticmethod
    def forward(ctx, q, k, cos, sin):
        if cos.requires_grad or sin.requires_grad:
            raise ValueError("rotary_fn: cos and sin get no gradient here; pass them detached")
        ctx.save_for_backward(cos, sin)
        return _launch(q, k, cos, sin, transpose=False)

    @staticmethod
    def backward(ctx, grad_q, grad_k):
        cos, sin = ctx.saved_tensors
        # autograd may hand strided grads (e.g. expanded ones from a .sum()): the kernel needs unit last strides
        grad_q, grad_k = (g if g.stride(-1) == 1 else g.contiguous() for g in (grad_q, grad_k))
        dq, dk = _launch(grad_q, grad_k, cos, sin, transpose=True)
        return dq, dk, None, None


def rotary_fn(q, k, cos, sin):
    """rotary, differentiable in q and k (the backward is the same kernel, transposed)."""
    return RotaryFn.apply(q, k, cos, sin)
