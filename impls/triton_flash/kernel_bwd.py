"""The backward pass of this project's flash-attention kernel, in Triton (FlashAttention-2 schedule), and its autograd.

The forward (kernel.py) stores each row's log-sum-exp (STORE_LSE) when an input requires grad; from it the
backward recomputes the probabilities block by block, never holding an S x S matrix:
  1. _bwd_preprocess: delta = rowsum(dO * O) in fp32, one value per (batch, head, query row);
  2. _bwd_dkdv_kernel: one program per (key block, batch * kv head), looping over query blocks (causal: the
     diagonal blocks, masked, then those below it) and over the GROUP query heads sharing that kv head, so
     dK and dV are accumulated in registers and written once, without atomics (GQA);
  3. _bwd_dq_kernel: one program per (query block, batch * head), looping over key blocks.
With P = exp(s - lse) (recomputed in base 2, like the forward), dV = Pᵀ dO, dP = dO Vᵀ, dS = P * (dP - delta),
dQ = sm_scale * dS K and dK = sm_scale * dSᵀ Q. Pointer loads through the (B, S, H, D) strides, any length
(ragged blocks are masked), fp16/bf16, head_dim 64/128/256 (256 with small, slow tiles: see BWD_CONFIGS).

FlashAttnFn is the torch.autograd.Function kernel.attention goes through when q, k or v requires grad; its
backward allocates but never synchronizes with the host, so it can be captured in a CUDA graph. The block
sizes are a fixed table per head_dim (BWD_CONFIGS), not autotuned: scripts/triton_flash/bwd_check.py --sweep
times alternatives on a GPU.
"""

from __future__ import annotations

import math
import os

import kernel
from kernel import MASK_CAUSAL, MASK_NONE, MASK_PAST_END, triton

if triton is not None:
    import triton.language as tl
    from kernel import _bf16_rne

    LOG2E = tl.constexpr(kernel.LOG2E)
else:  # kernel.py's own fallback; nothing below runs without triton
    LOG2E = kernel.LOG2E

BWD_HEAD_DIMS = (64, 128, 256)

# Per head_dim: ((BLOCK_M, BLOCK_N, warps, stages) of the dK/dV kernel, (...) of the dQ kernel), for Hopper.
# The dK/dV program keeps a BLOCK_N x D fp32 accumulator each for dK and dV (2 * BLOCK_N * D / (32 * warps)
# registers per thread) plus its BLOCK_N x BLOCK_M scores, probabilities and dP, and streams BLOCK_M query
# rows (Q, dO, lse, delta) per step; the dQ program is the mirror image (a BLOCK_M x D accumulator, BLOCK_N
# keys per step). The long side is a multiple of the short one (the causal diagonal starts on a block
# boundary of both). Chosen with ptxas for sm_90 (Triton 3.6; bwd_check.py --compile-only prints it): the
# largest tiles that compile without spilling, causal and not. 4 warps spill in dK/dV at every D (the two
# accumulators and the transposed scores do not fit one warpgroup's registers), so 8 warps (two warpgroups
# of 64 key rows each) and 32 query rows per step, Triton's tutorial shape; 64 x 128 spills when causal.
# D=256: 16 x 64 (dK/dV; 8 bytes spilled when causal) and 64 x 32 (dQ), the tiles that fit: slow but correct.
# bwd_check.py --sweep times alternatives on the GPU. Measured on the H200 (B=1 H=32 S=4096, bf16): for D=128 the
# dK/dV tile 64 x 64 on 4 warps, 2 stages, beat the ptxas choice by 10 % (it spills, and is still faster).
BWD_CONFIGS = {
    64: ((32, 128, 8, 4), (128, 64, 8, 3)),
    128: ((64, 64, 4, 2), (128, 64, 8, 3)),  # dK/dV from the H200 sweep: 358 vs 324 TFLOP/s causal, S 4096
    256: ((16, 64, 8, 2), (64, 32, 8, 2)),
}
PRE_ELEMS = 8192  # elements of O (and of dO) per program of the delta kernel: 64 each per thread of 4 warps


def unsupported_backward(head_dim: int) -> str | None:
    """Why the backward does not handle this head_dim (kernel.unsupported covers the rest), or None."""
    if head_dim not in BWD_HEAD_DIMS:
        return f"backward: head_dim {head_dim} is not supported (only {', '.join(map(str, BWD_HEAD_DIMS))})"
    return None


