"""impls/rms_norm_triton and impls/layer_norm_triton: their Triton backward checked on the CPU with Triton's interpreter.

The kernels run in one child process with TRITON_INTERPRET=1 (read when triton is imported, so never in this
process). Each case makes x, weight (and bias) leaves, calls the differentiable rms_norm_fn / layer_norm_fn and
takes torch.autograd.grad(out, leaves, dy, retain_graph=True), as the harness's backward mode does; the reference
is torch autograd of an fp32 formula written here. Shapes reach each path of the backward's launch: several
programs (CPU_PROGRAMS on the CPU) with a ragged last chunk, several loop steps per program, a row that is not a
power of two (masked columns), one row per step, leading dims; fp32 and bf16. dy has a non-zero mean and x too,
so each term of dx carries weight. Deliberately wrong calls (the backward given another eps's rstd, LayerNorm's
dx without its mean term, the weight dropped from the backward, RMSNorm's dx without its projection term) must
miss by far more than any tolerance: the comparison can fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytest.importorskip("triton")
torch = pytest.importorskip("torch")

KERNELS = {"rms_norm": REPO / "impls" / "rms_norm_triton" / "kernel.py",
           "layer_norm": REPO / "impls" / "layer_norm_triton" / "kernel.py"}
TOL_FWD = {"float32": 1e-5, "bfloat16": 1e-2}  # tests/test_triton_norms.py's
TOL_GRAD = {"float32": 1e-4, "bfloat16": 2e-2}  # the harness's: 2x the forward's (bf16 rel-L2 1e-2)
WRONG_MIN = 0.1  # a wrong call misses by at least this rel-L2 (five times the bf16 tolerance)
# What of the backward's launch each shape reaches with CPU_PROGRAMS = 4 (see bwd_launch_config).
SHAPES = {
    "ragged-rows": (37, 200),  # D=200 padded to 256 (masked columns), 3 programs of 16, 16, 5 rows
    "loop": (300, 48),  # 4 programs of 80 rows = 5 loop steps of 16, the last program ragged
    "leading": (2, 3, 64),  # one program, 6 rows in a step of 8
    "wide": (5, 3000),  # one row per step, 3000 padded to 4096
    "even": (64, 256),  # 4 programs of 16 rows: no mask but the row one
    "long": (3, 4100),  # rows the forward's table sends to rms_norm's looped kernel: training takes whole rows
}
EPS = {"rms_norm": 1e-6, "layer_norm": 1e-5}

CHILD = r"""
import importlib.util, json, sys
import torch

paths = json.loads(sys.argv[1])
mods = {}
for op, path in paths.items():
    spec = importlib.util.spec_from_file_location(op + "_kernel", path)
    mods[op] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mods[op])
EPS = {"rms_norm": 1e-6, "layer_norm": 1e-5}

def ref(op, x, w, b, eps):  # fp32, written out
    if op == "layer_norm":
        m = x.mean(-1, keepdim=True)
        return (x - m) * torch.rsqrt(((x - m) ** 2).mean(-1, keepdim=True) + eps) * w + b
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w

def rel(got, want):
    if got is None:
        return None
    want = want.detach().float()
    return float((got.detach().float() - want).norm() / want.norm())

def inputs(c, gen):
    dt = getattr(torch, c["dtype"])
    shape, n = c["shape"], c["shape"][-1]
    x = (torch.randn(*shape, generator=gen) + 0.5).to(dt)
    w = (1 + c.get("w_spread", 0.1) * torch.randn(n, generator=gen)).to(dt)
    b = (0.1 * torch.randn(n, generator=gen)).to(dt)
    dy = (torch.randn(*shape, generator=gen) + 0.5).to(dt)
    if c.get("strided"):  # x a transposed view of a (…, D, rows) buffer: not contiguous
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
        assert not x.is_contiguous()
    return x, w, b, dy

def reference_grads(op, x, w, b, dy, eps):
    leaves = [t.detach().float().requires_grad_() for t in ((x, w, b) if op == "layer_norm" else (x, w))]
    out = ref(op, *leaves, *(() if op == "layer_norm" else (None,)), eps)
    return torch.autograd.grad(out, leaves, dy.float())

def call(op, leaves, eps):
    k = mods[op]
    return k.layer_norm_fn(*leaves, eps) if op == "layer_norm" else k.rms_norm_fn(*leaves, eps)

def plain(op, x, w, b, eps):
    k = mods[op]
    return k.layer_norm(x, w, b, eps) if op == "layer_norm" else k.rms_norm(x, w, eps)

