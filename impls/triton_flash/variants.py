"""Which variant of the kernel (load path, warp specialization, config) runs for each shape, and its autotune table.

Standard library only: the rules are plain data, read by kernel.py (the autotune table) and bench.py (the
per-shape choice and the TRITON_FA_* knobs of a tuning session). Numbers come from the H100 tuning session
(scripts/triton_flash/tune.py, results/h100/TRITON.md) and from scripts/triton_flash/compile_check.py.
"""

from __future__ import annotations

import os
import sys

# The kernel's load paths (kernel.py maps each to its DESC argument).
PTR = "ptr"  # pointer loads, pipelined with cp.async: the only path before Hopper
DESC = "desc"  # host tensor descriptors: TMA on Hopper
DEVDESC = "devdesc"  # descriptors built in the kernel: TMA, and the only path Triton warp-specializes
PATHS = (PTR, DESC, DEVDESC)
AUTO = "auto"  # TRITON_FA_PATH's default: the per-shape rule of auto_variant

# ---------------------------------------------------------------------------------------------------------
# Autotune configurations: (BLOCK_M, BLOCK_N, num_warps, num_stages), per head_dim; keyed by
# (seq_len, batch*heads, head_dim, causal, path, warp specialization, dtype).
#
# Shared memory per CTA is about (BLOCK_M + 2 * stages * BLOCK_N) * D * 2 bytes (Q resident, one K and one V
# tile per pipeline stage); an H100 SM has 228 KB, of which one CTA may take 227 KB, so configs above
# SMEM_BUDGET are dropped before compiling. Registers bound the rest: a warpgroup (4 warps) owns 64 query
# rows of each wgmma, so its fp32 accumulator costs 64*D/128 registers per thread and its scores 64*BN/128.
#   - 128 x 128, 8 warps: two warpgroups of 64 rows, the FA2/FA3 shape; a wide BLOCK_N amortizes the softmax
#     bookkeeping (row max, rescale of the accumulator) over more MMA work. Expected winner at D=64/128.
#   - 128 x 64, 8 warps, 3 stages (D=128): the same rows with half the score registers and a deeper pipeline.
#   - 128 x 64, 4 warps, 3-4 stages: one warpgroup does 128 rows (two wgmma row tiles): at D=128 it is at the
#     register limit (ptxas spills a little on ptr, and on desc when causal), but it is the shape Triton's
#     Hopper warp specialization splits into producer + consumer warps (setmaxnreg 168, no spill), so it is
#     the candidate for path devdesc + WS. With 8 warps that pass leaves the kernel unchanged.
#   - 64 x 64, 4 warps: twice the CTAs, for small grids (few heads, causal tails) where 132 SMs starve.
#   - D=256: the accumulator alone is 128 registers per thread per warpgroup, so BLOCK_N shrinks to 64/32 and
#     stages to 2-3 to fit the 64 KB Q tile and K/V in shared memory.
# scripts/triton_flash/compile_check.py compiles every (D, path, causal, WS, config) for sm_90 without a GPU
# and prints shared memory, registers and spills; all compile with Triton 3.6. Lists are short (3-4) so
# first-call autotuning takes seconds. scripts/triton_flash/tune.py timed each config alone on the H100:
# results/h100/TRITON.md.
# ---------------------------------------------------------------------------------------------------------
CONFIGS = {
    64: [(128, 128, 8, 3), (128, 64, 4, 3), (128, 64, 4, 4), (64, 64, 4, 3)],
    128: [(128, 128, 8, 2), (128, 64, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3)],
    256: [(128, 64, 8, 2), (64, 64, 4, 2), (64, 32, 4, 3)],
}
SMEM_BUDGET = 220 * 1024
ELEM_BYTES = 2  # fp16 and bf16
# The fixed config check() compiles and runs once, to tell whether the chosen path works on this machine.
PROBE_CONFIG = (64, 64, 4, 2)


def smem_bytes(block_m: int, block_n: int, stages: int, head_dim: int, elem: int = ELEM_BYTES) -> int:
    return (block_m + 2 * stages * block_n) * head_dim * elem


