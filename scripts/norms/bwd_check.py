"""Check and time our Triton norm backward on a GPU, against torch eager (F.rms_norm / F.layer_norm).

For bf16 rms_norm on the `seed` suite's shapes (B=1, S 512-2048, D 2048-8192) and the `large` suite's, and bf16
layer_norm on its `large` suite's (read from shared/opbench/workloads/<op>/<suite>.toml), with x, weight (and bias)
leaves requiring grad, as the harness's backward mode makes them:

  * gradients: dx, dweight (dbias) of ours and of torch eager bf16 against torch autograd of an fp32 formula, as
    rel-L2, ours passing at 2e-2 (twice the bf16 forward tolerance); the stats-saving forward's output against
    the plain forward's (bitwise equality reported; the check is its rel-L2 <= 1e-2); the backward captured in a
    CUDA graph must give the eager call's gradients.
  * time (triton.testing.do_bench, L2 flushed before each call): backward only, torch.autograd.grad(out, leaves,
    dy, retain_graph=True), eager and replayed from a CUDA graph (as the harness times it), and forward+backward;
    ours, torch eager, and Liger where liger_kernel imports (it is not installed by default).
  * GB/s from the minimal bytes: backward reads x, dy, weight and writes dx, dweight (dbias); forward+backward adds
    the forward's (read x, weight (bias), write y). Ours moves a little more (per-row fp32 stats, the fp32 partial
    rows of dweight/dbias, written and read back): shown as extra MB.
  * --sweep 1,2,4,8: our backward's graph time with each number of backward programs per multiprocessor (set as
    both PROGRAMS_PER_SM and WIDE_PROGRAMS_PER_SM).

    python3 scripts/norms/bwd_check.py --out DIR        # writes DIR/norm_bwd.json, prints a table; exits 1 on a failed check
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
WORKLOADS = REPO / "shared" / "opbench" / "workloads"
SUITES = {"rms_norm": ("seed", "large"), "layer_norm": ("large",)}
EPS = {"rms_norm": 1e-6, "layer_norm": 1e-5}
TOL_GRAD = 2e-2  # bf16: twice the forward's rel-L2 1e-2, as the harness checks gradients
WARMUP_MS, REP_MS = 25, 200


def load(op: str):
    sys.path.insert(0, str(REPO / "impls" / f"{op}_triton"))
    mod = importlib.import_module("kernel")
    sys.path.pop(0)
    sys.modules.pop("kernel")
    return mod


def shapes(op: str, suites) -> list[tuple[str, tuple[int, int, int]]]:
    """(suite/name, (B, S, D)) of each workload of the op's suites, bf16 ones only."""
    import tomllib

    found = []
    for suite in suites:
        spec = tomllib.loads((WORKLOADS / op / f"{suite}.toml").read_text())
        defaults = spec.get("defaults", {})
        for wl in spec["workload"]:
            wl = {**defaults, **wl}
            if wl.get("dtype", "bfloat16") == "bfloat16":
                found.append((f"{suite}/{wl['name']}", (wl["batch"], wl["seq_len"], wl["hidden"])))
    return found


def reference(op, x, w, b, eps):
    if op == "layer_norm":
        m = x.mean(-1, keepdim=True)
        return (x - m) * torch.rsqrt((x - m).pow(2).mean(-1, keepdim=True) + eps) * w + b
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rel(got, want) -> float:
    return float((got.float() - want).norm() / want.norm())


