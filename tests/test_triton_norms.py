"""impls/rms_norm_triton and impls/layer_norm_triton: their Triton kernels checked on the CPU with Triton's interpreter.

The kernels run in one child process with TRITON_INTERPRET=1 (read when triton is imported, so never in this
process), on shapes that reach each path of the launch table: several rows per program with a ragged last one,
a row that is not a power of two (masked), one row per program, leading dims, fp32 and bf16. The reference is
fp32 torch written here. A deliberately wrong call (the wrong eps, a dropped weight) must miss by far more than
any tolerance, so the comparison can fail.
"""

from __future__ import annotations

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
TOL = {"float32": 1e-5, "bfloat16": 1e-2}
SHAPES = {"ragged-rows": (37, 200), "pow2": (16, 256), "long-rows": (3, 8192), "leading": (2, 3, 64),
          "one": (1, 1)}
CHILD = r"""
import importlib.util, json, sys, torch
cases = json.loads(sys.stdin.read())
mods = {}
def load(op, path):
    if op not in mods:
        spec = importlib.util.spec_from_file_location(op + "_kernel", path)
        mods[op] = importlib.util.module_from_spec(spec); spec.loader.exec_module(mods[op])
    return mods[op]
def ref(op, x, w, b, eps):
    x, w = x.float(), w.float()
    if op == "layer_norm":
        m = x.mean(-1, keepdim=True)
        return (x - m) * torch.rsqrt(((x - m) ** 2).mean(-1, keepdim=True) + eps) * w + b.float()
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w
out = {}
for c in cases:
    g = torch.Generator().manual_seed(0)
    dtype = getattr(torch, c["dtype"])
    x = (torch.randn(*c["shape"], generator=g) + 0.5).to(dtype)
    n = c["shape"][-1]
    w = (1 + 0.1 * torch.randn(n, generator=g)).to(dtype)
    b = (0.1 * torch.randn(n, generator=g)).to(dtype)
    k = load(c["op"], c["path"])
    table = k.launch_config
    if c.get("config"):  # force one launch (a path the table only takes on shapes too big for the interpreter)
        k.launch_config = lambda rows, n, cfg=c["config"]: dict(cfg)
    eps = 1e-6 if c["op"] == "rms_norm" else 1e-5
    args = (x, w, eps * c.get("eps_scale", 1)) if c["op"] == "rms_norm" else (x, w, b, eps * c.get("eps_scale", 1))
    if c.get("drop_weight"):
        args = (x, torch.ones_like(w)) + args[2:]
    y = getattr(k, c["op"])(*args)
    k.launch_config = table
    r = ref(c["op"], x, w, b, eps)
    rel = float((y.float() - r).norm() / r.norm())
    out[c["name"]] = {"rel": rel, "dtype": str(y.dtype), "shape": list(y.shape)}
print(json.dumps(out))
"""


def cases():
    found = []
    for op, path in KERNELS.items():
        for shape_name, shape in SHAPES.items():
            for dtype in TOL:
                found.append(dict(name=f"{op}-{shape_name}-{dtype}", op=op, path=str(path), shape=list(shape), dtype=dtype))
        if op == "rms_norm":  # the looped kernel: one row per program unmasked, and ragged rows and columns
            for dtype in TOL:
                found.append(dict(name=f"{op}-looped-one-row-{dtype}", op=op, path=str(path), shape=[4, 512],
                                  dtype=dtype, config=dict(BLOCK_M=1, CHUNK=128, MASKED=False, num_warps=4)))
                found.append(dict(name=f"{op}-looped-ragged-{dtype}", op=op, path=str(path), shape=[5, 300],
                                  dtype=dtype, config=dict(BLOCK_M=2, CHUNK=128, MASKED=True, num_warps=4)))
        found.append(dict(name=f"{op}-wrong-eps", op=op, path=str(path), shape=[4, 8], dtype="float32", eps_scale=1e6))
        found.append(dict(name=f"{op}-wrong-weight", op=op, path=str(path), shape=[4, 64], dtype="float32",
                          drop_weight=True))
    return found


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(cases()), env=env, capture_output=True,
                         text=True, timeout=600)
    if res.returncode != 0 and "numpy" in res.stderr.lower() and "interpret" in res.stderr.lower():
        pytest.skip(f"Triton's interpreter cannot run here: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", [c for c in cases() if "wrong" not in c["name"]], ids=lambda c: c["name"])
def test_kernel_matches_the_fp32_reference(results, case):
    got = results[case["name"]]
    assert got["rel"] <= TOL[case["dtype"]], got
    assert got["shape"] == case["shape"] and got["dtype"] == f"torch.{case['dtype']}"


@pytest.mark.parametrize("op", KERNELS)
def test_a_wrong_call_misses_the_reference(results, op):
    assert results[f"{op}-wrong-eps"]["rel"] > 0.05 and results[f"{op}-wrong-weight"]["rel"] > 0.05


def test_launch_table_puts_short_rows_together_and_long_rows_alone():
    import importlib.util

    spec = importlib.util.spec_from_file_location("rms_kernel", KERNELS["rms_norm"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.launch_config(1024, 256) == dict(BLOCK_M=16, BLOCK_N=256, MASKED=False, num_warps=8)
    assert mod.launch_config(1024, 2048) == dict(BLOCK_M=2, BLOCK_N=2048, MASKED=False, num_warps=8)
    # long rows loop: one per program when there are many, two otherwise; a ragged row or row count is masked
    assert mod.launch_config(16384, 8192) == dict(BLOCK_M=1, CHUNK=4096, MASKED=False, num_warps=16)
    assert mod.launch_config(4096, 8192) == dict(BLOCK_M=2, CHUNK=4096, MASKED=False, num_warps=8)
    assert mod.launch_config(3, 5000)["MASKED"] and "CHUNK" in mod.launch_config(3, 5000)
    assert mod.launch_config(10, 200)["MASKED"] and mod.launch_config(3, 2048)["BLOCK_M"] == 2
    with pytest.raises(ValueError, match="weight shape"):
        mod.rms_norm(torch.zeros(2, 8), torch.zeros(4))
