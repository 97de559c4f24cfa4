"""Sweep our Triton RMSNorm's two kernels on a GPU against torch.compile's: the whole-row kernel (`_norm_fwd`) at
today's launch and with more warps, and the looped two-pass kernel (`_rms_fwd_looped`) over (BLOCK_M, CHUNK,
num_warps), on the rms_norm `large` shapes and the larger `seed` ones, timed by triton.testing.do_bench.

    python3 scripts/norms/sweep_rms_loop.py --out DIR    # writes DIR/rms_loop_sweep.json and prints a table

It changes nothing: what it prints is what to put in kernel.py's `launch_config`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench

REPO = Path(__file__).resolve().parents[2]
SHAPES = [(1, 1024, 4096), (1, 2048, 4096), (1, 1024, 8192), (1, 2048, 8192), (8, 4096, 2048), (4, 4096, 4096),
          (2, 4096, 8192), (4, 4096, 8192)]


def candidates(mod, rows: int, n: int) -> list[dict]:
    today = mod.launch_config(rows, n)
    found = [dict(today, kind="today"), dict(today, num_warps=16, kind="row")]
    for bm in (1, 2, 4):
        for chunk in (512, 1024, 2048, 4096):
            for warps in (2, 4, 8, 16):
                if bm * chunk <= 8192 and chunk <= n and warps * 32 * 4 <= bm * chunk:
                    found.append(dict(kind="loop", BLOCK_M=bm, CHUNK=chunk, num_warps=warps,
                                      MASKED=rows % bm != 0 or n % chunk != 0))
    return found


def launch(mod, x2, w, y, cfg: dict) -> None:
    rows, n = x2.shape
    grid = (triton.cdiv(rows, cfg["BLOCK_M"]),)
    if cfg["kind"] == "loop":
        mod._rms_fwd_looped[grid](x2, w, y, rows, N=n, eps=1e-6, BLOCK_M=cfg["BLOCK_M"], CHUNK=cfg["CHUNK"],
                                  MASKED=cfg["MASKED"], num_warps=cfg["num_warps"])
    else:
        mod._norm_fwd[grid](x2, w, w, y, rows, N=n, eps=1e-6, LAYER=False, MEAN=None, RSTD=None,
                            STATS=False, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], MASKED=cfg["MASKED"],
                            num_warps=cfg["num_warps"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "impls" / "rms_norm_triton"))
    mod = importlib.import_module("kernel")
    rows_out = []
    for b, s, d in SHAPES:
        x = torch.randn(b * s, d, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(d, device="cuda", dtype=torch.bfloat16)
        y = torch.empty_like(x)
        ref = F.rms_norm(x.float(), (d,), w.float(), 1e-6)
        moved = (2 * x.numel() + d) * 2
        torch._dynamo.reset()
        compiled = torch.compile(lambda x, w, d=d: F.rms_norm(x, (d,), w, 1e-6), dynamic=False, fullgraph=True)
        t_compile = do_bench(lambda c=compiled, x=x, w=w: c(x, w), warmup=25, rep=150)
        results = []
        for cfg in candidates(mod, b * s, d):
            try:
                launch(mod, x, w, y, cfg)
                err = float((y.float() - ref).norm() / ref.norm())
                ms = do_bench(lambda cfg=cfg, x=x, w=w, y=y: launch(mod, x, w, y, cfg), warmup=25, rep=150)
                results.append((ms, err, cfg))
            except Exception as exc:  # a config that does not compile is skipped
                print(f"{b}x{s}x{d} {cfg}: {type(exc).__name__}: {exc}"[:200], file=sys.stderr)
        best_ms, best_err, best = min(results, key=lambda r: r[0])
        row = {"shape": [b, s, d], "mb": moved / 1e6, "compile_gbps": moved / t_compile / 1e6,
               "today_gbps": moved / results[0][0] / 1e6, "best": best, "best_gbps": moved / best_ms / 1e6,
               "best_err": best_err, "all": [{"gbps": moved / ms / 1e6, "err": e, **c} for ms, e, c in results]}
        rows_out.append(row)
        print(f"{b:2d}x{s:5d}x{d:5d} {moved / 1e6:7.1f} MB  compile {row['compile_gbps']:5.0f}  today "
              f"{row['today_gbps']:5.0f}  best {row['best_gbps']:5.0f} GB/s {best} err {best_err:.1e}", flush=True)
        top = sorted(results, key=lambda r: r[0])[:4]
        print("    next: " + "; ".join(f"{moved / ms / 1e6:.0f} {c}" for ms, _, c in top[1:]), flush=True)
        del x, y, ref
        torch.cuda.empty_cache()
    (args.out / "rms_loop_sweep.json").write_text(json.dumps(rows_out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
