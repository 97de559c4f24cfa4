"""impls/triton_flash backward: dq, dk, dv of the Triton kernels against fp32 autograd, in Triton's interpreter.

Like tests/test_triton_flash.py, the kernels run in child processes with TRITON_INTERPRET=1 (two of them at
once, one per core), on tiny shapes. The reference is torch autograd through a softmax attention written
here, in fp32 from the same fp16/bf16 inputs. Lengths 100, 72, 96 and 200 leave ragged query and/or key
blocks in both backward kernels (blocks of 32 and 64), batch 2 a sequence boundary, heads 4 over kv_heads 2 the GQA sum
over a kv head's query heads. Deliberately wrong backwards (a wrong sm_scale, the delta term dropped) must
miss by far, so the tolerances can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO

pytest.importorskip("triton")
pytest.importorskip("torch")

BENCH = REPO / "impls" / "triton_flash" / "bench.py"
# About twice what the kernels give here (fp16 ~3e-4, bf16 ~2.6e-3); the harness allows twice its forward
# tolerance (bf16 2e-2).
TOL = {"float16": 1e-3, "bfloat16": 5e-3}
WRONG = 20  # a wrong backward misses by at least this many tolerances
FWD = (64, 32, 4, 1)  # the forward's BLOCK_M, BLOCK_N, warps, stages
BWD = ((32, 64, 4, 1), (64, 32, 4, 1))  # dK/dV and dQ: two key (query) blocks per diagonal block, both ragged


def case(dtype, dim, causal, path="ptr", *, batch=2, seq=100, heads=4, kv_heads=2, sm_scale=None, layout="bshd",
         wrong=False, bwd=BWD):
    name = (f"{dtype}-d{dim}-{'causal' if causal else 'full'}-{path}-b{batch}s{seq}h{heads}kv{kv_heads}"
            + (f"-scale{sm_scale}" if sm_scale else "") + ("" if layout == "bshd" else f"-{layout}"))
    return dict(name=name, dtype=dtype, dim=dim, causal=causal, path=path, batch=batch, seq=seq, heads=heads,
                kv_heads=kv_heads, sm_scale=sm_scale, layout=layout, wrong=wrong, fwd=FWD, bwd=bwd)


CASES = [
    case("float16", 64, False, wrong=True),
    case("float16", 64, True),
    case("bfloat16", 64, False, "desc"),
    case("bfloat16", 64, True, "devdesc", wrong=True),
    # Lengths the blocks divide (the EVEN_M / EVEN_N code), head_dim 128, GQA group 2 of one kv head.
    case("bfloat16", 128, True, batch=1, seq=64, heads=2, kv_heads=1),
    case("float16", 128, False, batch=1, seq=72, heads=2, kv_heads=2, sm_scale=0.3),
    # head_dim 256 with its own small tiles.
    case("float16", 256, True, batch=1, seq=40, heads=2, kv_heads=2, bwd=((16, 32, 4, 1), (32, 16, 4, 1))),
    # GQA group 4; a length even for the 32-row blocks but not the 64-row ones (EVEN_M xor EVEN_N per kernel).
    case("bfloat16", 128, False, "desc", heads=4, kv_heads=1),
    case("float16", 64, True, seq=96),
    # The table's own configs (bwd_config None: kernel_bwd.BWD_CONFIGS[64]) on a ragged length.
    case("bfloat16", 64, True, batch=1, seq=200, heads=2, kv_heads=1, bwd=None),
    # Strided q, k, v, dO: (B, H, S, D) tensors seen as (B, S, H, D), read in place by the pointer path.
    case("bfloat16", 64, True, seq=72, layout="bhsd"),
]

CHILD = r"""
import importlib.util, json, sys, time
import torch

