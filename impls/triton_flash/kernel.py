"""This project's own flash-attention forward kernel, in Triton (FlashAttention-2 schedule, online softmax),
and the differentiable entry point: the backward kernels are in kernel_bwd.py beside it.

Canonical (B, S, H, D) tensors are read in place through their strides: no transpose anywhere. Supported:
fp16 and bf16, head_dim 64/128/256, causal (top-left) or not, MHA and GQA (heads a multiple of kv_heads),
equal query and key lengths, any length. Anything else is refused with the reason before a kernel runs.
One kernel, three load paths (variants.PATHS): `desc` (host tensor descriptors: TMA on Hopper), `devdesc`
(descriptors built in the kernel: TMA, and the only path on which Triton 3.6 warp-specializes the K/V loop)
and `ptr` (pointer loads, pipelined with cp.async). Import it with this folder on sys.path (bench.py and
scripts/triton_flash/ put it there): it reads its autotune table from variants.py beside it.
With STORE_LSE the kernel also writes each row's log-sum-exp (float32, (B, H, S)) for the backward; it is
off for a forward-only call, whose compiled code is unchanged by it. `attention` is differentiable: when
q, k or v requires grad it goes through kernel_bwd.FlashAttnFn, otherwise it launches the forward alone.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import variants

try:
    import triton
    import triton.language as tl

    constexpr = tl.constexpr  # the only kind of global a @triton.jit function may read
except ImportError:  # check() turns the missing package into a skip; the CPU tests skip too
    triton = None

    def constexpr(value):
        return value


HEAD_DIMS = (64, 128, 256)
DTYPES = ("float16", "bfloat16")
LOG2E = 1.4426950408889634
LN2 = constexpr(0.6931471805599453)  # 1 / LOG2E: the stored log-sum-exp is in base e

# The kernel's DESC argument: how Q, K, V and O are reached.
DESC_PTR = constexpr(0)  # pointer loads: Q, K, V, O are tensors
DESC_HOST = constexpr(1)  # host tensor descriptors over the 2-D views (B*S, H*D); O_desc is O's
DESC_DEVICE = constexpr(2)  # descriptors made in the kernel, one per batch over (S, H*D)
DESC_OF_PATH = {variants.PTR: int(DESC_PTR), variants.DESC: int(DESC_HOST), variants.DEVDESC: int(DESC_DEVICE)}

# _attend_blocks' MASK argument: which scores of a key block are hidden.
MASK_NONE = constexpr(0)  # every key visible
MASK_CAUSAL = constexpr(1)  # keys after the query row (the diagonal blocks)
MASK_PAST_END = constexpr(2)  # keys >= N_CTX (a ragged last key block)


def unsupported(batch: int, seq_q: int, seq_k: int, heads: int, kv_heads: int, head_dim: int, dtype: str) -> str | None:
    """Why this kernel does not handle the shape, or None: the declared scope, checked before any launch."""
    if dtype not in DTYPES:
        return f"dtype {dtype} is not supported (only {', '.join(DTYPES)})"
    if head_dim not in HEAD_DIMS:
        return f"head_dim {head_dim} is not supported (only {', '.join(map(str, HEAD_DIMS))})"
    if seq_q != seq_k:
        return f"query length {seq_q} != key length {seq_k} is not supported"
    if kv_heads < 1 or heads % kv_heads:
        return f"heads {heads} is not a multiple of kv_heads {kv_heads}"
    if seq_q * heads * head_dim >= 2**31 or batch * seq_q >= 2**31:
        return "more than 2**31 elements per sequence is not supported (int32 offsets)"
    return None


if triton is not None:

    @triton.jit
    def _bf16_rne(x):
        """fp32 rounded to the nearest bf16 (ties to even), kept in fp32: for the interpreter, see below."""
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True)

    @triton.jit
    def _attend_blocks(acc, l_i, m_i, q, K, V, k_ptrs, v_ptrs, kv_row, kv_col, offs_m, offs_n,
                       stride_ks, stride_vs, N_CTX, qk_scale, lo, hi,
                       MASK: tl.constexpr, BOUND_LOADS: tl.constexpr, DESC: tl.constexpr,
                       WARP_SPEC: tl.constexpr, BLOCK_N: tl.constexpr, INTERP_BF16: tl.constexpr):
        """Fold key blocks [lo, hi) into the online softmax. MASK: MASK_NONE, MASK_CAUSAL or MASK_PAST_END.

        BOUND_LOADS: pointer loads of key rows >= N_CTX return zeros (else they would read past the tensor).
        INTERP_BF16: the CPU interpreter only, whose bf16 dot multiplies bit patterns as integers and whose
        fp32->bf16 cast truncates: operands go to fp32 after a round-to-nearest-even to bf16, so the tests see
        what the GPU computes (exact bf16 products, fp32 sums). Never set on a GPU.
        """
        for start_n in tl.range(lo, hi, BLOCK_N, warp_specialize=WARP_SPEC):
            start_n = tl.multiple_of(start_n, BLOCK_N)
            if DESC != DESC_PTR:  # rows past this sequence are zeros or the next batch's keys: masked below if needed
                k = K.load([kv_row + start_n, kv_col])
            elif BOUND_LOADS:
                k = tl.load(k_ptrs + start_n * stride_ks, mask=(start_n + offs_n)[:, None] < N_CTX, other=0.0)
            else:
                k = tl.load(k_ptrs + start_n * stride_ks)
            if INTERP_BF16:
                k = k.to(tl.float32)
            s = tl.dot(q, k.T)  # fp32 scores, not yet scaled
            if MASK == MASK_CAUSAL:
                s = tl.where(offs_m[:, None] >= (start_n + offs_n)[None, :], s, float("-inf"))
            elif MASK == MASK_PAST_END:
                s = tl.where((start_n + offs_n)[None, :] < N_CTX, s, float("-inf"))
            # Online softmax in base 2: the scale folds into one multiply; every row keeps >= 1 finite score
            # (key 0 is always visible), so m_new is finite and exp2(-inf) gives exact zeros.
            m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
            p = tl.math.exp2(s * qk_scale - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            if DESC != DESC_PTR:
                v = V.load([kv_row + start_n, kv_col])
            elif BOUND_LOADS:
                v = tl.load(v_ptrs + start_n * stride_vs, mask=(start_n + offs_n)[:, None] < N_CTX, other=0.0)
            else:
                v = tl.load(v_ptrs + start_n * stride_vs)
            if INTERP_BF16:
                acc = tl.dot(_bf16_rne(p), v.to(tl.float32), acc * alpha[:, None])
            else:
                acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
            m_i = m_new
        return acc, l_i, m_i

    @triton.jit
    def _fwd_kernel(Q, K, V, O, O_desc, LSE, qk_scale,  # noqa: E741 - the kernel's operands by their names
                    stride_qb, stride_qs, stride_qh, stride_kb, stride_ks, stride_kh,
                    stride_vb, stride_vs, stride_vh, stride_ob, stride_os, stride_oh,
                    Z_H, H, GROUP, N_CTX,
                    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DESC: tl.constexpr, WARP_SPEC: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, EVEN_M: tl.constexpr, EVEN_N: tl.constexpr,
                    INTERP_BF16: tl.constexpr = False, STORE_LSE: tl.constexpr = False):
        """One program: BLOCK_M query rows of one (batch, head), all keys streamed in BLOCK_N blocks.

        DESC_PTR: pointer loads (Q, K, V, O are tensors). DESC_HOST: host tensor descriptors over the 2-D
        views (B*S, H*D), a tile being (row b*S + s, column h*D); O_desc is O's. DESC_DEVICE: descriptors made
        here, one per batch over (S, H*D), so their bounds are the sequence's own (Q, K, V, O are tensors).
        STORE_LSE: also write each row's natural log-sum-exp of the scaled scores to LSE, a float32 (B*H, S)
        tensor (kernel_bwd.py recomputes the probabilities from it); off, LSE is None and the code is unchanged.
        """
        tl.static_assert(BLOCK_M % BLOCK_N == 0)  # the causal diagonal starts on a key-block boundary
        pid_m = tl.program_id(0)
        bh = tl.program_id(1)
        b = bh // H
        h = bh % H
        hk = h // GROUP  # GQA: GROUP consecutive query heads share one kv head
        if CAUSAL:  # heaviest row blocks (most keys) first, so the last wave is made of short programs
            start_m = tl.num_programs(0) - 1 - pid_m
        else:
            start_m = pid_m
        offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, HEAD_DIM)
        b64 = b.to(tl.int64)
        kv_col = hk * HEAD_DIM

        if DESC == DESC_HOST:
            q_row = b * N_CTX + start_m * BLOCK_M
            kv_row = b * N_CTX
            kd, vd, od = K, V, O_desc
        elif DESC == DESC_DEVICE:
            q_row = start_m * BLOCK_M
            kv_row = 0
            qd = tl.make_tensor_descriptor(Q + b64 * stride_qb, [N_CTX, H * HEAD_DIM], [stride_qs, 1],
                                           [BLOCK_M, HEAD_DIM])
            kd = tl.make_tensor_descriptor(K + b64 * stride_kb, [N_CTX, (H // GROUP) * HEAD_DIM], [stride_ks, 1],
                                           [BLOCK_N, HEAD_DIM])
            vd = tl.make_tensor_descriptor(V + b64 * stride_vb, [N_CTX, (H // GROUP) * HEAD_DIM], [stride_vs, 1],
                                           [BLOCK_N, HEAD_DIM])
            od = tl.make_tensor_descriptor(O + b64 * stride_ob, [N_CTX, H * HEAD_DIM], [stride_os, 1],
                                           [BLOCK_M, HEAD_DIM])
        else:
            q_row = 0
            kv_row = 0
            kd, vd = K, V  # unused on this path
        if DESC != DESC_PTR:
            k_ptrs, v_ptrs = K, V  # unused on this path
            if DESC == DESC_HOST:  # a ragged block's extra rows are the next batch's queries: computed, never stored
                q = Q.load([q_row, h * HEAD_DIM])
            else:
                q = qd.load([q_row, h * HEAD_DIM])
        else:
            k_ptrs = K + b64 * stride_kb + hk * stride_kh + offs_n[:, None] * stride_ks + offs_d[None, :]
            v_ptrs = V + b64 * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vs + offs_d[None, :]
            q_ptrs = Q + b64 * stride_qb + h * stride_qh + offs_m[:, None] * stride_qs + offs_d[None, :]
            if EVEN_M:
                q = tl.load(q_ptrs)
            else:
                q = tl.load(q_ptrs, mask=offs_m[:, None] < N_CTX, other=0.0)

        if INTERP_BF16:
            q = q.to(tl.float32)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
        if WARP_SPEC:  # one loop: Triton 3.6's Hopper warp specialization fails on a kernel with two
            if CAUSAL:  # the causal mask on every block, not only the diagonal: a select per score
                acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, kd, vd, k_ptrs, v_ptrs, kv_row, kv_col, offs_m,
                                               offs_n, stride_ks, stride_vs, N_CTX, qk_scale, DESC=DESC,
                                               WARP_SPEC=WARP_SPEC, BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16, lo=0,
                                               hi=tl.minimum((start_m + 1) * BLOCK_M, N_CTX), MASK=MASK_CAUSAL,
                                               BOUND_LOADS=not EVEN_N)
            elif EVEN_N:
                acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, kd, vd, k_ptrs, v_ptrs, kv_row, kv_col, offs_m,
                                               offs_n, stride_ks, stride_vs, N_CTX, qk_scale, DESC=DESC,
                                               WARP_SPEC=WARP_SPEC, BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16, lo=0,
                                               hi=N_CTX, MASK=MASK_NONE, BOUND_LOADS=False)
            else:
                acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, kd, vd, k_ptrs, v_ptrs, kv_row, kv_col, offs_m,
                                               offs_n, stride_ks, stride_vs, N_CTX, qk_scale, DESC=DESC,
                                               WARP_SPEC=WARP_SPEC, BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16, lo=0,
                                               hi=N_CTX, MASK=MASK_PAST_END, BOUND_LOADS=True)
        elif CAUSAL:
            diag = start_m * BLOCK_M  # keys below it are all visible: no mask in the main loop
            acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, kd, vd, k_ptrs, v_ptrs, kv_row, kv_col, offs_m, offs_n,
                                           stride_ks, stride_vs, N_CTX, qk_scale, DESC=DESC, WARP_SPEC=WARP_SPEC,
                                           BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16, lo=0, hi=diag, MASK=MASK_NONE,
                                           BOUND_LOADS=False)
            # Diagonal blocks: keys past a valid row are masked by causality, so keys >= N_CTX need no mask.
            acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, kd, vd, k_ptrs, v_ptrs, kv_row, kv_col, offs_m, offs_n,
                                           stride_ks, stride_vs, N_CTX, qk_scale, DESC=DESC, WARP_SPEC=WARP_SPEC,
                                           BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16, lo=diag,
                                           hi=tl.minimum(diag + BLOCK_M, N_CTX), MASK=MASK_CAUSAL,
                                           BOUND_LOADS=not EVEN_N)
        else:
            full = N_CTX if EVEN_N else (N_CTX // BLOCK_N) * BLOCK_N
            acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, kd, vd, k_ptrs, v_ptrs, kv_row, kv_col, offs_m, offs_n,
                                           stride_ks, stride_vs, N_CTX, qk_scale, DESC=DESC, WARP_SPEC=WARP_SPEC,
                                           BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16, lo=0, hi=full, MASK=MASK_NONE,
                                           BOUND_LOADS=False)
            if not EVEN_N:  # one ragged last key block
                acc, l_i, m_i = _attend_blocks(acc, l_i, m_i, q, kd, vd, k_ptrs, v_ptrs, kv_row, kv_col, offs_m,
                                               offs_n, stride_ks, stride_vs, N_CTX, qk_scale, DESC=DESC,
                                               WARP_SPEC=WARP_SPEC, BLOCK_N=BLOCK_N, INTERP_BF16=INTERP_BF16, lo=full,
                                               hi=N_CTX, MASK=MASK_PAST_END, BOUND_LOADS=True)

        out = acc / l_i[:, None]
        if INTERP_BF16:
            out = _bf16_rne(out)  # exact in bf16, so the cast below does not truncate
        out = out.to(O.dtype.element_ty)
        if DESC == DESC_DEVICE:  # the descriptor's bounds are the sequence's: the TMA unit clips a ragged block
            od.store([q_row, h * HEAD_DIM], out)
        elif DESC == DESC_HOST and EVEN_M:  # a ragged block would spill into the next batch's rows: pointers below
            od.store([q_row, h * HEAD_DIM], out)
        else:
            o_ptrs = O + b64 * stride_ob + h * stride_oh + offs_m[:, None] * stride_os + offs_d[None, :]
            if EVEN_M:
                tl.store(o_ptrs, out)
            else:
                tl.store(o_ptrs, out, mask=offs_m[:, None] < N_CTX)
        if STORE_LSE:  # m_i + log2(l_i) is the base-2 log-sum-exp of the scaled scores; stored in base e
            lse_ptrs = LSE + bh.to(tl.int64) * N_CTX + offs_m
            if EVEN_M:
                tl.store(lse_ptrs, (m_i + tl.math.log2(l_i)) * LN2)
            else:  # rows past the end (on path desc the next batch's queries) are not stored
                tl.store(lse_ptrs, (m_i + tl.math.log2(l_i)) * LN2, mask=offs_m < N_CTX)

    _EVEN = {"EVEN_M": lambda a: a["N_CTX"] % a["BLOCK_M"] == 0, "EVEN_N": lambda a: a["N_CTX"] % a["BLOCK_N"] == 0}
    _fwd_fixed = triton.heuristics(_EVEN)(_fwd_kernel)


def _set_block_shapes(nargs: dict) -> None:
    """Autotune pre-hook: a host descriptor's box must match the config being launched."""
    if nargs["DESC"] != DESC_OF_PATH[variants.DESC]:
        return
    d, bm, bn = nargs["HEAD_DIM"], nargs["BLOCK_M"], nargs["BLOCK_N"]
    nargs["Q"].block_shape = [bm, d]
    nargs["O_desc"].block_shape = [bm, d]
    nargs["K"].block_shape = [bn, d]
    nargs["V"].block_shape = [bn, d]


