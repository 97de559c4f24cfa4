"""RMSNorm over the last dim as a memory-bound Triton kernel (forward): one pass over memory.

Short and medium rows (`_norm_fwd`): a program normalises BLOCK_M whole rows held in registers (BLOCK_N = the row
padded to a power of two): x is read once (a streaming load, evicted first), the weight once per program (kept in
L2 for the next), y written once in x's dtype; the mean of squares in fp32. Short rows put several rows in one
program so each still moves a few KB. Long rows (`_rms_fwd_looped`): CHUNK-wide steps in two passes, the second
reading x back from L2, so a program needs few registers and more of them stay resident (on the H200 this took the
`large` suite from 3.8 to 4.1 TB/s). Launch sizes come from a fixed table (`launch_config`), no autotuning: the
first call compiles one kernel and runs it. impls/layer_norm_triton/kernel.py is the whole-row design with the
mean and the bias.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

TILE_ELEMS = 4096  # elements one program holds at least (rows x padded row), so short rows share a program
MAX_BLOCK_M = 16
# num_warps by the tile's element count (the usual memory-bound table): <= 2048 -> 4, <= 8192 -> 8, above -> 16.
WARPS_SMALL, WARPS_MEDIUM, WARPS_LARGE = 4, 8, 16
SMALL_TILE, MEDIUM_TILE = 2048, 8192
LOOP_MIN_N = 2048  # rows at least this long may take the looped kernel (see launch_config)
MANY_ROWS = 8192  # ... with one row per program from this many rows on
MAX_ROW = 65536  # a row kept in registers; longer rows are refused (ValueError)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _norm_fwd(X, W, B, Y, n_rows, N: tl.constexpr, eps, LAYER: tl.constexpr, BLOCK_M: tl.constexpr,
              BLOCK_N: tl.constexpr, MASKED: tl.constexpr):
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


@triton.jit
def _rms_fwd_looped(X, W, Y, n_rows, N: tl.constexpr, eps, BLOCK_M: tl.constexpr, CHUNK: tl.constexpr,
                    MASKED: tl.constexpr):
    """RMSNorm of BLOCK_M long rows in CHUNK-wide steps, two passes over each row: the first sums the squares and
    keeps x in L2 (evict_last), the second reads it back from there, scales and stores. Few registers per thread,
    so many programs stay resident per SM and keep more bytes in flight than a whole row held in registers."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]
    base = X + rows * N
    acc = tl.zeros([BLOCK_M, CHUNK], tl.float32)
    for start in tl.range(0, N, CHUNK):
        cols = start + tl.arange(0, CHUNK)[None, :]
        if MASKED:
            x = tl.load(base + cols, mask=(rows < n_rows) & (cols < N), other=0.0, eviction_policy="evict_last")
        else:
            x = tl.load(base + cols, eviction_policy="evict_last")
        x = x.to(tl.float32)
        acc += x * x
    rstd = tl.rsqrt(tl.sum(acc, axis=1)[:, None] / N + eps)
    for start in tl.range(0, N, CHUNK):
        cols = start + tl.arange(0, CHUNK)[None, :]
        if MASKED:
            mask = (rows < n_rows) & (cols < N)
            x = tl.load(base + cols, mask=mask, other=0.0, eviction_policy="evict_first").to(tl.float32)
            w = tl.load(W + cols, mask=cols < N, other=0.0, eviction_policy="evict_last").to(tl.float32)
            tl.store(Y + rows * N + cols, (x * rstd * w).to(Y.dtype.element_ty), mask=mask)
        else:
            x = tl.load(base + cols, eviction_policy="evict_first").to(tl.float32)
            w = tl.load(W + cols, eviction_policy="evict_last").to(tl.float32)
            tl.store(Y + rows * N + cols, (x * rstd * w).to(Y.dtype.element_ty))


def warps_for(tile_elems: int) -> int:
    if tile_elems <= SMALL_TILE:
        return WARPS_SMALL
    return WARPS_MEDIUM if tile_elems <= MEDIUM_TILE else WARPS_LARGE


def launch_config(n_rows: int, n: int) -> dict:
    """The fixed launch table for n_rows rows of n elements (measured on an H200: scripts/norms/sweep_rms_loop.py).

    Long rows (n >= LOOP_MIN_N, with many rows or n >= 4096) take the looped two-pass kernel: the CHUNK key says so
    (BLOCK_M, CHUNK, MASKED, num_warps). Others hold whole rows in registers (BLOCK_M, BLOCK_N, MASKED, num_warps).
    """
    if n >= LOOP_MIN_N and (n_rows >= MANY_ROWS or n >= 2 * LOOP_MIN_N):
        if n_rows >= MANY_ROWS:  # enough rows to fill the GPU with one row per program
            block_m, chunk = 1, (4096 if n >= 8192 else 2048)
            warps = 16 if n >= 8192 else (8 if n >= 4096 else 4)
        else:  # fewer rows: two per program
            block_m, chunk, warps = 2, 4096, 8
        chunk = min(chunk, triton.next_power_of_2(n))
        return dict(BLOCK_M=block_m, CHUNK=chunk, MASKED=n_rows % block_m != 0 or n % chunk != 0, num_warps=warps)
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
        if "CHUNK" in cfg:  # long rows: the looped kernel (RMSNorm only; layer_norm_triton has its own module)
            _rms_fwd_looped[grid](x2, weight.contiguous(), y, n_rows, N=n, eps=eps, **cfg)
            return y.view(x.shape)
        _norm_fwd[grid](x2, weight.contiguous(), bias.contiguous() if layer else weight, y, n_rows, N=n, eps=eps,
                        LAYER=layer, **cfg)
    return y.view(x.shape)


def rms_norm(x, weight, eps: float = 1e-6):
    """x / sqrt(mean(x², -1) + eps) * weight, a new tensor in x's dtype (fp32 math)."""
    return _norm(x, weight, None, eps, False)

