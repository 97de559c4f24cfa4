"""LayerNorm over the last dim as a memory-bound Triton kernel (forward): one pass over memory.

The design of impls/rms_norm_triton/kernel.py (whole rows in registers, a fixed launch table) with the row's mean
subtracted before the variance (two reductions over registers, no second read of x) and the bias added.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

TILE_ELEMS = 4096  # elements one program holds at least (rows x padded row), so short rows share a program
MAX_BLOCK_M = 16
# num_warps by the tile's element count (the usual memory-bound table): <= 2048 -> 4, <= 8192 -> 8, above -> 16.
WARPS_SMALL, WARPS_MEDIUM, WARPS_LARGE = 4, 8, 16
SMALL_TILE, MEDIUM_TILE = 2048, 8192
MAX_ROW = 65536  # a row kept in registers; longer rows are refused (ValueError)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _norm_fwd(X, W, B, Y, n_rows, N: tl.constexpr, eps, LAYER: tl.constexpr, BLOCK_M: tl.constexpr,
              BLOCK_N: tl.constexpr, MASKED: tl.constexpr, MEAN, RSTD, STATS: tl.constexpr):
    """Normalise BLOCK_M whole rows; STATS (the training forward): also store each row's rstd (LAYER: and mean) in
    fp32 for the backward (MEAN, RSTD; None without STATS, and the forward's code is what it was)."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]
    cols = tl.arange(0, BLOCK_N)[None, :]
    offs = rows * N + cols
    if MASKED:
        mask = (rows < n_rows) & (cols < N)
        x = tl.load(X + offs, mask=mask, other=0.0, eviction_policy="evict_first").to(tl.float32)
        w = tl.load(W + cols, mask=cols < N, other=0.0, eviction_policy="evict_last").to(tl.float32)
    else:
        x = tl.load(X + offs, eviction_policy="evict_first").to(tl.float32)
        w = tl.load(W + cols, eviction_policy="evict_last").to(tl.float32)
    if LAYER:
        mean = tl.sum(x, axis=1)[:, None] / N
        x = x - mean
        if MASKED:
            x = tl.where(cols < N, x, 0.0)
    rstd = tl.rsqrt(tl.sum(x * x, axis=1)[:, None] / N + eps)
    y = x * rstd * w
    if LAYER:
        if MASKED:
            y += tl.load(B + cols, mask=cols < N, other=0.0, eviction_policy="evict_last").to(tl.float32)
        else:
            y += tl.load(B + cols, eviction_policy="evict_last").to(tl.float32)
    if MASKED:
        tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)
    else:
        tl.store(Y + offs, y.to(Y.dtype.element_ty))
    if STATS:
        if MASKED:
            tl.store(RSTD + rows, rstd, mask=rows < n_rows)
            if LAYER:
                tl.store(MEAN + rows, mean, mask=rows < n_rows)
        else:
            tl.store(RSTD + rows, rstd)
            if LAYER:
                tl.store(MEAN + rows, mean)


def warps_for(tile_elems: int) -> int:
    if tile_elems <= SMALL_TILE:
        return WARPS_SMALL
    return WARPS_MEDIUM if tile_elems <= MEDIUM_TILE else WARPS_LARGE