def prune_configs(configs, nargs, **kwargs):
    """Autotune early prune: keep the head_dim's own list, within the shared-memory budget."""
    d = kwargs.get("HEAD_DIM", nargs.get("HEAD_DIM"))
    wanted = {(bm, bn, w, s) for bm, bn, w, s in CONFIGS[d] if smem_bytes(bm, bn, s, d) <= SMEM_BUDGET}
    return [c for c in configs if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) in wanted]


# The H100 tuning session (tune.py --graph, triton 3.6, bf16, B=1 H=32; numbers in results/h100/TRITON.md):
# devdesc + warp specialization with 128 x 128 tiles and 4 warps (one consumer warpgroup + the producer) is
# the fastest correct variant at D=128, non-causal: 529 TFLOP/s at S=4096 and 538 at S=8192, against 487 and
# 484 for the best variant without it (pointer loads, 128 x 64 tiles, 8 warps). Warp specialization also gave
# WRONG results there: NaN with BLOCK_N = 64, and rel-L2 0.19 when the causal mask runs inside the
# specialized loop. So it is used only where it was measured correct — non-causal, head_dim WS_HEAD_DIM, a
# sequence that is a multiple of its BLOCK_M (no masked block) — and everything else takes the
# host-descriptor path, autotuned over CONFIGS (64 x 64 tiles won every causal shape there).
WS_HEAD_DIM = 128
WS_VARIANT = {"path": DEVDESC, "warp_specialize": True, "config": (128, 128, 4, 2)}
PLAIN_VARIANT = {"path": DESC, "warp_specialize": False, "config": None}


def auto_variant(seq: int, head_dim: int, causal: bool) -> dict:
    """The measured-fastest variant that was also measured correct for this shape (see above)."""
    if not causal and head_dim == WS_HEAD_DIM and seq % WS_VARIANT["config"][0] == 0:
        return WS_VARIANT
    return PLAIN_VARIANT


AUTO_SETTINGS = {"path": AUTO, "warp_specialize": False, "config": None}


def settings(environ=os.environ) -> dict:
    """The kernel variant this run uses: "auto" (per shape, above), or the TRITON_FA_* knobs of a tuning session.

    TRITON_FA_CONFIG applies with an explicit TRITON_FA_PATH only: "auto" picks its own configs.
    """
    path = environ.get("TRITON_FA_PATH", AUTO)
    ws = environ.get("TRITON_FA_WS", "0") == "1"
    pinned = environ.get("TRITON_FA_CONFIG")
    config = tuple(int(x) for x in pinned.split(",")) if pinned else None
    if path not in (*PATHS, AUTO) or (config is not None and len(config) != 4) or (ws and path != DEVDESC):
        print(f"error: TRITON_FA_PATH={path!r} TRITON_FA_WS={int(ws)} TRITON_FA_CONFIG={pinned!r}: expected "
              f"{AUTO}|{'|'.join(PATHS)}, WS only with {DEVDESC}, and BM,BN,warps,stages", file=sys.stderr)
        raise SystemExit(2)
    return {"path": path, "warp_specialize": ws, "config": config}


def for_device(chosen: dict, is_pre_hopper=None) -> dict:
    """Before Hopper there is no TMA: the descriptor paths (and "auto") give way to pointer loads.

    The device is asked (is_pre_hopper, default pre_hopper(): it imports torch) only when the path is not ptr.
    """
    if chosen["path"] != PTR and (is_pre_hopper or pre_hopper)():
        return {**chosen, "path": PTR, "warp_specialize": False}
    return chosen


def describe(chosen: dict) -> str:
    """tags.kernel: the variant a run used, every TRITON_FA_* knob that applied included."""
    if chosen["path"] == AUTO:
        ws = WS_VARIANT
        return (f"{AUTO}: {ws['path']}+ws@{','.join(map(str, ws['config']))} where non-causal, D={WS_HEAD_DIM}, "
                f"S%{ws['config'][0]}=0; else {PLAIN_VARIANT['path']}, autotuned")
    kernel = chosen["path"] + ("+ws" if chosen["warp_specialize"] else "")
    return kernel + ("" if chosen["config"] is None else "@" + ",".join(map(str, chosen["config"])))


def pre_hopper() -> bool:
    """True on a CUDA GPU older than Hopper, where there is no TMA: the descriptor paths give way to `ptr`."""
    try:
        import torch

        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] < 9
    except Exception:
        return False