if triton is not None:

    @triton.jit
    def _bwd_preprocess(Out, DO, Delta, stride_ob, stride_os, stride_oh, stride_dob, stride_dos, stride_doh,
                        H, N_CTX, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
        """delta[b, h, i] = sum_d dO[b, i, h, d] * O[b, i, h, d], in fp32: the rowsum(P * dP) the softmax needs."""
        start_m = tl.program_id(0) * BLOCK_M
        bh = tl.program_id(1)
        b = (bh // H).to(tl.int64)
        h = bh % H
        offs_m = start_m + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        rows = offs_m < N_CTX
        o = tl.load(Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_os + offs_d[None, :],
                    mask=rows[:, None], other=0.0)
        do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dos + offs_d[None, :],
                     mask=rows[:, None], other=0.0)
        delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
        tl.store(Delta + bh.to(tl.int64) * N_CTX + offs_m, delta, mask=rows)

    @triton.jit
    def _dkdv_blocks(dk, dv, k, v, Q, DO, LSE, Delta, offs_n, offs_d, stride_qs, stride_dos, N_CTX, qk_scale,
                     lo, hi, MASK: tl.constexpr, BOUND: tl.constexpr, BLOCK_M: tl.constexpr,
                     INTERP_BF16: tl.constexpr):
        """Fold query blocks [lo, hi) of one head into dK, dV of one key block (all transposed: keys are rows).

        Q, DO: that head's first row; LSE, Delta: its (S,) float32 rows. MASK: MASK_NONE or MASK_CAUSAL (keys
        after the query row hidden). BOUND: query rows >= N_CTX load as zeros and get no probability (the
        ragged last block). Key rows >= N_CTX need no mask: they only reach their own dK, dV rows, never stored.
        INTERP_BF16: as in kernel._attend_blocks, the interpreter's bf16 dot is replaced by exact fp32 products
        of bf16-rounded operands. Never set on a GPU.
        """
        dtype = Q.dtype.element_ty
        for start_m in tl.range(lo, hi, BLOCK_M):
            start_m = tl.multiple_of(start_m, BLOCK_M)
            offs_m = start_m + tl.arange(0, BLOCK_M)
            q_ptrs = Q + offs_m[:, None] * stride_qs + offs_d[None, :]
            do_ptrs = DO + offs_m[:, None] * stride_dos + offs_d[None, :]
            if BOUND:
                rows = offs_m < N_CTX
                q = tl.load(q_ptrs, mask=rows[:, None], other=0.0)
                do = tl.load(do_ptrs, mask=rows[:, None], other=0.0)
                lse = tl.load(LSE + offs_m, mask=rows, other=0.0)
                delta = tl.load(Delta + offs_m, mask=rows, other=0.0)
            else:
                q = tl.load(q_ptrs)
                do = tl.load(do_ptrs)
                lse = tl.load(LSE + offs_m)
                delta = tl.load(Delta + offs_m)
            if INTERP_BF16:
                q = q.to(tl.float32)
                do = do.to(tl.float32)
            s_t = tl.dot(k, tl.trans(q))  # (BLOCK_N, BLOCK_M) raw scores, keys x queries
            p_t = tl.math.exp2(s_t * qk_scale - (lse * LOG2E)[None, :])
            if MASK == MASK_CAUSAL:
                p_t = tl.where(offs_m[None, :] >= offs_n[:, None], p_t, 0.0)
            if BOUND:
                p_t = tl.where(rows[None, :], p_t, 0.0)
            if INTERP_BF16:
                dv = tl.dot(_bf16_rne(p_t), do, dv)
            else:
                dv = tl.dot(p_t.to(dtype), do, dv)
            dp_t = tl.dot(v, tl.trans(do))
            ds_t = p_t * (dp_t - delta[None, :])  # softmax gradient w.r.t. the scaled scores
            if INTERP_BF16:
                dk = tl.dot(_bf16_rne(ds_t), q, dk)
            else:
                dk = tl.dot(ds_t.to(dtype), q, dk)
        return dk, dv

    @triton.jit
    def _bwd_dkdv_kernel(Q, K, V, DO, DK, DV, LSE, Delta, qk_scale, sm_scale,
                         stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh,
                         stride_vb, stride_vs, stride_vh, stride_dob, stride_dos, stride_doh,
                         stride_dkb, stride_dks, stride_dkh, stride_dvb, stride_dvs, stride_dvh,
                         H, GROUP, N_CTX,
                         HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                         EVEN_M: tl.constexpr, EVEN_N: tl.constexpr, INTERP_BF16: tl.constexpr = False):
        """One program: dK, dV of BLOCK_N keys of one (batch, kv head), from every query of its GROUP heads."""
        tl.static_assert(BLOCK_N % BLOCK_M == 0)  # the causal diagonal starts on a query-block boundary
        start_n = tl.program_id(0) * BLOCK_N  # causal: the heaviest key blocks (the first) go first anyway
        bhk = tl.program_id(1)
        kv_heads = H // GROUP
        b = (bhk // kv_heads).to(tl.int64)
        hk = bhk % kv_heads
        offs_n = start_n + tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, HEAD_DIM)
        k_ptrs = K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_ks + offs_d[None, :]
        v_ptrs = V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vs + offs_d[None, :]
        if EVEN_N:
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)
        else:
            k = tl.load(k_ptrs, mask=offs_n[:, None] < N_CTX, other=0.0)
            v = tl.load(v_ptrs, mask=offs_n[:, None] < N_CTX, other=0.0)
        if INTERP_BF16:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
        dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
        full = N_CTX if EVEN_M else (N_CTX // BLOCK_M) * BLOCK_M  # query rows in whole blocks
        for g in range(GROUP):  # GQA: the kv head's query heads, one after the other
            h = hk * GROUP + g
            bh = b * H + h
            q_h = Q + b * stride_qb + h * stride_qh
            do_h = DO + b * stride_dob + h * stride_doh
            lse_h = LSE + bh * N_CTX
            delta_h = Delta + bh * N_CTX
            if CAUSAL:  # queries before start_n see none of these keys
                mid = tl.minimum(start_n + BLOCK_N, N_CTX)  # the diagonal blocks: [start_n, mid)
                dk, dv = _dkdv_blocks(dk, dv, k, v, q_h, do_h, lse_h, delta_h, offs_n, offs_d, stride_qs,
                                      stride_dos, N_CTX, qk_scale, start_n, mid, MASK=MASK_CAUSAL,
                                      BOUND=not EVEN_M, BLOCK_M=BLOCK_M, INTERP_BF16=INTERP_BF16)
                lo = mid
                ragged = tl.maximum(mid, full)  # the diagonal loop may have taken the ragged block already
            else:
                lo = 0
                ragged = full
            dk, dv = _dkdv_blocks(dk, dv, k, v, q_h, do_h, lse_h, delta_h, offs_n, offs_d, stride_qs, stride_dos,
                                  N_CTX, qk_scale, lo, full, MASK=MASK_NONE, BOUND=False, BLOCK_M=BLOCK_M,
                                  INTERP_BF16=INTERP_BF16)
            if not EVEN_M:  # the ragged last query block
                dk, dv = _dkdv_blocks(dk, dv, k, v, q_h, do_h, lse_h, delta_h, offs_n, offs_d, stride_qs,
                                      stride_dos, N_CTX, qk_scale, ragged, N_CTX, MASK=MASK_NONE, BOUND=True,
                                      BLOCK_M=BLOCK_M, INTERP_BF16=INTERP_BF16)
        dk = dk * sm_scale
        if INTERP_BF16:  # exact in bf16, so the casts below do not truncate
            dk = _bf16_rne(dk)
            dv = _bf16_rne(dv)
        dk_ptrs = DK + b * stride_dkb + hk * stride_dkh + offs_n[:, None] * stride_dks + offs_d[None, :]
        dv_ptrs = DV + b * stride_dvb + hk * stride_dvh + offs_n[:, None] * stride_dvs + offs_d[None, :]
        if EVEN_N:
            tl.store(dk_ptrs, dk.to(DK.dtype.element_ty))
            tl.store(dv_ptrs, dv.to(DV.dtype.element_ty))
        else:
            tl.store(dk_ptrs, dk.to(DK.dtype.element_ty), mask=offs_n[:, None] < N_CTX)
            tl.store(dv_ptrs, dv.to(DV.dtype.element_ty), mask=offs_n[:, None] < N_CTX)

    @triton.jit
    def _dq_blocks(dq, q, do, lse2, delta, K, V, offs_m, offs_d, stride_ks, stride_vs, N_CTX, qk_scale, lo, hi,
                   MASK: tl.constexpr, BOUND: tl.constexpr, BLOCK_N: tl.constexpr, INTERP_BF16: tl.constexpr):
        """Fold key blocks [lo, hi) of one kv head into dQ of one query block. K, V: that kv head's first row.

        lse2: the rows' log-sum-exp in base 2. MASK: MASK_NONE, MASK_CAUSAL or MASK_PAST_END (keys >= N_CTX).
        BOUND: key rows >= N_CTX load as zeros (else the loads would read past the tensor).
        """
        dtype = K.dtype.element_ty
        for start_n in tl.range(lo, hi, BLOCK_N):
            start_n = tl.multiple_of(start_n, BLOCK_N)
            offs_n = start_n + tl.arange(0, BLOCK_N)
            k_ptrs = K + offs_n[:, None] * stride_ks + offs_d[None, :]
            v_ptrs = V + offs_n[:, None] * stride_vs + offs_d[None, :]
            if BOUND:
                k = tl.load(k_ptrs, mask=offs_n[:, None] < N_CTX, other=0.0)
                v = tl.load(v_ptrs, mask=offs_n[:, None] < N_CTX, other=0.0)
            else:
                k = tl.load(k_ptrs)
                v = tl.load(v_ptrs)
            if INTERP_BF16:
                k = k.to(tl.float32)
                v = v.to(tl.float32)
            s = tl.dot(q, tl.trans(k))  # (BLOCK_M, BLOCK_N) raw scores
            p = tl.math.exp2(s * qk_scale - lse2[:, None])
            if MASK == MASK_CAUSAL:
                p = tl.where(offs_m[:, None] >= offs_n[None, :], p, 0.0)
            elif MASK == MASK_PAST_END:
                p = tl.where(offs_n[None, :] < N_CTX, p, 0.0)
            dp = tl.dot(do, tl.trans(v))
            ds = p * (dp - delta[:, None])
            if INTERP_BF16:
                dq = tl.dot(_bf16_rne(ds), k, dq)
            else:
                dq = tl.dot(ds.to(dtype), k, dq)
        return dq

    @triton.jit
    def _bwd_dq_kernel(Q, K, V, DO, DQ, LSE, Delta, qk_scale, sm_scale,
                       stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh,
                       stride_vb, stride_vs, stride_vh, stride_dob, stride_dos, stride_doh,
                       stride_dqb, stride_dqs, stride_dqh,
                       H, GROUP, N_CTX,
                       HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       EVEN_M: tl.constexpr, EVEN_N: tl.constexpr, INTERP_BF16: tl.constexpr = False):
        """One program: dQ of BLOCK_M query rows of one (batch, head), all keys streamed in BLOCK_N blocks."""
        tl.static_assert(BLOCK_M % BLOCK_N == 0)  # the causal diagonal starts on a key-block boundary
        pid_m = tl.program_id(0)
        bh = tl.program_id(1)
        b = (bh // H).to(tl.int64)
        h = bh % H
        hk = h // GROUP
        if CAUSAL:  # heaviest row blocks (most keys) first, as in the forward
            start_m = (tl.num_programs(0) - 1 - pid_m) * BLOCK_M
        else:
            start_m = pid_m * BLOCK_M
        offs_m = start_m + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qs + offs_d[None, :]
        do_ptrs = DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dos + offs_d[None, :]
        lse_ptrs = LSE + bh.to(tl.int64) * N_CTX + offs_m
        delta_ptrs = Delta + bh.to(tl.int64) * N_CTX + offs_m
        if EVEN_M:
            q = tl.load(q_ptrs)
            do = tl.load(do_ptrs)
            lse = tl.load(lse_ptrs)
            delta = tl.load(delta_ptrs)
        else:  # rows past the end load zeros; their dQ is never stored
            rows = offs_m < N_CTX
            q = tl.load(q_ptrs, mask=rows[:, None], other=0.0)
            do = tl.load(do_ptrs, mask=rows[:, None], other=0.0)
            lse = tl.load(lse_ptrs, mask=rows, other=0.0)
            delta = tl.load(delta_ptrs, mask=rows, other=0.0)
        if INTERP_BF16:
            q = q.to(tl.float32)
            do = do.to(tl.float32)
        lse2 = lse * LOG2E
        k_h = K + b * stride_kb + hk * stride_kh
        v_h = V + b * stride_vb + hk * stride_vh
        dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
        if CAUSAL:
            # Keys below the diagonal are all visible: no mask; on the diagonal, keys past a valid row are
            # masked by causality, so keys >= N_CTX need bounded loads only.
            dq = _dq_blocks(dq, q, do, lse2, delta, k_h, v_h, offs_m, offs_d, stride_ks, stride_vs, N_CTX, qk_scale,
                            0, start_m, MASK=MASK_NONE, BOUND=False, BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16)
            dq = _dq_blocks(dq, q, do, lse2, delta, k_h, v_h, offs_m, offs_d, stride_ks, stride_vs, N_CTX, qk_scale,
                            start_m, tl.minimum(start_m + BLOCK_M, N_CTX), MASK=MASK_CAUSAL, BOUND=not EVEN_N,
                            BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16)
        else:
            full = N_CTX if EVEN_N else (N_CTX // BLOCK_N) * BLOCK_N
            dq = _dq_blocks(dq, q, do, lse2, delta, k_h, v_h, offs_m, offs_d, stride_ks, stride_vs, N_CTX, qk_scale,
                            0, full, MASK=MASK_NONE, BOUND=False, BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16)
            if not EVEN_N:  # one ragged last key block
                dq = _dq_blocks(dq, q, do, lse2, delta, k_h, v_h, offs_m, offs_d, stride_ks, stride_vs, N_CTX,
                                qk_scale, full, N_CTX, MASK=MASK_PAST_END, BOUND=True, BLOCK_N=BLOCK_N,
                                INTERP_BF16=INTERP_BF16)
        dq = dq * sm_scale
        if INTERP_BF16:
            dq = _bf16_rne(dq)
        dq_ptrs = DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqs + offs_d[None, :]
        if EVEN_M:
            tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty))
        else:
            tl.store(dq_ptrs, dq.to(DQ.dtype.element_ty), mask=offs_m[:, None] < N_CTX)


def _strides(t) -> tuple:
    """Batch, sequence and head strides of a (B, S, H, D) tensor (head_dim is contiguous)."""
    return t.stride()[:3]


def _last_dim_dense(t):
    """t itself when its head_dim is contiguous (the kernels' one layout rule), else a contiguous copy."""
    return t if t.stride(3) == 1 else t.contiguous()


def _grad_like(t):
    """A new tensor for t's gradient: t's shape, dtype and (where dense) strides; head_dim contiguous."""
    import torch

    g = torch.empty_like(t)
    return g if g.stride(3) == 1 else torch.empty_like(t, memory_format=torch.contiguous_format)


def check_config(head_dim: int, config) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """The config to launch: BWD_CONFIGS[head_dim] for None, else the one given after checking its block shapes."""
    reason = unsupported_backward(head_dim)
    if reason:
        raise ValueError(reason)
    if config is None:
        return BWD_CONFIGS[head_dim]
    try:
        (m1, n1, w1, s1), (m2, n2, w2, s2) = config
    except (TypeError, ValueError):
        raise ValueError(f"bwd config {config!r}: expected ((BM, BN, warps, stages) of dK/dV, (...) of dQ)") from None
    for m in (m1, n1, m2, n2):
        if m < 16 or m & (m - 1):
            raise ValueError(f"bwd config {config!r}: block sizes must be powers of two >= 16")
    if n1 % m1 or m2 % n2:
        raise ValueError(f"bwd config {config!r}: the dK/dV BLOCK_N must be a multiple of its BLOCK_M, and the "
                         "dQ BLOCK_M of its BLOCK_N (the causal diagonal)")
    return (m1, n1, w1, s1), (m2, n2, w2, s2)


def backward(do, q, k, v, o, lse, causal: bool, *, sm_scale: float | None = None, config=None, delta=None):
    """dq, dk, dv of softmax(q kᵀ · sm_scale) v for the output o and its log-sum-exp lse (kernel.forward's).

    do, q, o: (B, S, H, D); k, v: (B, S, Hkv, D); lse: float32 (B, H, S), natural log. config: ((BLOCK_M,
    BLOCK_N, warps, stages) of the dK/dV kernel, (...) of the dQ kernel); None takes BWD_CONFIGS[D].
    delta: rowsum(do * o) as float32 (B, H, S), computed here when None. The gradients are new tensors in
    the inputs' shapes and dtypes. Launches only: no host synchronization (CUDA-graph capturable).
    """
    import torch

    if triton is None:
        raise RuntimeError("triton is not installed")
    bsz, seq, heads, dim = q.shape
    kv_heads = k.shape[2]
    (m1, n1, w1, s1), (m2, n2, w2, s2) = check_config(dim, config)
    do = _last_dim_dense(do.to(q.dtype))  # autograd hands dO in o's dtype already
    scale = (1.0 / math.sqrt(dim)) if sm_scale is None else sm_scale
    interp = os.environ.get("TRITON_INTERPRET") == "1" and q.dtype == torch.bfloat16
    extra = {"INTERP_BF16": True} if interp else {}  # see kernel._attend_blocks
    if delta is None:
        rows = PRE_ELEMS // dim
        delta = torch.empty((bsz, heads, seq), device=q.device, dtype=torch.float32)
        _bwd_preprocess[(triton.cdiv(seq, rows), bsz * heads)](
            o, do, delta, *_strides(o), *_strides(do), heads, seq, HEAD_DIM=dim, BLOCK_M=rows, num_warps=4)
    dq, dk, dv = _grad_like(q), _grad_like(k), _grad_like(v)
    common = (*_strides(q), *_strides(k), *_strides(v), *_strides(do))
    _bwd_dkdv_kernel[(triton.cdiv(seq, n1), bsz * kv_heads)](
        q, k, v, do, dk, dv, lse, delta, scale * kernel.LOG2E, scale, *common, *_strides(dk), *_strides(dv),
        heads, heads // kv_heads, seq, HEAD_DIM=dim, CAUSAL=bool(causal), BLOCK_M=m1, BLOCK_N=n1,
        EVEN_M=seq % m1 == 0, EVEN_N=seq % n1 == 0, num_warps=w1, num_stages=s1, **extra)
    _bwd_dq_kernel[(triton.cdiv(seq, m2), bsz * heads)](
        q, k, v, do, dq, lse, delta, scale * kernel.LOG2E, scale, *common, *_strides(dq),
        heads, heads // kv_heads, seq, HEAD_DIM=dim, CAUSAL=bool(causal), BLOCK_M=m2, BLOCK_N=n2,
        EVEN_M=seq % m2 == 0, EVEN_N=seq % n2 == 0, num_warps=w2, num_stages=s2, **extra)
    return dq, dk, dv


try:
    import torch

    class FlashAttnFn(torch.autograd.Function):
        """kernel.attention with a backward: forward with the log-sum-exp stored, backward by the kernels above."""

        @staticmethod
        def forward(ctx, q, k, v, causal, sm_scale, path, warp_specialize, config, bwd_config):
            plan = kernel.launch_plan(q, k, v, causal, sm_scale=sm_scale, path=path, warp_specialize=warp_specialize,
                                      config=config, store_lse=True)  # checks the forward's scope
            bwd = check_config(q.shape[3], bwd_config)  # and the backward's, both before any launch
            kernel.launch(plan, path, config)
            ctx.save_for_backward(q, k, v, plan.out, plan.lse)
            ctx.causal, ctx.sm_scale, ctx.bwd_config = bool(causal), sm_scale, bwd
            return plan.out

        @staticmethod
        @torch.autograd.function.once_differentiable  # no double backward: a clear error, not a wrong one
        def backward(ctx, do):
            q, k, v, o, lse = ctx.saved_tensors
            dq, dk, dv = backward(do, q, k, v, o, lse, ctx.causal, sm_scale=ctx.sm_scale, config=ctx.bwd_config)
            return dq, dk, dv, None, None, None, None, None, None
except ImportError:  # torch is the harness's; without it nothing here runs
    FlashAttnFn = None
