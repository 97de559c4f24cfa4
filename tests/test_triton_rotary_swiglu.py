"""impls/rotary_triton and impls/swiglu_triton: their Triton kernels checked on the CPU with Triton's interpreter.

Every kernel call runs in one child process with TRITON_INTERPRET=1 (read when triton is imported, so never in
this process), on small shapes chosen to reach each code path of the launch table: rows that leave a ragged last
program, a D/2 or D that is not a power of two, head counts above one loop step, column-blocked rows, strided
inputs, GQA/MQA. The reference is fp32 torch written here (autograd of it for the gradients). The interpreter's
fp32 -> bf16 cast truncates where the GPU rounds to nearest, which the bf16 tolerances cover. Deliberately
wrong calls (sin negated, the untransposed rotation as a gradient, swapped gate/up halves) must miss the
reference by far more than any tolerance: the comparison can fail. Launch tables and input checks are plain
Python and run here.
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

ROTARY = REPO / "impls" / "rotary_triton" / "kernel.py"
SWIGLU = REPO / "impls" / "swiglu_triton" / "kernel.py"
TOL_FWD = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1e-2}
TOL_GRAD = {"float32": 1e-4, "float16": 4e-3, "bfloat16": 2e-2}
WRONG_MIN = 0.1  # a wrong call misses the reference by at least this rel-L2 (tens of times any tolerance)

# (B, S, H, Hk, D) and what of the launch table each reaches (see rotary launch_config).
ROTARY_SHAPES = {
    "gqa-raggedrows": (2, 7, 4, 2, 64),  # BLOCK_S=16 over 14 rows: a masked last program
    "half48": (1, 5, 3, 3, 96),  # D/2 = 48 padded to 64, 3 heads padded to 4
    "d10-mqa": (3, 4, 5, 1, 10),  # tiny D, one kv head
    "headloop": (1, 3, 20, 3, 256),  # 20 heads > BLOCK_H=16: two loop steps, the second masked
    "even": (2, 8, 4, 4, 128),  # every block divides: the unmasked code
    "llama-heads": (1, 2, 32, 8, 128),  # BLOCK_S=1, all 32 heads in one step, unmasked
}
# x shapes (..., 2D) for swiglu.
SWIGLU_SHAPES = {
    "d10": (3, 5, 20),  # 15 rows in one masked program
    "d1": (7, 2),  # D = 1
    "d65-4dims": (2, 3, 4, 130),
    "d4500-colblocks": (4, 9000),  # 9 column blocks of 512, the last masked
    "d768-colblocks": (2, 1536),  # 3 unmasked column blocks of 256
    "d64-even": (64, 128),  # unmasked
    "d14336": (2, 28672),  # 7 unmasked column blocks of 2048
    "1dim": (20,),
}


def _case(op, mode, dtype, shape_name, **extra):
    name = f"{op}-{mode}-{dtype}-{shape_name}" + "".join(f"-{k}={v}" for k, v in sorted(extra.items()))
    shape = (ROTARY_SHAPES if op == "rotary" else SWIGLU_SHAPES)[shape_name]
    return dict(name=name, op=op, mode=mode, dtype=dtype, shape=list(shape), **extra)


CASES = [
    *(_case("rotary", "fwd", dt, s, halves="equal") for dt in ("float32", "bfloat16", "float16") for s in ROTARY_SHAPES),
    _case("rotary", "fwd", "float32", "half48", halves="random"),  # cos/sin halves that differ: the exact formula
    _case("rotary", "fwd", "bfloat16", "gqa-raggedrows", halves="equal", cs="bfloat16"),  # HF casts cos/sin to x's
    _case("rotary", "fwd", "float32", "headloop", halves="equal", strided=True),  # q a transposed view, k a slice
    *(_case("rotary", "grad", dt, s, halves="equal") for dt in ("float32", "bfloat16")
      for s in ("gqa-raggedrows", "half48", "headloop", "even")),
    _case("rotary", "grad", "float32", "half48", halves="random"),
    _case("rotary", "grad", "float32", "d10-mqa", halves="random", strided=True),
    _case("rotary", "grad", "float32", "even", halves="equal", only_q=True),  # k_out unused: a zero grad for k
    *(_case("swiglu", "fwd", dt, s) for dt in ("float32", "bfloat16", "float16") for s in SWIGLU_SHAPES),
    _case("swiglu", "fwd", "float32", "d65-4dims", strided=True),
    *(_case("swiglu", "grad", dt, s) for dt in ("float32", "bfloat16")
      for s in ("d10", "d65-4dims", "d4500-colblocks", "d768-colblocks", "d64-even", "1dim")),
    _case("swiglu", "grad", "float16", "d65-4dims"),
    # Deliberately wrong calls: each must be caught by the same comparison.
    _case("rotary", "wrong-sin", "float32", "gqa-raggedrows", halves="equal"),
    _case("rotary", "wrong-sin", "bfloat16", "even", halves="equal"),
    _case("rotary", "wrong-grad", "float32", "half48", halves="equal"),
    _case("swiglu", "wrong-halves", "float32", "d65-4dims"),
    _case("swiglu", "wrong-halves", "bfloat16", "d768-colblocks"),
    _case("swiglu", "wrong-grad", "float32", "d10"),
]

CHILD = r"""
import importlib.util, json, sys
import torch

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