spec = importlib.util.spec_from_file_location("triton_flash_bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
import kernel, kernel_bwd  # on sys.path now: bench.py put its folder there

def reference(q, k, v, causal, scale):
    # fp32 softmax attention over (B, S, H, D) q and (B, S, Hkv, D) k, v: returns (out, lse), differentiable
    group = q.shape[2] // k.shape[2]
    q, k, v = (t.float().transpose(1, 2) for t in (q, k, v))
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = q @ k.transpose(-1, -2) * scale
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2), s.logsumexp(-1)

def rel(x, ref):
    return float((x.double() - ref.double()).norm() / ref.double().norm())

def leaf(gen, dtype, layout, b, s, h, d):
    if layout == "bhsd":  # the leaf is (B, H, S, D); the kernel sees its (B, S, H, D) transpose
        x = torch.randn(b, h, s, d, generator=gen).to(dtype).requires_grad_()
        return x, x.transpose(1, 2)
    x = torch.randn(b, s, h, d, generator=gen).to(dtype).requires_grad_()
    return x, x

out = {}
for i, c in enumerate(json.loads(sys.stdin.read())):
    gen = torch.Generator().manual_seed(i)
    dtype = getattr(torch, c["dtype"])
    shape = (c["batch"], c["seq"])
    (ql, q), (kl, k), (vl, v) = (leaf(gen, dtype, c["layout"], *shape, h, c["dim"])
                                 for h in (c["heads"], c["kv_heads"], c["kv_heads"]))
    do = leaf(gen, dtype, c["layout"], *shape, c["heads"], c["dim"])[1].detach()
    scale = c["sm_scale"] or c["dim"] ** -0.5
    fwd, bwd = tuple(c["fwd"]), c["bwd"] and tuple(tuple(x) for x in c["bwd"])
    r = {}
    t0 = time.perf_counter()
    try:
        o = bench.attention(q, k, v, c["causal"], sm_scale=c["sm_scale"], path=c["path"], config=fwd,
                            bwd_config=bwd)
        r["grad_fn"] = type(o.grad_fn).__name__
        grads = torch.autograd.grad(o, (ql, kl, vl), do)
        ref_in = [t.detach().float().requires_grad_() for t in (ql, kl, vl)]
        views = [t.transpose(1, 2) if c["layout"] == "bhsd" else t for t in ref_in]
        ref_o, ref_lse = reference(*views, c["causal"], scale)
        ref_grads = torch.autograd.grad(ref_o, ref_in, do.float())
        r["out"] = rel(o, ref_o)
        for name, g, rg, x in zip(("dq", "dk", "dv"), grads, ref_grads, (ql, kl, vl)):
            r[name] = rel(g, rg)
            r[name + "_layout"] = [list(g.shape) == list(x.shape), g.dtype == x.dtype, bool(torch.isfinite(g).all())]
        if c["wrong"]:  # the same backward with one thing wrong: a test that cannot fail proves nothing
            plan = kernel.forward(q.detach(), k.detach(), v.detach(), c["causal"], sm_scale=c["sm_scale"],
                                  path=c["path"], config=fwd, store_lse=True)
            r["lse"] = rel(plan.lse, ref_lse)
            args = (do, q.detach(), k.detach(), v.detach(), plan.out, plan.lse, c["causal"])
            right = kernel_bwd.backward(*args, sm_scale=c["sm_scale"], config=bwd)
            r["direct"] = max(rel(g, rg) for g, rg in zip(right, ref_grads))
            bad = kernel_bwd.backward(*args, sm_scale=scale * 1.25, config=bwd)
            r["wrong_scale"] = min(rel(g, rg) for g, rg in zip(bad[:2], ref_grads[:2]))  # dv does not scale
            zero = torch.zeros_like(plan.lse)
            bad = kernel_bwd.backward(*args, sm_scale=c["sm_scale"], config=bwd, delta=zero)
            r["no_delta"] = min(rel(g, rg) for g, rg in zip(bad[:2], ref_grads[:2]))  # dv needs no delta
        with torch.no_grad():  # no graph wanted: the forward alone
            r["no_grad_fn"] = repr(bench.attention(q, k, v, c["causal"], path=c["path"], config=fwd).grad_fn)
    except Exception as exc:
        import traceback
        r["error"] = traceback.format_exc()[-3000:]
    r["s"] = time.perf_counter() - t0
    out[c["name"]] = r
