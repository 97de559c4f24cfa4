"""Check and time the Triton flash-attention backward (impls/triton_flash/kernel_bwd.py) on a GPU, against torch SDPA.

For each shape (default: B=1 H=32, D 64 and 128, S 1024/4096/8192, causal and not, bf16):
  - dq, dk, dv of ours against torch SDPA's math backend in fp32 on the same inputs (rel-L2, computed a few
    heads at a time to bound memory), with the harness's backward tolerance (twice the forward's: bf16 2e-2);
  - backward-only time of a retained graph, `torch.autograd.grad(o, (q, k, v), do, retain_graph=True)`, with
    triton.testing.do_bench (median ms; L2 flushed before each call), for ours and for SDPA under
    sdpa_kernel(FLASH_ATTENTION) and sdpa_kernel(CUDNN_ATTENTION); TFLOP/s with backward FLOPs
    2.5 * 4 * B * H * S^2 * D, halved when causal;
  - whether our backward can be captured in a CUDA graph (forward and capture on one side stream, as the
    harness must do), its replay equal to the eager gradients, and the replay's time.
With --sweep, every candidate config of each backward kernel (the other at its table value) is checked and
timed, and the best per kernel and their combination are printed: a tuning session in one call.
With --compile-only (no GPU needed), the configs are compiled for sm_90 and ptxas's registers, spills and
shared memory are printed instead.

    python3 scripts/triton_flash/bwd_check.py --out $OUT                 # the table, and $OUT/bwd_check.json
    python3 scripts/triton_flash/bwd_check.py --out $OUT --sweep --shapes 1,4096,32,32,128,0
    python3 scripts/triton_flash/bwd_check.py --compile-only --sweep     # registers and spills, no GPU

Exit status 1 when a gradient of ours misses the tolerance or the graph check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

IMPL = Path(__file__).resolve().parents[2] / "impls" / "triton_flash"
sys.path.insert(0, str(IMPL))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHAPES = [f"1,{s},32,32,{d},{c}" for d in (64, 128) for s in (1024, 4096, 8192) for c in (0, 1)]
TOL = {"bfloat16": 2e-2, "float16": 1e-2}  # twice the harness's forward tolerance

# Candidates for --sweep, per head_dim: (BLOCK_M, BLOCK_N, warps, stages). dK/dV needs BLOCK_N % BLOCK_M == 0,
# dQ BLOCK_M % BLOCK_N == 0. Some spill or overflow shared memory: the sweep reports them and goes on.
SWEEP_DKDV = {
    64: [(32, 128, 8, 3), (32, 128, 8, 4), (32, 128, 8, 5), (64, 128, 8, 2), (64, 128, 8, 3), (32, 128, 4, 4),
         (32, 64, 4, 3), (32, 64, 4, 4), (64, 64, 4, 3), (16, 128, 8, 4)],
    128: [(32, 128, 8, 2), (32, 128, 8, 3), (32, 128, 8, 4), (64, 128, 8, 2), (16, 128, 8, 3), (32, 64, 4, 2),
          (32, 64, 4, 3), (64, 64, 8, 2), (64, 64, 4, 2)],
    256: [(16, 64, 8, 2), (16, 64, 8, 3), (32, 64, 8, 2), (16, 32, 4, 2), (16, 128, 8, 2)],
}
SWEEP_DQ = {
    64: [(128, 64, 8, 2), (128, 64, 8, 3), (128, 64, 8, 4), (128, 32, 4, 3), (128, 32, 4, 5), (128, 64, 4, 3),
         (64, 64, 4, 3), (64, 32, 4, 4), (128, 128, 8, 2)],
    128: [(128, 64, 8, 2), (128, 64, 8, 3), (128, 32, 8, 3), (128, 32, 8, 4), (64, 64, 4, 3), (64, 64, 8, 3),
          (64, 32, 4, 3), (128, 128, 8, 2)],
    256: [(64, 32, 8, 2), (64, 16, 8, 2), (64, 32, 4, 2), (32, 32, 4, 2), (128, 32, 8, 2)],
}


def parse_shapes(text: str) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in item.split(",")) for item in text.split(";") if item.strip()]


def bwd_flops(b, s, h, d, causal) -> float:
    return 2.5 * 4 * b * h * s * s * d / (2 if causal else 1)


def candidates(dim: int, sweep: bool):
    """(label, bwd config) pairs: the table's, then (with sweep) each kernel's alternatives."""
    import kernel_bwd

    base = kernel_bwd.BWD_CONFIGS[dim]
    out = [("table", base)]
    if sweep:
        out += [("dkdv", (c, base[1])) for c in SWEEP_DKDV.get(dim, []) if c != base[0]]
        out += [("dq", (base[0], c)) for c in SWEEP_DQ.get(dim, []) if c != base[1]]
    return out


def fmt(config) -> str:
    return " ".join(",".join(map(str, c)) for c in config)


def compile_only(args) -> int:
    """Compile each config for sm_90 with the real compiler and ptxas, no GPU; print resources."""
    import torch
    from compile_check import pretend_hopper, resources

    pretend_hopper()
    import kernel_bwd

    dtype = getattr(torch, args.dtype)
    print(f"triton {__import__('triton').__version__}, target sm_90, {args.dtype}, S={args.seq}, H=4 Hkv=2")
    print(f"{'D':>4} {'causal':6} {'kernel':5} {'config':12} {'smem KB':>8} {'regs':>5} {'spill':>6} {'s':>5}")
    failures = 0
    dims = sorted({d for *_, d, _ in parse_shapes(args.shapes)}) if args.shapes_given else kernel_bwd.BWD_HEAD_DIMS
    for dim in dims:
        q = torch.empty(1, args.seq, 4, dim, dtype=dtype)
        k = torch.empty(1, args.seq, 2, dim, dtype=dtype)
        lse = torch.empty(1, 4, args.seq)
        st = kernel_bwd._strides
        common = (*st(q), *st(k), *st(k), *st(q))
        for causal in (False, True):
            seen = set()
            for _, (dkdv, dq) in candidates(dim, args.sweep):
                for name, cfg in (("dkdv", dkdv), ("dq", dq)):
                    if (name, cfg) in seen:
                        continue
                    seen.add((name, cfg))
                    m, n, w, s = cfg
                    flags = dict(HEAD_DIM=dim, CAUSAL=causal, BLOCK_M=m, BLOCK_N=n, EVEN_M=args.seq % m == 0,
                                 EVEN_N=args.seq % n == 0, num_warps=w, num_stages=s, grid=(1,))
                    t0 = time.perf_counter()
                    label = f"{dim:>4} {int(causal):6} {name:5} {','.join(map(str, cfg)):12}"
                    try:
                        if name == "dkdv":
                            c = kernel_bwd._bwd_dkdv_kernel.warmup(q, k, k, q, k, k, lse, lse, 0.1, 0.1, *common,
                                                                   *st(k), *st(k), 4, 2, args.seq, **flags)
                        else:
                            c = kernel_bwd._bwd_dq_kernel.warmup(q, k, k, q, q, lse, lse, 0.1, 0.1, *common, *st(q),
                                                                 4, 2, args.seq, **flags)
                    except Exception as exc:
                        failures += 1
                        print(f"{label} FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:150]}")
                        continue
                    res = resources(c.asm["cubin"])
                    print(f"{label} {c.metadata.shared / 1024:8.1f} {res.get('REG', -1):5} "
                          f"{res.get('STACK', 0) + res.get('LOCAL', 0):6} {time.perf_counter() - t0:5.1f}", flush=True)
    return 1 if failures else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="folder for bwd_check.json (written after every shape)")
    ap.add_argument("--shapes", default=None, help="B,S,H,Hkv,D,causal;... (default: " + ";".join(SHAPES) + ")")
    ap.add_argument("--dtype", default="bfloat16", choices=sorted(TOL))
    ap.add_argument("--sweep", action="store_true", help="also check and time each kernel's candidate configs")
    ap.add_argument("--no-sdpa", action="store_true", help="skip timing torch SDPA")
    ap.add_argument("--no-graph", action="store_true", help="skip the CUDA-graph capture check")
    ap.add_argument("--rep", type=int, default=100, help="do_bench rep (ms)")
    ap.add_argument("--compile-only", action="store_true", help="compile for sm_90 without a GPU; print resources")
    ap.add_argument("--seq", type=int, default=4096, help="with --compile-only: the length compiled for")
    args = ap.parse_args(argv)
    args.shapes_given = args.shapes is not None
    args.shapes = args.shapes or ";".join(SHAPES)
    if args.compile_only:
        return compile_only(args)

    import kernel
    import kernel_bwd
    import torch
    import triton
    import variants

    if not torch.cuda.is_available():
        print("error: no CUDA device (use --compile-only to compile without one)", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    tol = TOL[args.dtype]
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    def bench(fn) -> float:
        return triton.testing.do_bench(fn, warmup=25, rep=args.rep, return_mode="median")

    def fwd_variant(s, d, causal):
        """The forward bench.py's attend uses (only the backward is timed here)."""
        return variants.for_device(variants.auto_variant(s, d, causal))

    def reference(q, k, v, do, causal, group):
        """fp32 dq, dk, dv from SDPA's math backend, a few whole GQA groups of heads at a time."""
        heads = q.shape[2]
        chunk = max(group, (8 // group) * group)
        grads = [torch.empty(t.shape, device=t.device, dtype=torch.float32) for t in (q, k, v)]
        for h0 in range(0, heads, chunk):
            h1 = min(heads, h0 + chunk)
            qs = q[:, :, h0:h1].float().transpose(1, 2).requires_grad_()
            ks, vs = (t[:, :, h0 // group:h1 // group].float().transpose(1, 2).requires_grad_() for t in (k, v))
            with sdpa_kernel(SDPBackend.MATH):
                o = sdpa(qs, ks, vs, is_causal=causal, enable_gqa=group > 1)
            g = torch.autograd.grad(o, (qs, ks, vs), do[:, :, h0:h1].float().transpose(1, 2))
            grads[0][:, :, h0:h1] = g[0].transpose(1, 2)
            grads[1][:, :, h0 // group:h1 // group] = g[1].transpose(1, 2)
            grads[2][:, :, h0 // group:h1 // group] = g[2].transpose(1, 2)
            del qs, ks, vs, o, g
        return grads

    def rel(x, ref) -> float:
        return float((x.float() - ref).norm() / ref.norm())

    def time_sdpa(backend, q, k, v, do, causal, group):
        try:
            qt, kt, vt = (t.detach().transpose(1, 2).requires_grad_() for t in (q, k, v))
            with sdpa_kernel(backend):
                o = sdpa(qt, kt, vt, is_causal=causal, enable_gqa=group > 1)
            dot = do.transpose(1, 2)
            torch.autograd.grad(o, (qt, kt, vt), dot, retain_graph=True)
            return bench(lambda: torch.autograd.grad(o, (qt, kt, vt), dot, retain_graph=True)), None
        except Exception as exc:  # a backend that does not take this shape here: reported, not fatal
            return None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:100]}"

    def graph_check(q, k, v, do, causal, variant, eager):
        """Forward and capture on one side stream; the replay must equal the eager gradients."""
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                o = kernel.attention(q, k, v, causal, **variant)
                for _ in range(2):
                    torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=side):
                    grads = torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
                for g in grads:
                    g.zero_()
                graph.replay()
                side.synchronize()
                equal = all(torch.equal(g, e) for g, e in zip(grads, eager))
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(20):
                    graph.replay()
                end.record()
                end.synchronize()
            torch.cuda.current_stream().wait_stream(side)
            return {"ok": equal, "replay_ms": start.elapsed_time(end) / 20}
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"}

    print(f"{torch.cuda.get_device_name()}  torch {torch.__version__}  triton {triton.__version__}  {args.dtype}  "
          f"tolerance {tol:g}")
    head = (f"{'B':>2} {'S':>5} {'H':>3} {'Hkv':>3} {'D':>3} {'causal':6} | {'ours ms':>8} {'TFLOP/s':>7} "
            f"{'rel-L2 dq / dk / dv':>24} {'ok':>3} | {'flash ms':>8} {'TFLOP/s':>7} | {'cudnn ms':>8} {'TFLOP/s':>7}"
            f" | {'graph':5} {'replay ms':>9}")
    print(head)
    def time_grad(o, inputs, do) -> float:
        """Backward only: the retained graph's gradients, as the harness times them."""
        return bench(lambda: torch.autograd.grad(o, inputs, do, retain_graph=True))

    def one_shape(b, s, h, hkv, d, causal) -> dict:
        group = h // hkv
        flops = bwd_flops(b, s, h, d, causal)
        gen = torch.Generator(device="cuda").manual_seed(0)
        q = torch.randn(b, s, h, d, device="cuda", dtype=dtype, generator=gen).requires_grad_()
        k, v = (torch.randn(b, s, hkv, d, device="cuda", dtype=dtype, generator=gen).requires_grad_() for _ in "kv")
        do = torch.randn(b, s, h, d, device="cuda", dtype=dtype, generator=gen)
        row = dict(batch=b, seq=s, heads=h, kv_heads=hkv, head_dim=d, causal=causal, dtype=args.dtype,
                   flops=flops, tol=tol)
        ref = reference(q.detach(), k.detach(), v.detach(), do, causal, group)
        variant = fwd_variant(s, d, causal)
        row["fwd_variant"] = variants.describe(variant)
        configs, eager = [], None
        for label, cfg in candidates(d, args.sweep):
            entry = {"which": label, "config": cfg}
            try:
                o = kernel.attention(q, k, v, causal, **variant, bwd_config=cfg)
                grads = torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
                torch.cuda.synchronize()
                entry["rel_l2"] = [rel(g, r) for g, r in zip(grads, ref)]
                entry["ok"] = max(entry["rel_l2"]) <= tol
                entry["ms"] = time_grad(o, (q, k, v), do)
                entry["tflops"] = flops / entry["ms"] / 1e9
                if label == "table":
                    eager = [g.clone() for g in grads]
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:160]}"
            configs.append(entry)
            if args.sweep:
                status = (entry.get("error") or f"{entry['ms']:8.4f} ms {entry['tflops']:6.0f} TFLOP/s  max rel-L2 "
                          f"{max(entry['rel_l2']):.1e}{'' if entry['ok'] else '  WRONG'}")
                print(f"    {label:5} {fmt(cfg):28} {status}", flush=True)
        row["configs"] = configs
        ours = configs[0]
        if "error" in ours:
            return row
        if not args.no_sdpa:
            for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
                ms, err = time_sdpa(backend, q, k, v, do, causal, group)
                row[name] = {"ms": ms, "tflops": flops / ms / 1e9} if ms else {"error": err}
        if not args.no_graph:
            row["graph"] = graph_check(q, k, v, do, causal, variant, eager)
        if args.sweep and ours["ok"]:
            good = [c for c in configs if c.get("ok")]  # the table's is among them
            best_dkdv = min((c for c in good if c["which"] in ("table", "dkdv")), key=lambda c: c["ms"])
            best_dq = min((c for c in good if c["which"] in ("table", "dq")), key=lambda c: c["ms"])
            best = (best_dkdv["config"][0], best_dq["config"][1])
            o = kernel.attention(q, k, v, causal, **variant, bwd_config=best)
            grads = torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
            combo = {"config": best, "rel_l2": [rel(g, r) for g, r in zip(grads, ref)],
                     "ms": time_grad(o, (q, k, v), do)}
            combo["tflops"] = flops / combo["ms"] / 1e9
            row["best"] = combo
            print(f"    * best: {fmt(best)}  {combo['ms']:.4f} ms  {combo['tflops']:.0f} TFLOP/s  max rel-L2 "
                  f"{max(combo['rel_l2']):.1e}  (table {ours['ms']:.4f} ms)", flush=True)
        elif args.sweep:
            print("    (no best config: the table's own is wrong)")
        return row

    def cell(r: dict) -> str:
        return f"{r['ms']:8.4f} {r['tflops']:7.0f}" if r.get("ms") else f"{'n/a':>8} {'':7}"

    rows, failed = [], False
    for b, s, h, hkv, d, causal in parse_shapes(args.shapes):
        row = one_shape(b, s, h, hkv, d, bool(causal))
        torch.cuda.empty_cache()
        rows.append(row)
        ours = row["configs"][0]
        lead = f"{b:>2} {s:>5} {h:>3} {hkv:>3} {d:>3} {causal:6} |"
        if "error" in ours:
            failed = True
            print(f"{lead} FAILED {ours['error']}", flush=True)
        else:
            g = row.get("graph", {})
            failed |= not ours["ok"] or (bool(g) and not g["ok"])
            rl = " / ".join(f"{x:.1e}" for x in ours["rel_l2"])
            print(f"{lead} {ours['ms']:8.4f} {ours['tflops']:7.0f} {rl:>24} {'yes' if ours['ok'] else 'NO':>3} | "
                  f"{cell(row.get('flash', {}))} | {cell(row.get('cudnn', {}))} | "
                  f"{('yes' if g.get('ok') else 'NO') if g else '-':5} {g.get('replay_ms', math.nan):9.4f}", flush=True)
            for name in ("flash", "cudnn", "graph"):
                if row.get(name, {}).get("error"):
                    print(f"    {name}: {row[name]['error']}")
        if out_dir:  # after every shape, so a run stopped at its time limit keeps what it measured
            meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
                    "bwd_configs": {str(k): v for k, v in kernel_bwd.BWD_CONFIGS.items()}}
            (out_dir / "bwd_check.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    print("FAILED: see the rows marked NO" if failed else "all gradients within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