rot, swi = load("rotary_kernel", sys.argv[1]), load("swiglu_kernel", sys.argv[2])

def rel(got, ref):
    ref = ref.detach().float()
    return float((got.detach().float() - ref).norm() / ref.norm())

def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)

def rotary_ref(x, cos, sin):  # fp32, the canonical formula
    return x.float() * cos.float()[None, :, None, :] + rotate_half(x.float()) * sin.float()[None, :, None, :]

def swiglu_ref(x):  # fp32, silu written out
    d = x.shape[-1] // 2
    a, b = x.float()[..., :d], x.float()[..., d:]
    return a * torch.sigmoid(a) * b

def rotary_inputs(c, gen, dt):
    B, S, H, HK, D = c["shape"]
    if c.get("strided"):  # q read through a (B, H, S, D) buffer, k a slice of a wider one: no copies made
        q = torch.randn(B, H, S, D, generator=gen).to(dt).transpose(1, 2)
        k = torch.randn(B, S, HK, 2 * D + 2, generator=gen).to(dt)[..., 1:D + 1]
        assert not q.is_contiguous() and not k.is_contiguous()
    else:
        q = torch.randn(B, S, H, D, generator=gen).to(dt)
        k = torch.randn(B, S, HK, D, generator=gen).to(dt)
    if c["halves"] == "equal":  # the Llama / HF tables: cat(freqs, freqs)
        inv = 1.0 / 10000 ** (torch.arange(0, D // 2, dtype=torch.float32) * 2 / D)
        f = torch.outer(torch.arange(S, dtype=torch.float32), inv)
        emb = torch.cat([f, f], -1)
        cos, sin = emb.cos(), emb.sin()
    else:
        cos, sin = torch.randn(S, D, generator=gen), torch.randn(S, D, generator=gen)
    cs = getattr(torch, c.get("cs", "float32"))
    return q, k, cos.to(cs), sin.to(cs)

def run_rotary(c, gen, dt):
    q, k, cos, sin = rotary_inputs(c, gen, dt)
    before = (q.clone(), k.clone())
    if c["mode"] in ("fwd", "wrong-sin"):
        qo, ko = rot.rotary(q, k, cos, -sin if c["mode"] == "wrong-sin" else sin)
        return {"rel": [rel(qo, rotary_ref(q, cos, sin)), rel(ko, rotary_ref(k, cos, sin))],
                "dtypes": [str(t.dtype).removeprefix("torch.") for t in (qo, ko)],
                "shapes": [list(qo.shape), list(ko.shape)], "contiguous": qo.is_contiguous() and ko.is_contiguous(),
                "inputs_unchanged": torch.equal(before[0], q) and torch.equal(before[1], k)}
    gq, gk = torch.randn(q.shape, generator=gen), torch.randn(k.shape, generator=gen)
    qf, kf = (t.detach().float().requires_grad_() for t in (q, k))
    qr, kr = rotary_ref(qf, cos, sin), rotary_ref(kf, cos, sin)
    ql, kl = (t.detach().requires_grad_() for t in (q, k))
    if c["mode"] == "wrong-grad":  # the forward rotation used as the gradient's: not its transpose
        dq, dk = rot._launch(gq.to(dt), gk.to(dt), cos, sin, transpose=False)
    else:
        qo, ko = rot.rotary_fn(ql, kl, cos, sin)
    if c.get("only_q"):
        (qr * gq).sum().backward()
        (qo.float() * gq).sum().backward()  # ko unused: autograd hands the backward a zero grad for it
        dq, dk = ql.grad, kl.grad
    elif c["mode"] == "grad":
        ((qr * gq).sum() + (kr * gk).sum()).backward()
        torch.autograd.backward([qo, ko], [gq.to(dt), gk.to(dt)])
        dq, dk = ql.grad, kl.grad
    else:
        ((qr * gq).sum() + (kr * gk).sum()).backward()
    if c.get("only_q"):
        return {"rel": [rel(dq, qf.grad)], "k_grad_zero": bool(dk is not None and (dk == 0).all()),
                "dtypes": [str(dq.dtype).removeprefix("torch.")]}
    return {"rel": [rel(dq, qf.grad), rel(dk, kf.grad)], "dtypes": [str(t.dtype).removeprefix("torch.") for t in (dq, dk)]}

def run_swiglu(c, gen, dt):
    if c.get("strided"):
        x = torch.randn(*c["shape"][:-2], c["shape"][-1], c["shape"][-2], generator=gen).to(dt).transpose(-1, -2)
        assert not x.is_contiguous()
    else:
        x = torch.randn(*c["shape"], generator=gen).to(dt)
    d = x.shape[-1] // 2
    if c["mode"] in ("fwd", "wrong-halves"):
        before = x.clone()
        y = swi.swiglu(torch.cat([x[..., d:], x[..., :d]], -1) if c["mode"] == "wrong-halves" else x)
        return {"rel": [rel(y, swiglu_ref(x))], "dtypes": [str(y.dtype).removeprefix("torch.")],
                "shapes": [list(y.shape)], "contiguous": y.is_contiguous(), "inputs_unchanged": torch.equal(before, x)}
    dy = torch.randn(*x.shape[:-1], d, generator=gen)
    xf = x.detach().float().requires_grad_()
    (swiglu_ref(xf) * dy).sum().backward()
    if c["mode"] == "wrong-grad":  # the gradient at the swapped input
        dx = swi.swiglu_backward(torch.cat([x[..., d:], x[..., :d]], -1), dy.to(dt))
    else:
        xl = x.detach().requires_grad_()
        swi.swiglu_fn(xl).backward(dy.to(dt))
        dx = xl.grad
    return {"rel": [rel(dx, xf.grad)], "dtypes": [str(dx.dtype).removeprefix("torch.")]}

out = {}
for i, c in enumerate(json.load(sys.stdin)):
    gen = torch.Generator().manual_seed(i)
    dt = getattr(torch, c["dtype"])
    try:
        out[c["name"]] = (run_rotary if c["op"] == "rotary" else run_swiglu)(c, gen, dt)
    except Exception as exc:
        out[c["name"]] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""

INCOMPATIBLE = ("this Triton's interpreter does not run with this NumPy "
                "(Triton <= 3.6 with NumPy >= 2.3: use triton>=3.7 or numpy<2.3)")


@pytest.fixture(scope="module")
def interpreted() -> dict:
    """Every case of CASES run once by the interpreter in a child process: name -> result."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, str(ROTARY), str(SWIGLU)], input=json.dumps(CASES), env=env,
                         capture_output=True, text=True, timeout=600)
    # Triton <= 3.6's interpreter calls int() on 1-element arrays, which NumPy >= 2.3 refuses (see test_triton_flash).
    incompatible = "only 0-dimensional arrays can be converted"
    if incompatible in res.stderr:
        pytest.skip(INCOMPATIBLE)
    assert res.returncode == 0, res.stderr[-4000:]
    results = json.loads(res.stdout.strip().splitlines()[-1])
    if any(incompatible in r.get("error", "") for r in results.values()):
        pytest.skip(INCOMPATIBLE)
    return results


def _expected_shapes(c) -> list[list[int]]:
    if c["op"] == "rotary":
        b, s, h, hk, d = c["shape"]
        return [[b, s, h, d], [b, s, hk, d]]
    return [[*c["shape"][:-1], c["shape"][-1] // 2]]


@pytest.mark.parametrize("c", [c for c in CASES if c["mode"] == "fwd"], ids=lambda c: c["name"])
def test_forward_matches_fp32_reference(interpreted, c):
    r = interpreted[c["name"]]
    assert "error" not in r, r["error"]
    assert r["shapes"] == _expected_shapes(c) and set(r["dtypes"]) == {c["dtype"]}, r
    assert r["contiguous"] and r["inputs_unchanged"], r  # new outputs; the inputs are never written
    assert max(r["rel"]) <= TOL_FWD[c["dtype"]], r


@pytest.mark.parametrize("c", [c for c in CASES if c["mode"] == "grad"], ids=lambda c: c["name"])
def test_backward_matches_autograd_of_fp32_reference(interpreted, c):
    r = interpreted[c["name"]]
    assert "error" not in r, r["error"]
    assert set(r["dtypes"]) == {c["dtype"]}, r
    assert max(r["rel"]) <= TOL_GRAD[c["dtype"]], r
    if c.get("only_q"):
        assert r["k_grad_zero"], r


@pytest.mark.parametrize("c", [c for c in CASES if c["mode"].startswith("wrong")], ids=lambda c: c["name"])
def test_a_deliberately_wrong_call_is_caught(interpreted, c):
    r = interpreted[c["name"]]
    assert "error" not in r, r["error"]
    assert min(r["rel"]) >= WRONG_MIN, r  # far above every tolerance: the checks above can fail


def _load(path, name):
    """kernel.py in this process (triton not interpreting: nothing is launched here)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rot():
    return _load(ROTARY, "rotary_kernel_host")


@pytest.fixture(scope="module")
def swi():
    return _load(SWIGLU, "swiglu_kernel_host")


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


@pytest.mark.parametrize("module", ["rot", "swi"])
def test_num_warps_follow_the_tile_size_table(module, request):
    m = request.getfixturevalue(module)
    assert [m.warps_for(n) for n in (64, 2048, 2049, 8192, 8193, 65536)] == [4, 4, 8, 8, 16, 16]


@pytest.mark.parametrize("rows, heads, kv_heads, dim", [
    (32768, 32, 8, 128), (32768, 8, 1, 64), (16384, 128, 8, 128), (4096, 2, 2, 64), (14, 4, 2, 64), (5, 3, 3, 96),
    (3, 20, 3, 256), (1, 1, 1, 2), (8, 4, 4, 16384),
])
def test_rotary_launch_table_fills_but_never_overflows_a_tile(rot, rows, heads, kv_heads, dim):
    cfg = rot.launch_config(rows, heads, kv_heads, dim)
    width = 2 * cfg["BLOCK_HALF"]
    assert all(_pow2(cfg[k]) for k in ("BLOCK_S", "BLOCK_H", "BLOCK_HK", "BLOCK_HALF")), cfg
    assert cfg["BLOCK_HALF"] >= dim // 2 > cfg["BLOCK_HALF"] // 2, cfg  # the half row, padded once
    assert cfg["BLOCK_H"] <= triton_next_pow2(heads) and cfg["BLOCK_HK"] <= min(cfg["BLOCK_H"], triton_next_pow2(kv_heads))
    tile = cfg["BLOCK_S"] * cfg["BLOCK_H"] * width
    assert tile <= max(rot.TILE_ELEMS, width), cfg  # only a single head row wider than a tile exceeds it
    if triton_next_pow2(heads) * width < rot.TILE_ELEMS:  # short rows: several positions per program, up to a tile
        assert cfg["BLOCK_H"] == triton_next_pow2(heads) and (tile * 2 > rot.TILE_ELEMS or cfg["BLOCK_S"] >= rows)
    assert cfg["num_warps"] == rot.warps_for(tile)


def test_rotary_launch_table_on_llama_shapes(rot):
    llama = rot.launch_config(8 * 4096, 32, 8, 128)  # one position's 32 q heads are exactly one tile
    assert llama == dict(BLOCK_S=1, BLOCK_H=32, BLOCK_HK=8, BLOCK_HALF=64, num_warps=8)
    small = rot.launch_config(8 * 4096, 4, 1, 64)  # 256 elements per position: 16 positions per program
    assert small == dict(BLOCK_S=16, BLOCK_H=4, BLOCK_HK=1, BLOCK_HALF=32, num_warps=8)


def triton_next_pow2(n: int) -> int:
    return 1 << (max(n, 1) - 1).bit_length()


@pytest.mark.parametrize("rows", [1, 3, 16384])
@pytest.mark.parametrize("dim", [1, 10, 64, 300, 768, 1024, 1500, 3000, 4096, 4500, 8192, 11008, 14336, 28672])
def test_swiglu_launch_table_covers_each_row_with_few_masked_lanes(swi, rows, dim):
    cfg = swi.launch_config(rows, dim)
    bm, bn, blocks = cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["COL_BLOCKS"]
    assert _pow2(bm) and _pow2(bn) and bn <= swi.MAX_BLOCK_N and bm * bn <= swi.TILE_ELEMS, cfg
    assert (blocks - 1) * bn < dim <= blocks * bn, cfg  # the column blocks cover the row, none is empty
    assert bm <= triton_next_pow2(rows) and (bm * bn * 2 > swi.TILE_ELEMS or bm >= rows), cfg  # fills a tile
    assert cfg["MASKED"] == (rows % bm != 0 or dim % bn != 0), cfg
    assert blocks * bn - dim <= max(dim // 4, 255), cfg  # padding: under a quarter row or one narrow block
    assert cfg["num_warps"] == swi.warps_for(bm * bn)


def test_swiglu_launch_table_on_llama_shapes(swi):
    assert swi.launch_config(16384, 14336) == dict(BLOCK_M=2, BLOCK_N=2048, COL_BLOCKS=7, MASKED=False, num_warps=8)
    assert swi.launch_config(16384, 11008)["MASKED"] is False  # 43 blocks of 256
    assert swi.launch_config(16384, 4096) == dict(BLOCK_M=1, BLOCK_N=4096, COL_BLOCKS=1, MASKED=False, num_warps=8)


def test_rotary_refuses_bad_inputs_naming_the_argument(rot):
    q, k = torch.zeros(1, 4, 2, 8), torch.zeros(1, 4, 1, 8)
    cos = sin = torch.zeros(4, 8)
    bad = [
        ((torch.zeros(1, 4, 2, 7), torch.zeros(1, 4, 1, 7), torch.zeros(4, 7), torch.zeros(4, 7)), "head_dim 7 must be even"),
        ((q, torch.zeros(1, 5, 1, 8), cos, sin), "k (1, 5, 1, 8) must match q"),
        ((q, k, torch.zeros(1, 4, 8), sin), "cos must be (S, D) = (4, 8)"),
        ((q, k, cos, torch.zeros(4, 4)), "sin must be (S, D) = (4, 8)"),
        ((q.int(), k, cos, sin), "q dtype torch.int32 is not supported"),
        ((q[..., ::2], k[..., ::2], cos[:, ::2], sin[:, ::2]), "q's last dimension must be contiguous"),
        ((q[0], k, cos, sin), "q and k must be (B, S, H, D)"),
        ((q, k, cos.numpy(), sin), "cos must be a torch.Tensor"),
    ]
    for args, words in bad:
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            rot.rotary(*args)
    with pytest.raises(ValueError, match="cos and sin get no gradient"):
        rot.rotary_fn(q, k, cos.clone().requires_grad_(), sin)


def test_swiglu_refuses_bad_inputs_naming_the_argument(swi):
    for x, words in [(torch.zeros(3, 5), "x's last dimension must be even"), (torch.tensor(1.0), "must be even"),
                     (torch.zeros(3, 4, dtype=torch.int64), "x dtype torch.int64 is not supported"),
                     ([1.0, 2.0], "x must be a torch.Tensor")]:
        with pytest.raises(ValueError, match=words):
            swi.swiglu(x)
    with pytest.raises(ValueError, match=r"dy must be \(3, 2\)"):
        swi.swiglu_backward(torch.zeros(3, 4), torch.zeros(3, 4))