def launch_config(n_rows: int, n: int) -> dict:
    """BLOCK_M, BLOCK_N, MASKED and num_warps for n_rows rows of n elements: the fixed table."""
    block_n = triton.next_power_of_2(n)
    block_m = max(1, min(MAX_BLOCK_M, TILE_ELEMS // block_n, triton.next_power_of_2(max(n_rows, 1))))
    return dict(BLOCK_M=block_m, BLOCK_N=block_n, MASKED=n_rows % block_m != 0 or n != block_n,
                num_warps=warps_for(block_m * block_n))


def _check(x, weight, bias, op: str) -> None:
    for name, t in (("x", x), ("weight", weight)) + ((("bias", bias),) if bias is not None else ()):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in DTYPES:
            raise ValueError(f"{op}: {name} dtype {t.dtype} is not supported (float32, float16, bfloat16)")
    n = x.shape[-1] if x.dim() else 0
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (n,):
            raise ValueError(f"{op}: {name} shape {tuple(t.shape)} != ({n},), the last dim of x")
    if not 0 < n <= MAX_ROW:
        raise ValueError(f"{op}: the last dim of x must be 1..{MAX_ROW}, got shape {tuple(x.shape)}")


def _norm(x, weight, bias, eps: float, layer: bool):
    op = "layer_norm" if layer else "rms_norm"
    _check(x, weight, bias, op)
    n = x.shape[-1]
    x2 = x.contiguous().view(-1, n)
    y = torch.empty_like(x2)
    n_rows = x2.shape[0]
    if n_rows:
        cfg = launch_config(n_rows, n)
        grid = (triton.cdiv(n_rows, cfg["BLOCK_M"]),)
        _norm_fwd[grid](x2, weight.contiguous(), bias.contiguous() if layer else weight, y, n_rows, N=n, eps=eps,
                        LAYER=layer, MEAN=None, RSTD=None, STATS=False, **cfg)
    return y.view(x.shape)


def layer_norm(x, weight, bias, eps: float = 1e-5):
    """(x − mean) / sqrt(var + eps) * weight + bias (biased variance), a new tensor in x's dtype (fp32 math)."""
    return _norm(x, weight, bias, eps, True)


# --- Training: the forward that keeps each row's statistics, and the backward ------------------------------------
# Beside the forward above, which stays as it is: with no input requiring grad the differentiable entry point runs
# that kernel and nothing else. With grad, _norm_fwd with STATS (the same kernel, the same launch table) also
# writes each row's rstd (and mean, LAYER) in fp32, 4 or 8 bytes a row. The backward is one pass over x and dy:
# with xhat = (x - mean) * rstd (mean = 0 for RMSNorm), g = w * dy and per-row means <.> over the row,
#
#     dx = rstd * (g - xhat * <g * xhat>)               RMSNorm
#     dx = rstd * (g - xhat * <g * xhat> - <g>)         LayerNorm
#     dw = sum over rows of dy * xhat                   db = sum over rows of dy
#
# A program takes a contiguous chunk of rows (BLOCK_M at a time), writes their dx in x's dtype and keeps its dw
# (db) sums in fp32 registers; at the end it writes them as one fp32 row of a (programs, D) buffer, which a
# second small kernel sums over programs into weight's (bias's) dtype. Programs: one or two per multiprocessor on
# a GPU (PROGRAMS_PER_SM, WIDE_PROGRAMS_PER_SM), CPU_PROGRAMS on the CPU (the interpreter). No host sync anywhere:
# CUDA-graph capturable.

BWD_TILE_ELEMS = 4096  # elements of x one backward loop step holds (rows x padded row)
BWD_MAX_BLOCK_M = 16
BWD_SMALL_TILE, BWD_MEDIUM_TILE = 2048, 8192  # num_warps by the step's elements: <= 2048 -> 4, <= 8192 -> 8, above -> 16
# Backward programs per multiprocessor (each writes one fp32 partial row of dw, db). On an H200 (bf16, the large
# and seed suites' shapes) 2 beat 1 by 25-35% at D = 2048-4096; at D = 8192, where one program's registers fill
# most of an SM, 1 beat 2 by 2-5% (scripts/norms/bwd_check.py --sweep).
PROGRAMS_PER_SM = 2
WIDE_ROW, WIDE_PROGRAMS_PER_SM = 8192, 1  # padded rows of at least WIDE_ROW elements
CPU_PROGRAMS = 4  # on the CPU: a few, so small shapes reach several partial rows and a ragged last chunk
SUM_BLOCK_P, SUM_BLOCK_C, SUM_WARPS = 32, 64, 4  # the partials' sum: programs x columns per step


@triton.jit
def _norm_bwd(X, W, DY, DX, MEAN, RSTD, DW_PART, DB_PART, n_rows, rows_per_prog, N: tl.constexpr,
              LAYER: tl.constexpr, PARTIALS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              MASK_COLS: tl.constexpr):
    """dx of rows [pid * rows_per_prog, +rows_per_prog) and (PARTIALS) their dw (LAYER: db) sums as row pid of
    DW_PART (DB_PART), fp32. rows_per_prog is a multiple of BLOCK_M; rows past n_rows are masked."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)[None, :]
    if MASK_COLS:
        w = tl.load(W + cols, mask=cols < N, other=0.0, eviction_policy="evict_last").to(tl.float32)
    else:
        w = tl.load(W + cols, eviction_policy="evict_last").to(tl.float32)
    first = pid.to(tl.int64) * rows_per_prog
    end = tl.minimum(first + rows_per_prog, n_rows)
    dw = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    db = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for step in range(0, rows_per_prog, BLOCK_M):
        rows = first + step + tl.arange(0, BLOCK_M)[:, None]
        row_ok = rows < end
        if MASK_COLS:
            mask = row_ok & (cols < N)
        else:
            mask = row_ok  # broadcast along the row: constant there, so the loads stay vectorized
        offs = rows * N + cols
        # masked lanes read 0: they add nothing to the row sums (g = 0 there) nor to dw, db
        x = tl.load(X + offs, mask=mask, other=0.0, eviction_policy="evict_first").to(tl.float32)
        dy = tl.load(DY + offs, mask=mask, other=0.0, eviction_policy="evict_first").to(tl.float32)
        rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)
        if LAYER:
            xhat = (x - tl.load(MEAN + rows, mask=row_ok, other=0.0)) * rstd
        else:
            xhat = x * rstd
        g = w * dy
        c1 = tl.sum(g * xhat, axis=1)[:, None] / N
        if LAYER:
            dx = (g - xhat * c1 - tl.sum(g, axis=1)[:, None] / N) * rstd
        else:
            dx = (g - xhat * c1) * rstd
        tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=mask)
        if PARTIALS:
            dw += dy * xhat
            if LAYER:
                db += dy
    if PARTIALS:
        out = pid * N + tl.arange(0, BLOCK_N)
        col_ok = tl.arange(0, BLOCK_N) < N
        tl.store(DW_PART + out, tl.sum(dw, axis=0), mask=col_ok)
        if LAYER:
            tl.store(DB_PART + out, tl.sum(db, axis=0), mask=col_ok)


@triton.jit
def _sum_partials(PART, OUT0, OUT1, n_parts, N: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """OUT<k>[c] = sum over p of PART[k, p, c] (fp32), k = program_id(1), stored in OUT<k>'s dtype."""
    k = tl.program_id(1)
    cols = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    base = PART + k.to(tl.int64) * n_parts * N
    acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    for p0 in range(0, n_parts, BLOCK_P):
        parts = p0 + tl.arange(0, BLOCK_P)[:, None]
        acc += tl.load(base + parts * N + cols[None, :], mask=(parts < n_parts) & (cols[None, :] < N), other=0.0)
    total = tl.sum(acc, axis=0)
    if k == 0:
        tl.store(OUT0 + cols, total.to(OUT0.dtype.element_ty), mask=cols < N)
    else:
        tl.store(OUT1 + cols, total.to(OUT1.dtype.element_ty), mask=cols < N)


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def bwd_programs(device: torch.device, n: int) -> int:
    """How many backward programs (partial rows) to aim for on this device, for rows of n elements."""
    if device.type != "cuda":
        return CPU_PROGRAMS
    per_sm = WIDE_PROGRAMS_PER_SM if triton.next_power_of_2(n) >= WIDE_ROW else PROGRAMS_PER_SM
    return per_sm * _sm_count(device.index if device.index is not None else torch.cuda.current_device())


def bwd_launch_config(n_rows: int, n: int, target_programs: int) -> dict:
    """The backward's launch: programs, rows_per_prog (a multiple of BLOCK_M), BLOCK_M, BLOCK_N, MASK_COLS, num_warps."""
    block_n = triton.next_power_of_2(n)
    block_m = max(1, min(BWD_MAX_BLOCK_M, BWD_TILE_ELEMS // block_n, triton.next_power_of_2(max(n_rows, 1))))
    programs = max(1, min(target_programs, triton.cdiv(n_rows, block_m)))
    rows_per_prog = triton.cdiv(triton.cdiv(n_rows, programs), block_m) * block_m
    tile = block_m * block_n
    warps = 4 if tile <= BWD_SMALL_TILE else 8 if tile <= BWD_MEDIUM_TILE else 16
    return dict(programs=triton.cdiv(n_rows, rows_per_prog), rows_per_prog=rows_per_prog, BLOCK_M=block_m,
                BLOCK_N=block_n, MASK_COLS=n != block_n, num_warps=warps)


def _norm_train(x, weight, bias, eps: float, layer: bool):
    """The forward for training: (y in x's shape, x as (rows, D) contiguous, mean (rows,) fp32 or None, rstd (rows,) fp32)."""
    _check(x, weight, bias, "layer_norm" if layer else "rms_norm")
    n = x.shape[-1]
    x2 = x.contiguous().view(-1, n)
    n_rows = x2.shape[0]
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    mean = torch.empty(n_rows, dtype=torch.float32, device=x.device) if layer else None
    if n_rows:
        full = launch_config(n_rows, n)  # the forward's table, for the whole-row kernel's keys
        cfg = {key: full[key] for key in ("BLOCK_M", "BLOCK_N", "MASKED", "num_warps")}
        grid = (triton.cdiv(n_rows, cfg["BLOCK_M"]),)
        _norm_fwd[grid](x2, weight.contiguous(), bias.contiguous() if layer else weight, y, n_rows, N=n, eps=eps,
                        LAYER=layer, MEAN=mean if layer else rstd, RSTD=rstd, STATS=True, **cfg)
    return y, x2, mean, rstd


def _norm_backward(dy, x2, weight, mean, rstd, layer: bool, partials: bool = True, bias_dtype=None):
    """(dx in x2's shape and dtype, dw in weight's dtype or None, db in bias_dtype or None) for the upstream dy.

    x2 (rows, D) contiguous and the fp32 rstd (LAYER: mean) per row as _norm_train returns them; partials=False
    skips dw and db (no partial buffer, no sum)."""
    n_rows, n = x2.shape
    dy2 = dy.contiguous().view(n_rows, n)
    dx = torch.empty_like(x2)
    w = weight.contiguous()
    if not n_rows:
        zeros = torch.zeros(n, dtype=weight.dtype, device=x2.device) if partials else None
        return dx, zeros, (torch.zeros(n, dtype=bias_dtype, device=x2.device) if partials and layer else None)
    cfg = bwd_launch_config(n_rows, n, bwd_programs(x2.device, n))
    programs, rows_per_prog = cfg.pop("programs"), cfg.pop("rows_per_prog")
    slabs = 2 if layer else 1
    part = torch.empty((slabs, programs, n), dtype=torch.float32, device=x2.device) if partials else dx
    _norm_bwd[(programs,)](x2, w, dy2, dx, mean if layer else rstd, rstd, part, part[slabs - 1] if partials else dx,
                           n_rows, rows_per_prog, N=n, LAYER=layer, PARTIALS=partials, **cfg)
    if not partials:
        return dx, None, None
    dw = torch.empty(n, dtype=weight.dtype, device=x2.device)
    db = torch.empty(n, dtype=bias_dtype, device=x2.device) if layer else dw
    _sum_partials[(triton.cdiv(n, SUM_BLOCK_C), slabs)](part, dw, db, programs, N=n, BLOCK_P=SUM_BLOCK_P,
                                                          BLOCK_C=SUM_BLOCK_C, num_warps=SUM_WARPS)
    return dx, dw, (db if layer else None)


class LayerNormFn(torch.autograd.Function):
    """layer_norm with a Triton backward: the forward saves x, weight and each row's fp32 mean and rstd."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, x2, mean, rstd = _norm_train(x, weight, bias, eps, True)
        ctx.save_for_backward(x2, weight, mean, rstd)
        ctx.bias_dtype = bias.dtype
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x2, weight, mean, rstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx, dw, db = _norm_backward(dy, x2, weight, mean, rstd, True, partials=need_w or need_b,
                                    bias_dtype=ctx.bias_dtype)
        return (dx.view(dy.shape) if need_x else None), (dw if need_w else None), (db if need_b else None), None


def layer_norm_fn(x, weight, bias, eps: float = 1e-5):
    """layer_norm, differentiable in x, weight and bias (Triton backward). With grad mode off or no input requiring
    grad it is layer_norm itself: the same kernel, nothing saved."""
    if torch.is_grad_enabled() and any(getattr(t, "requires_grad", False) for t in (x, weight, bias)):
        return LayerNormFn.apply(x, weight, bias, eps)
    return layer_norm(x, weight, bias, eps)
