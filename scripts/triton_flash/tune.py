"""Time every variant of the kernel on the GPU: path x warp specialization x config, per shape.

One line per variant: median ms (triton.testing.do_bench: CUDA events, L2 flushed before each call; or
CUDA-graph replay with --graph), TFLOP/s, and the rel-L2 distance to torch SDPA's output on the same inputs
(a sanity check for tuning only; the harness checks against fp32). The fastest correct variant of each shape
is starred, and SDPA's own time is printed beside it. With --json FILE, every row is saved too.

    python scripts/triton_flash/tune.py                       # the issue's target shapes
    python scripts/triton_flash/tune.py --shapes 1,8192,32,32,128,0 --paths devdesc --ws 1
    python scripts/triton_flash/tune.py --extra "128,128,8,3;128,128,4,2"
    python scripts/triton_flash/tune.py --autotune --only none    # what autotuning picks
"""

from __future__ import annotations

import argparse
import json
import sys

from compile_check import load_kernel  # beside this script

# B, S, H, Hkv, D, causal: the targets (S=4096/8192, D=128, bf16, non-causal, B=1) and one of each
# other family of the full suite (D=64, D=256, GQA, causal, small S).
SHAPES = ["1,4096,32,32,128,0", "2,8192,16,16,128,0", "1,8192,32,32,128,0", "1,4096,32,32,128,1",
          "1,4096,32,8,128,0", "4,4096,16,16,64,0", "1,4096,16,16,256,0", "16,1024,16,16,128,0"]


def parse_configs(text: str) -> list[tuple[int, int, int, int]]:
    return [tuple(int(x) for x in item.split(",")) for item in text.split(";") if item.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=";".join(SHAPES), help="B,S,H,Hkv,D,causal;...")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--paths", default="desc,devdesc,ptr")
    ap.add_argument("--ws", default="0,1", help="warp specialization on path devdesc")
    ap.add_argument("--extra", default="", help="more configs to try: BM,BN,warps,stages;...")
    ap.add_argument("--only", default="", help="just these configs (instead of variants.CONFIGS[D] + --extra); 'none' with --autotune")
    ap.add_argument("--autotune", action="store_true", help="also time the autotuned kernel (config=None)")
    ap.add_argument("--graph", action="store_true", help="do_bench_cudagraph (no L2 flush) instead of do_bench")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)

    import torch
    import triton
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    kernel = load_kernel()
    dtype = getattr(torch, args.dtype)

    def timed(fn) -> float:
        if not args.graph:
            return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
        with torch.cuda.stream(torch.cuda.Stream()):
            return triton.testing.do_bench_cudagraph(fn, rep=200, return_mode="median")

    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  triton {triton.__version__}  {args.dtype}")
    rows = []
    for shape in args.shapes.split(";"):
        b, s, h, hkv, d, causal = (int(x) for x in shape.split(","))
        gen = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(b, s, h, d, device="cuda", dtype=dtype, generator=gen)
        k, v = (torch.randn(b, s, hkv, d, device="cuda", dtype=dtype, generator=gen) for _ in "kv")
        flops = 4 * b * h * s * s * d / (2 if causal else 1)
        qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
        ref = sdpa(qt, kt, vt, is_causal=bool(causal), enable_gqa=h != hkv).transpose(1, 2).float()
        sdpa_ms = timed(lambda: sdpa(qt, kt, vt, is_causal=bool(causal), enable_gqa=h != hkv))
        print(f"\n== B={b} S={s} H={h} Hkv={hkv} D={d} {'causal' if causal else 'non-causal'}:  "
              f"torch SDPA {sdpa_ms:.4f} ms  {flops / sdpa_ms / 1e9:.0f} TFLOP/s")
        if args.only:
            configs = [] if args.only == "none" else parse_configs(args.only)
        else:
            configs = kernel.variants.CONFIGS[d] + parse_configs(args.extra)
        variants = [(p, ws, c) for p in args.paths.split(",") for ws in map(int, args.ws.split(","))
                    if not (ws and p != "devdesc") for c in ([None] if args.autotune else []) + configs]
        shape_rows = []
        for path, ws, config in variants:
            label = f"{path:8} ws={ws} {'autotune' if config is None else ','.join(map(str, config)):12}"
            try:
                run = lambda: kernel.attention(q, k, v, bool(causal), path=path, warp_specialize=bool(ws), config=config)
                out = run()  # compiles (and autotunes for config=None)
                err = float((out.float() - ref).norm() / ref.norm())
                ms = timed(run)
            except Exception as exc:
                print(f"  {label} FAILED {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:120]}")
                continue
            row = dict(shape=shape, path=path, ws=ws, config=config, ms=ms, tflops=flops / ms / 1e9, rel_l2=err,
                       sdpa_ms=sdpa_ms)
            if config is None:
                row["chose"] = str(kernel._autotuned().best_config)
            shape_rows.append(row)
            if args.json:  # after every variant, so a run stopped at its time limit keeps what it measured
                with open(args.json, "w") as f:
                    json.dump(rows + shape_rows, f, indent=1)
            print(f"  {label} {ms:8.4f} ms {row['tflops']:6.0f} TFLOP/s  rel-L2 vs SDPA {err:.1e}"
                  + (f"  ({row['chose']})" if config is None else ""), flush=True)
        good = [r for r in shape_rows if r["rel_l2"] < 1e-2]
        if good:
            best = min(good, key=lambda r: r["ms"])
            best["best"] = True
            print(f"  * best: {best['path']} ws={best['ws']} {best['config']}  {best['tflops']:.0f} TFLOP/s "
                  f"({sdpa_ms / best['ms']:.2f}x SDPA)")
        rows += shape_rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
