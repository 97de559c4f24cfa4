"""LayerNorm over the last dim as a memory-bound Triton kernel (forward): one pass over memory.

The design of impls/rms_norm_triton/kernel.py (whole rows in registers, a fixed launch table) with the row's mean
subtracted before the variance (two reductions over registers, no second read of x) and the bias added.
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
                        LAYER=layer, **cfg)
    return y.view(x.shape)


def layer_norm(x, weight, bias, eps: float = 1e-5):
    """(x − mean) / sqrt(var + eps) * weight + bias (biased variance), a new tensor in x's dtype (fp32 math)."""
    return _norm(x, weight, bias, eps, True)