_tuned = None


def _autotuned():
    """The autotuned kernel, built on first use (triton.autotune benchmarks on CUDA only)."""
    global _tuned
    if _tuned is None:
        every = sorted({c for cs in variants.CONFIGS.values() for c in cs})
        configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s, pre_hook=_set_block_shapes)
                   for bm, bn, w, s in every]
        _tuned = triton.autotune(configs, key=["N_CTX", "Z_H", "HEAD_DIM", "CAUSAL", "DESC", "WARP_SPEC"],
                                 prune_configs_by={"early_config_prune": variants.prune_configs})(_fwd_fixed)
    return _tuned


def _scratch(size: int, alignment: int, stream):
    """Global memory where in-kernel descriptors are written (path devdesc); a graph capture keeps it."""
    import torch

    return torch.empty(size, device="cuda", dtype=torch.int8)


@dataclass(frozen=True)
class Launch:
    """One call of _fwd_kernel, by parameter name: the output it fills, its arguments and its compile-time flags."""

    out: object
    args: dict  # runtime arguments, in the kernel's order
    flags: dict  # constexprs; with a pinned config also BLOCK_M, BLOCK_N, num_warps, num_stages
    lse: object = None  # the (B, H, S) float32 log-sum-exp it fills too (store_lse), or None

    def grid(self, block_m: int) -> tuple[int, int]:
        """(query blocks, batch * heads): one program per BLOCK_M rows of one head."""
        return triton.cdiv(self.args["N_CTX"], block_m), self.args["Z_H"]