def run(c, gen):
    op, eps = c["op"], EPS[c["op"]]
    k = mods[op]
    layer = op == "layer_norm"
    x, w, b, dy = inputs(c, gen)
    want = reference_grads(op, x, w, b, dy, eps)
    names = ["dx", "dw", "db"] if layer else ["dx", "dw"]
    mode = c["mode"]
    if mode == "grad":
        leaves = [t.detach().requires_grad_() for t in ((x, w, b) if layer else (x, w))]
        y = call(op, leaves, eps)
        got = torch.autograd.grad(y, leaves, dy, retain_graph=True)
        again = torch.autograd.grad(y, leaves, dy, retain_graph=True)  # the harness times repeats of this call
        return {"rel": dict(zip(names, (rel(g, r) for g, r in zip(got, want)))),
                "dtypes": [str(g.dtype).removeprefix("torch.") for g in got],
                "shapes": [list(g.shape) for g in got],
                "repeat_equal": all(torch.equal(g, h) for g, h in zip(got, again)),
                "fwd_rel": rel(y, ref(op, x.float(), w.float(), b.float(), eps)),
                "has_grad_fn": y.grad_fn is not None}
    if mode == "some":  # only the leaves named in c["grad"] require grad: the others get None
        leaves = [t.detach().requires_grad_(name in c["grad"]) for t, name in zip((x, w, b), names)]
        y = call(op, leaves, eps)
        wanted = [t for t in leaves if t.requires_grad]
        got = torch.autograd.grad(y, wanted, dy, retain_graph=True)
        y.backward(dy)  # .grad of the others stays None
        return {"rel": {n: rel(g, want[names.index(n)]) for n, g in zip(c["grad"], got)},
                "none": [n for n, t in zip(names, leaves) if t.grad is None]}
    if mode == "nograd":  # nothing requires grad, or grad mode off: the plain forward, no graph
        y0 = call(op, [x, w, b][:len(names)], eps)
        leaves = [t.detach().requires_grad_() for t in ((x, w, b) if layer else (x, w))]
        with torch.no_grad():
            y1 = call(op, leaves, eps)
        ref_y = plain(op, x, w, b, eps)
        return {"equal": torch.equal(y0, ref_y) and torch.equal(y1, ref_y),
                "graph": [y0.grad_fn is not None, y1.grad_fn is not None]}
    # Deliberately wrong backward calls, through the same kernels.
    y, x2, mean, rstd = k._norm_train(x, w, b if layer else None, eps, layer)
    dy2 = dy.reshape(x2.shape)
    if mode == "wrong-eps":  # the statistics of another eps (1e6 times): the backward must use the saved rstd
        _, _, mean_w, rstd_w = k._norm_train(x, w, b if layer else None, eps * 1e6, layer)
        dx, dw, _ = k._norm_backward(dy2, x2, w, mean_w, rstd_w, layer, bias_dtype=b.dtype)
    elif mode == "wrong-mean-term":  # LayerNorm's dx without -<w*dy>: RMSNorm's backward on the centred x
        centred = x2.float() - mean[:, None]
        dx, dw, _ = k._norm_backward(dy2.float(), centred, w, None, rstd, False)
    elif mode == "wrong-weight":  # the weight dropped from dx (ones in its place; a weight far from 1 here)
        dx, dw, _ = k._norm_backward(dy2, x2, torch.ones_like(w), mean, rstd, layer, bias_dtype=b.dtype)
    elif mode == "wrong-projection":  # RMSNorm's dx without -xhat*<w*dy*xhat> (written in torch: a mutant)
        dx = (w.float() * dy2.float() * rstd[:, None]).to(x.dtype)
        dw = want[1]
    return {"rel": {"dx": rel(dx.view(x.shape), want[0]), "dw": rel(dw, want[1])}}

out = {}
for i, c in enumerate(json.load(sys.stdin)):
    try:
        out[c["name"]] = run(c, torch.Generator().manual_seed(i))
    except Exception as exc:
        out[c["name"]] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def _case(op, mode, dtype, shape, **extra):
    name = f"{op}-{mode}-{dtype}-{shape}" + "".join(f"-{k}={v}" for k, v in sorted(extra.items()))
    return dict(name=name, op=op, mode=mode, dtype=dtype, shape=list(SHAPES[shape]), **extra)


GRAD_CASES = [_case(op, "grad", dt, s) for op in KERNELS for dt in TOL_GRAD for s in SHAPES]
GRAD_CASES += [_case(op, "grad", "float32", "ragged-rows", strided=True) for op in KERNELS]
SOME_CASES = [_case("rms_norm", "some", "float32", "ragged-rows", grad=["dw"]),
              _case("rms_norm", "some", "bfloat16", "loop", grad=["dx"]),
              _case("layer_norm", "some", "float32", "ragged-rows", grad=["db"]),
              _case("layer_norm", "some", "float32", "loop", grad=["dx"]),
              _case("layer_norm", "some", "bfloat16", "leading", grad=["dx", "dw"])]
