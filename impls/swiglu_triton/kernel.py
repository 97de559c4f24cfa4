"""SwiGLU, y = silu(x[..., :D]) * x[..., D:], as a memory-bound Triton kernel, forward and backward.

x (..., 2D) is read once and y (..., D) written once, in x's dtype, with silu in fp32 registers. A program
covers a [BLOCK_M, BLOCK_N] tile of rows x output columns: the gate half a and the up half b of those columns
are two contiguous, vectorizable loads per row. Short rows put several rows in one program; long rows are cut
into column blocks (a division-free split when a power of two divides D). The backward recomputes silu from x:

    da = dy * b * sig(a) * (1 + a * (1 - sig(a)))       db = dy * silu(a)

reading x and dy once and writing dx (..., 2D) once. Launch sizes come from a fixed table (launch_config), no
autotuning: the first call compiles one kernel and runs it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Elements of each half one program covers: 8 warps hold 16 fp32 values of a and of b per thread (two 16-byte
# bf16 vectors each), at full occupancy for these few registers.
TILE_ELEMS = 4096
# Column blocks (powers of two) a row may be cut into, widest first; MAX_BLOCK_N is the widest, and the narrowest
# still gives each row a 512-byte contiguous run in bf16.
COLUMN_BLOCKS = (4096, 2048, 1024, 512, 256)
MAX_BLOCK_N = COLUMN_BLOCKS[0]
# num_warps by the tile's element count (the usual memory-bound table): <= 2048 -> 4, <= 8192 -> 8, above -> 16.
WARPS_SMALL, WARPS_MEDIUM, WARPS_LARGE = 4, 8, 16
SMALL_TILE, MEDIUM_TILE = 2048, 8192
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _tile(pid, n_rows, D: tl.constexpr, COL_BLOCKS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's rows [BLOCK_M, 1] (int64), columns [1, BLOCK_N] and their mask (unused unless MASKED).

    The COL_BLOCKS column blocks of one row block are consecutive programs: neighbours touch neighbouring memory.
    """
    rows = ((pid // COL_BLOCKS) * BLOCK_M + tl.arange(0, BLOCK_M))[:, None]
    cols = ((pid % COL_BLOCKS) * BLOCK_N + tl.arange(0, BLOCK_N))[None, :]
    return rows.to(tl.int64), cols, (rows < n_rows) & (cols < D)


@triton.jit
def _load(ptr, mask, MASKED: tl.constexpr):
    """A tile as fp32; masked lanes (MASKED only) read 0."""
    if MASKED:
        x = tl.load(ptr, mask=mask, other=0.0)
    else:
        x = tl.load(ptr)
    return x.to(tl.float32)


@triton.jit
def _store(ptr, value, mask, MASKED: tl.constexpr):
    """value cast to the pointer's dtype; masked lanes (MASKED only) left alone."""
    value = value.to(ptr.dtype.element_ty)
    if MASKED:
        tl.store(ptr, value, mask=mask)
    else:
        tl.store(ptr, value)


@triton.jit
def _swiglu_fwd_kernel(X, Y, n_rows, D: tl.constexpr, COL_BLOCKS: tl.constexpr, BLOCK_M: tl.constexpr,
                       BLOCK_N: tl.constexpr, MASKED: tl.constexpr):
    """y[r, c] = silu(x[r, c]) * x[r, D + c] for this program's tile; MASKED: some lane is past a row or D."""
    rows, cols, mask = _tile(tl.program_id(0), n_rows, D, COL_BLOCKS, BLOCK_M, BLOCK_N)
    a_ptr = X + rows * (2 * D) + cols
    a = _load(a_ptr, mask, MASKED)
    b = _load(a_ptr + D, mask, MASKED)
    _store(Y + rows * D + cols, a * tl.sigmoid(a) * b, mask, MASKED)


@triton.jit
def _swiglu_bwd_kernel(X, DY, DX, n_rows, D: tl.constexpr, COL_BLOCKS: tl.constexpr, BLOCK_M: tl.constexpr,
                       BLOCK_N: tl.constexpr, MASKED: tl.constexpr):
    """dx[r, c] = dy * b * silu'(a), dx[r, D + c] = dy * silu(a), silu recomputed from x."""
    rows, cols, mask = _tile(tl.program_id(0), n_rows, D, COL_BLOCKS, BLOCK_M, BLOCK_N)
    a_ptr = X + rows * (2 * D) + cols
    a = _load(a_ptr, mask, MASKED)
    b = _load(a_ptr + D, mask, MASKED)
    dy = _load(DY + rows * D + cols, mask, MASKED)
    sig = tl.sigmoid(a)
    silu = a * sig
    da_ptr = DX + rows * (2 * D) + cols
    _store(da_ptr, dy * b * (sig + silu * (1.0 - sig)), mask, MASKED)  # silu' = sig * (1 + a * (1 - sig))
    _store(da_ptr + D, dy * silu, mask, MASKED)


def warps_for(tile_elems: int) -> int:
    """num_warps for a program whose tiles have this many elements."""
    if tile_elems <= SMALL_TILE:
        return WARPS_SMALL
    return WARPS_MEDIUM if tile_elems <= MEDIUM_TILE else WARPS_LARGE


def launch_config(n_rows: int, dim: int) -> dict:
    """BLOCK_M, BLOCK_N, COL_BLOCKS, MASKED and num_warps for n_rows rows of D = dim outputs: the fixed table, no autotuning.

    BLOCK_N: of the whole padded row (up to MAX_BLOCK_N) and the narrower COLUMN_BLOCKS, the one leaving the
    fewest masked lanes, the widest on ties (D = 14336 -> 2048, no mask; D = 768 -> 256; D = 64 -> 64).
    BLOCK_M: rows enough to fill TILE_ELEMS (at most the rows there are).
    """
    whole = triton.next_power_of_2(dim)
    widths = [n for n in (whole, *COLUMN_BLOCKS) if n <= min(whole, MAX_BLOCK_N)]
    block_n = min(widths, key=lambda n: (triton.cdiv(dim, n) * n, -n))
    block_m = max(1, min(TILE_ELEMS // block_n, triton.next_power_of_2(max(n_rows, 1))))
    masked = n_rows % block_m != 0 or dim % block_n != 0
    return dict(BLOCK_M=block_m, BLOCK_N=block_n, COL_BLOCKS=triton.cdiv(dim, block_n), MASKED=masked,
                num_warps=warps_for(block_m * block_n))


def _rows(x, name: str):
    """x as (rows, 2D) contiguous (a copy only if x was not), and D; ValueError naming the argument otherwise."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"swiglu: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in DTYPES:
        raise ValueError(f"swiglu: {name} dtype {x.dtype} is not supported (float32, float16, bfloat16)")
    if x.dim() == 0 or x.shape[-1] % 2:
        raise ValueError(f"swiglu: {name}'s last dimension must be even (2*D), got shape {tuple(x.shape)}")
    return x.contiguous().view(-1, x.shape[-1]), x.shape[-1] // 2


def _grid(n_rows: int, dim: int, cfg: dict) -> tuple[int]:
    return (triton.cdiv(n_rows, cfg["BLOCK_M"]) * cfg["COL_BLOCKS"],)


def swiglu(x):
    """silu(x[..., :D]) * x[..., D:] for x (..., 2D): a new (..., D) tensor in x's dtype (silu in fp32)."""
    x2, dim = _rows(x, "x")
    y = torch.empty(*x.shape[:-1], dim, dtype=x.dtype, device=x.device)
    n_rows = x2.shape[0]
    if n_rows and dim:
        cfg = launch_config(n_rows, dim)
        _swiglu_fwd_kernel[_grid(n_rows, dim, cfg)](x2, y, n_rows, D=dim, **cfg)
    return y


def swiglu_backward(x, dy):
    """dx (..., 2D) of swiglu at x for the upstream gradient dy (..., D), silu recomputed from x."""
    x2, dim = _rows(x, "x")
    if tuple(dy.shape) != (*x.shape[:-1], dim):
        raise ValueError(f"swiglu: dy must be {(*x.shape[:-1], dim)}, got {tuple(dy.shape)}")
    if dy.dtype not in DTYPES:
        raise ValueError(f"swiglu: dy dtype {dy.dtype} is not supported (float32, float16, bfloat16)")
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    n_rows = x2.shape[0]
    if n_rows and dim:
        cfg = launch_config(n_rows, dim)
        _swiglu_bwd_kernel[_grid(n_rows, dim, cfg)](x2, dy.contiguous(), dx, n_rows, D=dim, **cfg)
    return dx


class SwigluFn(torch.autograd.Function):
    """swiglu with a Triton backward; saves only x (silu is recomputed, not stored)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return swiglu(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return swiglu_backward(x, dy)


def swiglu_fn(x):
    """swiglu, differentiable in x (the backward is one Triton pass over x and dy)."""
    return SwigluFn.apply(x)