def attention(q, k, v, causal: bool = False, *, sm_scale: float | None = None, path: str = variants.DESC,
              warp_specialize: bool = False, config: tuple[int, int, int, int] | None = None, bwd_config=None):
    """softmax(q kᵀ · sm_scale) v for (B, S, H, D) q and (B, S, Hkv, D) k, v; returns a new (B, S, H, D) tensor.

    path: "desc" (host tensor descriptors: TMA), "devdesc" (descriptors made in the kernel: TMA, exact
    per-sequence bounds) or "ptr" (pointer loads). config (BLOCK_M, BLOCK_N, warps, stages) launches that
    config alone; None autotunes. Raises ValueError for anything the kernel does not support.
    Differentiable: where q, k or v requires grad (and grad mode is on), the call goes through
    kernel_bwd.FlashAttnFn, whose forward also stores the log-sum-exp and whose backward runs kernel_bwd's
    kernels (bwd_config: see kernel_bwd.backward). Otherwise it is the forward alone, as it always was.
    """
    if (q.requires_grad or k.requires_grad or v.requires_grad) and _grad_enabled():
        import kernel_bwd  # beside this module; it imports this one, so not at the top

        if warp_specialize:  # on the H200 the warp-specialized forward's stored LSE was wrong (dq rel-L2 ~5e3
            path, warp_specialize, config = variants.DESC, False, None  # at D=128 non-causal): the plain forward
        return kernel_bwd.FlashAttnFn.apply(q, k, v, causal, sm_scale, path, warp_specialize, config, bwd_config)
    return forward(q, k, v, causal, sm_scale=sm_scale, path=path, warp_specialize=warp_specialize,
                   config=config).out