NOGRAD_CASES = [_case(op, "nograd", dt, "ragged-rows") for op in KERNELS for dt in TOL_GRAD]
WRONG_CASES = [_case("rms_norm", "wrong-eps", "float32", "ragged-rows"),
               _case("rms_norm", "wrong-weight", "float32", "loop", w_spread=0.5),
               _case("rms_norm", "wrong-projection", "bfloat16", "leading"),
               _case("layer_norm", "wrong-eps", "float32", "leading"),
               _case("layer_norm", "wrong-mean-term", "float32", "ragged-rows"),
               _case("layer_norm", "wrong-mean-term", "bfloat16", "loop"),
               _case("layer_norm", "wrong-weight", "bfloat16", "wide", w_spread=0.5)]
CASES = GRAD_CASES + SOME_CASES + NOGRAD_CASES + WRONG_CASES


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps({op: str(p) for op, p in KERNELS.items()})],
                         input=json.dumps(CASES), env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 and "numpy" in res.stderr.lower() and "interpret" in res.stderr.lower():
        pytest.skip(f"Triton's interpreter cannot run here: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _got(results, case):
    got = results[case["name"]]
    assert "error" not in got, got["error"]
    return got


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c["name"])
def test_gradients_match_fp32_autograd(results, case):
    got = _got(results, case)
    names = ["dx", "dw", "db"] if case["op"] == "layer_norm" else ["dx", "dw"]
    assert list(got["rel"]) == names
    assert all(r <= TOL_GRAD[case["dtype"]] for r in got["rel"].values()), got["rel"]
    n = case["shape"][-1]
    assert got["shapes"] == [case["shape"]] + [[n]] * (len(names) - 1)
    assert got["dtypes"] == [case["dtype"]] * len(names)  # dx in x's dtype, dw / db in weight's / bias's
    assert got["repeat_equal"] and got["has_grad_fn"]
    # the stats-saving forward's output, as accurate as the plain forward's (bitwise equal to it today, but a
    # retuned forward table may route a shape to another kernel: the no-grad cases check the plain path exactly)
    assert got["fwd_rel"] <= TOL_FWD[case["dtype"]], got["fwd_rel"]


@pytest.mark.parametrize("case", SOME_CASES, ids=lambda c: c["name"])
def test_only_the_leaves_that_require_grad_get_one(results, case):
    got = _got(results, case)
    names = ["dx", "dw", "db"] if case["op"] == "layer_norm" else ["dx", "dw"]
    assert sorted(got["rel"]) == sorted(case["grad"])
    assert all(r <= TOL_GRAD[case["dtype"]] for r in got["rel"].values()), got["rel"]
    assert got["none"] == [n for n in names if n not in case["grad"]]


@pytest.mark.parametrize("case", NOGRAD_CASES, ids=lambda c: c["name"])
def test_without_grad_it_is_the_plain_forward(results, case):
    got = _got(results, case)
    assert got["equal"] and got["graph"] == [False, False]


@pytest.mark.parametrize("case", WRONG_CASES, ids=lambda c: c["name"])
def test_a_wrong_backward_misses_the_reference(results, case):
    got = _got(results, case)
    assert got["rel"]["dx"] > WRONG_MIN, got["rel"]
    if case["mode"] == "wrong-eps":  # xhat itself is off, so dw is too
        assert got["rel"]["dw"] > WRONG_MIN, got["rel"]
    if case["mode"] in ("wrong-mean-term", "wrong-weight"):  # dw comes from xhat and dy alone: still right
        assert got["rel"]["dw"] <= TOL_GRAD[case["dtype"]], got["rel"]


def _kernel(op):
    spec = importlib.util.spec_from_file_location(op + "_kernel_host", KERNELS[op])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("op", KERNELS)
def test_backward_launch_covers_every_row_once(op):
    mod = _kernel(op)
    assert mod.bwd_launch_config(37, 200, 4) == dict(programs=3, rows_per_prog=16, BLOCK_M=16, BLOCK_N=256,
                                                     MASK_COLS=True, num_warps=8)
    assert mod.bwd_launch_config(300, 48, 4)["rows_per_prog"] == 80
    for n_rows, n, target in ((1, 1, 4), (37, 200, 4), (32768, 2048, 264), (8192, 8192, 264), (2048, 8192, 264),
                              (65536, 4096, 528), (5, 65536, 264), (1000, 3000, 7)):
        cfg = mod.bwd_launch_config(n_rows, n, target)
        assert cfg["rows_per_prog"] % cfg["BLOCK_M"] == 0 and 1 <= cfg["programs"] <= target
        assert (cfg["programs"] - 1) * cfg["rows_per_prog"] < n_rows <= cfg["programs"] * cfg["rows_per_prog"]
        assert cfg["BLOCK_N"] >= n and cfg["MASK_COLS"] == (n != cfg["BLOCK_N"])
    assert mod.bwd_programs(torch.device("cpu"), 8192) == mod.CPU_PROGRAMS