print(json.dumps(out))
"""

INCOMPATIBLE = ("this Triton's interpreter does not run with this NumPy (Triton <= 3.6 with NumPy >= 2.3: "
                "use triton>=3.7 or numpy<2.3)")


def _child(cases: list[dict]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO / "shared")}
    return subprocess.run([sys.executable, "-c", CHILD, str(BENCH)], input=json.dumps(cases), env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def interpreted() -> dict:
    """Every case run by the interpreter, split over two child processes: name -> result."""
    halves = [CASES[0::2], CASES[1::2]]
    with ThreadPoolExecutor(len(halves)) as pool:
        runs = list(pool.map(_child, halves))
    results = {}
    for res in runs:
        if "only 0-dimensional arrays can be converted" in res.stderr:  # see tests/test_triton_flash.py
            pytest.skip(INCOMPATIBLE)
        assert res.returncode == 0, res.stderr[-4000:]
        results.update(json.loads(res.stdout.strip().splitlines()[-1]))
    if any("only 0-dimensional arrays can be converted" in r.get("error", "") for r in results.values()):
        pytest.skip(INCOMPATIBLE)
    return results


@pytest.mark.parametrize("c", CASES, ids=[c["name"] for c in CASES])
def test_gradients_match_fp32_autograd_in_interpreter(interpreted, c):
    r = interpreted[c["name"]]
    assert "error" not in r, r["error"]
    assert r["grad_fn"].startswith("FlashAttnFn"), r
    assert r["no_grad_fn"] == "None", r  # grad mode off: today's forward, no autograd node
    tol = TOL[c["dtype"]]
    assert r["out"] <= tol, r
    for name in ("dq", "dk", "dv"):
        assert r[name + "_layout"] == [True, True, True], (name, r)  # the input's shape and dtype, all finite
        assert r[name] <= tol, (name, r)


WRONG_CASES = [c for c in CASES if c["wrong"]]


@pytest.mark.parametrize("c", WRONG_CASES, ids=[c["name"] for c in WRONG_CASES])
def test_a_wrong_backward_misses_by_far(interpreted, c):
    r = interpreted[c["name"]]
    assert "error" not in r, r["error"]
    tol = TOL[c["dtype"]]
    assert r["lse"] <= 1e-5, r  # the stored log-sum-exp, fp32 against fp32
    assert r["direct"] <= tol, r  # kernel_bwd.backward called directly, right: as through autograd
    assert r["wrong_scale"] > WRONG * tol, r
    assert r["no_delta"] > WRONG * tol, r


def test_backward_config_is_checked(bench_modules):
    kernel_bwd = bench_modules
    assert kernel_bwd.check_config(64, None) == kernel_bwd.BWD_CONFIGS[64]
    with pytest.raises(ValueError, match="multiple"):
        kernel_bwd.check_config(64, ((64, 32, 4, 1), (64, 32, 4, 1)))
    with pytest.raises(ValueError, match="powers of two"):
        kernel_bwd.check_config(64, ((24, 48, 4, 1), (64, 32, 4, 1)))
    with pytest.raises(ValueError, match="head_dim 96"):
        kernel_bwd.check_config(96, None)
    for dim, ((m1, n1, _, _), (m2, n2, _, _)) in kernel_bwd.BWD_CONFIGS.items():
        assert n1 % m1 == 0 and m2 % n2 == 0, dim


@pytest.fixture(scope="module")
def bench_modules():
    """kernel_bwd, as bench.py imports it in this process (no kernel is launched here)."""
    import importlib.util

    sys.path.insert(0, str(REPO / "shared"))
    try:
        spec = importlib.util.spec_from_file_location("triton_flash_bench_bwd_host", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "shared"))
    return sys.modules["kernel_bwd"]