def _grad_enabled() -> bool:
    import torch

    return torch.is_grad_enabled()


def forward(q, k, v, causal: bool = False, *, sm_scale=None, path=variants.DESC, warp_specialize=False, config=None,
            store_lse: bool = False) -> Launch:
    """Launch the forward kernel; the Launch it ran (its .out, and its .lse with store_lse). No autograd."""
    plan = launch_plan(q, k, v, causal, sm_scale=sm_scale, path=path, warp_specialize=warp_specialize,
                       config=config, store_lse=store_lse)
    launch(plan, path, config)
    return plan


def launch(plan: Launch, path: str, config) -> None:
    """Run the forward kernel for a Launch from launch_plan (made with the same path and config)."""
    if path == variants.DEVDESC and plan.out.is_cuda:
        triton.set_allocator(_scratch)
    if config is None:
        _autotuned()[lambda meta: plan.grid(meta["BLOCK_M"])](**plan.args, **plan.flags)
    else:
        _fwd_fixed[plan.grid(config[0])](**plan.args, **plan.flags)


def launch_plan(q, k, v, causal, *, sm_scale=None, path=variants.DESC, warp_specialize=False, config=None,
                store_lse=False) -> Launch:
    """The Launch for `attention`, after checking everything the kernel does not support."""
    import torch

    if triton is None:
        raise RuntimeError("triton is not installed")
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape or q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError(f"expected q (B, S, H, D) and k, v (B, S, Hkv, D); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    bsz, seq, heads, dim = q.shape
    kv_heads = k.shape[2]
    reason = unsupported(bsz, seq, k.shape[1], heads, kv_heads, dim, str(q.dtype).removeprefix("torch."))
    if reason:
        raise ValueError(reason)
    if path not in DESC_OF_PATH:
        raise ValueError(f"path {path!r}: expected one of {', '.join(DESC_OF_PATH)}")
    if warp_specialize and path != variants.DEVDESC:  # with host descriptors Triton 3.6's pass fails on 4 warps
        raise ValueError("warp specialization needs path 'devdesc' (in-kernel tensor descriptors)")
    if any(t.stride(3) != 1 for t in (q, k, v)):
        raise ValueError("the last (head_dim) dimension must be contiguous")
    if path != variants.PTR and not all(t.is_contiguous() for t in (q, k, v)):
        raise ValueError(f"path {path} needs contiguous (B, S, H, D) tensors (make them so in prepare)")
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    srcs = (q, k, v, out)
    if path == variants.DESC:
        from triton.tools.tensor_descriptor import TensorDescriptor

        bm, bn = (config[0], config[1]) if config else (16, 16)  # the autotune pre-hook sets the real boxes
        srcs = tuple(TensorDescriptor(t.view(bsz * seq, t.shape[2] * dim), [bsz * seq, t.shape[2] * dim],
                                      [t.shape[2] * dim, 1], [rows, dim]) for t, rows in zip(srcs, (bm, bn, bn, bm)))
    scale = (1.0 / math.sqrt(dim)) if sm_scale is None else sm_scale
    lse = torch.empty((bsz, heads, seq), device=q.device, dtype=torch.float32) if store_lse else None
    args = dict(Q=srcs[0], K=srcs[1], V=srcs[2], O=out, O_desc=srcs[3], LSE=lse, qk_scale=scale * LOG2E)
    for name, t in (("q", q), ("k", k), ("v", v), ("o", out)):
        args.update(zip((f"stride_{name}b", f"stride_{name}s", f"stride_{name}h"), t.stride()[:3]))
    args.update(Z_H=bsz * heads, H=heads, GROUP=heads // kv_heads, N_CTX=seq)
    flags = dict(HEAD_DIM=dim, CAUSAL=bool(causal), DESC=DESC_OF_PATH[path], WARP_SPEC=bool(warp_specialize))
    if os.environ.get("TRITON_INTERPRET") == "1" and q.dtype == torch.bfloat16:
        flags["INTERP_BF16"] = True  # see _attend_blocks: the interpreter's bf16 dot is wrong, the GPU's is not
    if store_lse:
        flags["STORE_LSE"] = True
    if config is not None:
        flags.update(BLOCK_M=config[0], BLOCK_N=config[1], num_warps=config[2], num_stages=config[3])
    return Launch(out=out, args=args, flags=flags, lse=lse)
