"""Sweep our Triton norm kernels' launch table on a GPU: for each shape of the rms_norm and layer_norm `large` and
`seed` suites, every (BLOCK_M, num_warps) candidate against today's `launch_config`, timed by
triton.testing.do_bench (L2 flushed before each call; `large` shapes move >= 256 MB, far past the L2).

    python3 scripts/norms/sweep.py --out DIR      # writes DIR/norm_sweep.json and prints a table

It changes nothing: the table it prints is what to put in kernel.py's launch rules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import triton
from triton.testing import do_bench

REPO = Path(__file__).resolve().parents[2]
SHAPES = [(1, 512, 2048), (1, 2048, 4096), (1, 2048, 8192), (8, 4096, 2048), (4, 4096, 4096), (2, 4096, 8192),
          (4, 4096, 8192), (16, 2048, 4096), (16, 4096, 8192)]


def load(op: str):
    sys.path.insert(0, str(REPO / "impls" / f"{op}_triton"))
    import importlib

    mod = importlib.import_module("kernel")
    sys.path.pop(0)
    sys.modules.pop("kernel")
    return mod


def launch(mod, layer, x2, w, b, y, cfg):
    n_rows, n = x2.shape
    grid = (triton.cdiv(n_rows, cfg["BLOCK_M"]),)
    mod._norm_fwd[grid](x2, w, b if layer else w, y, n_rows, N=n, eps=1e-6, LAYER=layer,
                        MEAN=None, RSTD=None, STATS=False, **cfg)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for op, layer in (("rms_norm", False), ("layer_norm", True)):
        mod = load(op)
        for b, s, d in SHAPES:
            x = torch.randn(b * s, d, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(d, device="cuda", dtype=torch.bfloat16)
            bias = torch.randn(d, device="cuda", dtype=torch.bfloat16)
            y = torch.empty_like(x)
            moved = (2 * x.numel() + (2 if layer else 1) * d) * 2
            today = mod.launch_config(b * s, d)
            cands = [today] + [dict(today, BLOCK_M=bm, num_warps=nw, MASKED=(b * s) % bm != 0 or d != today["BLOCK_N"])
                               for bm in (1, 2, 4, 8) for nw in (4, 8, 16, 32)
                               if bm * today["BLOCK_N"] <= 32768 and (bm, nw) != (today["BLOCK_M"], today["num_warps"])]
            results = []
            for cfg in cands:
                try:
                    ms = do_bench(lambda: launch(mod, layer, x, w, bias, y, cfg), warmup=25, rep=150)
                    results.append((ms, cfg))
                except Exception as exc:  # a config that does not compile is skipped
                    print(f"{op} {b}x{s}x{d} {cfg}: {type(exc).__name__}", file=sys.stderr)
            base = results[0][0]
            best_ms, best = min(results, key=lambda r: r[0])
            row = {"op": op, "shape": [b, s, d], "mb": moved / 1e6, "today": today, "today_gbps": moved / base / 1e6,
                   "best": best, "best_gbps": moved / best_ms / 1e6, "gain": base / best_ms}
            rows.append(row)
            print(f"{op:10s} {b:2d}x{s:5d}x{d:5d} {moved / 1e6:7.1f} MB  today BM={today['BLOCK_M']} w={today['num_warps']}"
                  f" {row['today_gbps']:6.0f} GB/s  best BM={best['BLOCK_M']} w={best['num_warps']} "
                  f"{row['best_gbps']:6.0f} GB/s  x{row['gain']:.3f}", flush=True)
            del x, y
            torch.cuda.empty_cache()
    (args.out / "norm_sweep.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