def impls(op: str, mod) -> dict:
    """name -> fn(x, w, b, eps) over the op's canonical arguments."""
    found = {}
    if op == "rms_norm":
        found["ours"] = lambda x, w, b, eps: mod.rms_norm_fn(x, w, eps)
        found["torch"] = lambda x, w, b, eps: F.rms_norm(x, (x.shape[-1],), w, eps)
    else:
        found["ours"] = lambda x, w, b, eps: mod.layer_norm_fn(x, w, b, eps)
        found["torch"] = lambda x, w, b, eps: F.layer_norm(x, (x.shape[-1],), w, b, eps)
    try:
        from liger_kernel.transformers.functional import liger_layer_norm, liger_rms_norm

        if op == "rms_norm":
            found["liger"] = lambda x, w, b, eps: liger_rms_norm(x, w, eps, 0.0, "llama", False)
        else:
            found["liger"] = lambda x, w, b, eps: liger_layer_norm(x, w, b, eps)
    except Exception as exc:  # not installed there by default
        print(f"liger: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    return found


def graph_of(call):
    """call captured in a CUDA graph on the current stream (warmed there first), and its output.

    main() runs everything, the forwards too, on one side stream: autograd runs a backward op on its forward's
    stream, and a forward left on the legacy default stream makes capturing autograd.grad fail (torch's own
    F.rms_norm too: "operation would make the legacy stream depend on a capturing blocking stream")."""
    stream = torch.cuda.current_stream()
    assert stream != torch.cuda.default_stream(), "run under a side stream"
    for _ in range(2):
        call()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        out = call()
    graph.replay()
    torch.cuda.synchronize()
    return graph, out


def bench(fn) -> float:
    return do_bench(fn, warmup=WARMUP_MS, rep=REP_MS)


def check_shape(op, mod, name, shape, sweep) -> dict:
    layer = op == "layer_norm"
    eps = EPS[op]
    bsz, seq, d = shape
    rows = bsz * seq
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = (torch.randn(shape, device="cuda", generator=gen) + (0.5 if layer else 0.0)).bfloat16()
    w = (1 + 0.1 * torch.randn(d, device="cuda", generator=gen)).bfloat16()
    b = (0.1 * torch.randn(d, device="cuda", generator=gen)).bfloat16()
    dy = torch.randn(shape, device="cuda", generator=gen).bfloat16()
    grads = ["dx", "dw", "db"] if layer else ["dx", "dw"]
    base = (x, w, b) if layer else (x, w)

    def args(leaves):  # the leaves as fn's (x, w, b, eps); rms_norm has no bias
        return (*leaves, eps) if layer else (*leaves, None, eps)

    ref_leaves = [t.float().requires_grad_() for t in base]
    want = torch.autograd.grad(reference(op, *args(ref_leaves)), ref_leaves, dy.float())
    del ref_leaves

    elt = 2
    bwd_bytes = elt * (3 * rows * d + d + d * (2 if layer else 1))
    fwd_bytes = elt * (2 * rows * d + d * (2 if layer else 1))
    row = {"op": op, "workload": name, "shape": list(shape), "dtype": "bfloat16", "bwd_mb": bwd_bytes / 1e6,
           "fwd_bwd_mb": (bwd_bytes + fwd_bytes) / 1e6, "impls": {}}
    cfg = mod.bwd_launch_config(rows, d, mod.bwd_programs(x.device, d))
    row["ours_launch"] = cfg
    row["ours_extra_mb"] = (rows * 4 * (2 if layer else 1) + 2 * cfg["programs"] * d * 4 * (2 if layer else 1)) / 1e6
    for impl, fn in impls(op, mod).items():
        leaves = [t.detach().clone().requires_grad_() for t in base]
        ent = {}
        try:
            y = fn(*args(leaves))
            got = torch.autograd.grad(y, leaves, dy, retain_graph=True)
            ent["rel"] = {g: rel(t, r) for g, t, r in zip(grads, got, want)}
            ent["dtypes"] = [str(t.dtype).removeprefix("torch.") for t in got]
            ent["fwd_rel"] = rel(y.detach(), reference(op, *args([t.float() for t in base])))
            if impl == "ours":  # the stats-saving forward against the plain one (what runs with no grad)
                plain = mod.layer_norm(x, w, b, eps) if layer else mod.rms_norm(x, w, eps)
                ent["fwd_equal"] = bool(torch.equal(y.detach(), plain))
            bwd = lambda y=y, leaves=leaves: torch.autograd.grad(y, leaves, dy, retain_graph=True)  # noqa: E731
            graph, graph_out = graph_of(bwd)
            ent["graph_equal"] = all(bool(torch.equal(a, c)) for a, c in zip(graph_out, got))
            ent["bwd_ms"] = bench(bwd)
            ent["bwd_graph_ms"] = bench(graph.replay)
            del graph, graph_out
            ent["fwd_bwd_ms"] = bench(lambda fn=fn, leaves=leaves: torch.autograd.grad(fn(*args(leaves)), leaves, dy))
            if impl == "ours" and sweep:
                keep = mod.PROGRAMS_PER_SM, mod.WIDE_PROGRAMS_PER_SM
                ent["sweep_graph_ms"] = {}
                try:
                    for per_sm in sweep:
                        mod.PROGRAMS_PER_SM = mod.WIDE_PROGRAMS_PER_SM = per_sm
                        graph, _ = graph_of(bwd)
                        ent["sweep_graph_ms"][per_sm] = bench(graph.replay)
                        del graph
                finally:
                    mod.PROGRAMS_PER_SM, mod.WIDE_PROGRAMS_PER_SM = keep
            del y, got
        except Exception as exc:  # one impl failing is reported, the others still run
            ent["error"] = f"{type(exc).__name__}: {exc}"
        for key in ("bwd_ms", "bwd_graph_ms"):
            if key in ent:
                ent[key.replace("_ms", "_gbps")] = bwd_bytes / ent[key] / 1e6
        if "fwd_bwd_ms" in ent:
            ent["fwd_bwd_gbps"] = (bwd_bytes + fwd_bytes) / ent["fwd_bwd_ms"] / 1e6
        row["impls"][impl] = ent
        del leaves
        torch.cuda.empty_cache()
    ours = row["impls"]["ours"]
    row["ok"] = ("error" not in ours and all(r <= TOL_GRAD for r in ours["rel"].values())
                 and ours["fwd_rel"] <= TOL_GRAD / 2 and ours["graph_equal"]
                 and ours["dtypes"] == ["bfloat16"] * len(grads))
    return row


def show(row) -> None:
    b, s, d = row["shape"]
    head = f"{row['op']:10s} {b:2d}x{s:5d}x{d:5d} {row['bwd_mb']:7.1f} MB {'ok ' if row['ok'] else 'BAD'}"
    parts = []
    for impl, ent in row["impls"].items():
        if "error" in ent:
            parts.append(f"{impl}: {ent['error'][:80]}")
            continue
        worst = max(ent["rel"].values())
        flag = "" if ent.get("fwd_equal", True) else " (fwd != plain)"
        parts.append(f"{impl}{flag} bwd {ent['bwd_graph_ms'] * 1e3:7.1f} us graph ({ent['bwd_graph_gbps']:5.0f} GB/s), "
                     f"{ent['bwd_ms'] * 1e3:7.1f} eager, fwd+bwd {ent['fwd_bwd_gbps']:5.0f} GB/s, rel {worst:.1e}")
    print(head + " | " + " | ".join(parts), flush=True)
    sweep = row["impls"]["ours"].get("sweep_graph_ms")
    if sweep:
        print(" " * 40 + "programs per SM " + "  ".join(f"{k}: {v * 1e3:.1f} us" for k, v in sweep.items()), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ops", default="rms_norm,layer_norm")
    ap.add_argument("--sweep", default="", help="PROGRAMS_PER_SM values to time ours at, e.g. 1,2,4,8")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sweep = [int(v) for v in args.sweep.split(",") if v]
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, triton {triton.__version__}",
          flush=True)
    rows = []
    torch.cuda.set_stream(torch.cuda.Stream())  # one side stream for everything: see graph_of
    for op in args.ops.split(","):
        mod = load(op)
        print(f"{op}: PROGRAMS_PER_SM={mod.PROGRAMS_PER_SM}, {mod.WIDE_PROGRAMS_PER_SM} from a padded row of "
              f"{mod.WIDE_ROW}", flush=True)
        for name, shape in shapes(op, SUITES[op]):
            row = check_shape(op, mod, name, shape, sweep)
            rows.append(row)
            show(row)
    meta = {"device": props.name, "sms": props.multi_processor_count, "torch": torch.__version__,
            "triton": triton.__version__, "tol_grad": TOL_GRAD}
    (args.out / "norm_bwd.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    bad = [f"{r['op']} {r['workload']}" for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)}/{len(rows)} shapes ok" + (f"; failed: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
