"""impls/triton_flash: the project's Triton kernel, checked on the CPU with Triton's interpreter.

The kernels run in one child process with TRITON_INTERPRET=1 (read when triton is imported, so never in
this process), on tiny shapes, against a float64 reference computed from the same fp16/bf16 inputs.
Lengths like 70 leave ragged query and key blocks; batch 2 puts a sequence boundary inside the 2-D views
the host-descriptor path reads. bf16 runs too: the kernel's interpreter-only INTERP_BF16 switch stands in
for the interpreter's broken bf16 dot and truncating cast (see _attend_blocks in kernel.py).
The kernel and its variant rules live beside bench.py (kernel.py, variants.py); the tuning tools in
scripts/triton_flash/, outside the folder the cache key hashes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, job_variables

pytest.importorskip("triton")
pytest.importorskip("torch")

IMPL = REPO / "impls" / "triton_flash"
BENCH = IMPL / "bench.py"
TOOLS = REPO / "scripts" / "triton_flash"
# About twice what an exact kernel gives here (fp16 ~2.6e-4, bf16 ~2.1e-3); the harness allows 5e-3 / 1e-2.
TOL = {"float16": 1e-3, "bfloat16": 5e-3}
SMALL = (32, 16, 4, 1)  # BLOCK_M, BLOCK_N, warps, stages: several query and key blocks at S=70


def case(dtype, dim, causal, path, *, batch=2, seq=70, heads=4, kv_heads=2, config=SMALL, ws=False):
    name = f"{dtype}-d{dim}-{'causal' if causal else 'full'}-{path}{'+ws' if ws else ''}-b{batch}s{seq}h{heads}kv{kv_heads}"
    return dict(name=name, dtype=dtype, dim=dim, causal=causal, path=path, batch=batch, seq=seq, heads=heads,
                kv_heads=kv_heads, config=config, ws=ws)


CASES = [
    *(case(dt, d, c, p) for dt in ("float16", "bfloat16") for d in (64, 128) for c in (False, True)
      for p in ("ptr", "desc", "devdesc")),
    # The single-loop code that warp specialization compiles (the interpreter ignores the hint itself).
    *(case("bfloat16", 64, c, "devdesc", ws=True) for c in (False, True)),
    # head_dim 256, MHA, lengths that blocks divide (the EVEN_M / EVEN_N code), and a block larger than S.
    *(case("float16", 256, c, p, batch=1, seq=64, heads=2, kv_heads=2, config=(32, 32, 4, 1))
      for c in (False, True) for p in ("ptr", "desc")),
    case("bfloat16", 64, True, "desc", batch=1, seq=64, heads=2, kv_heads=1, config=(32, 32, 4, 1)),
    case("float16", 64, True, "ptr", batch=1, seq=20, heads=2, kv_heads=2, config=(64, 32, 4, 1)),
]

CHILD = r"""
import importlib.util, json, sys, time
import torch

spec = importlib.util.spec_from_file_location("triton_flash_bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

def reference(q, k, v, causal):
    group = q.shape[2] // k.shape[2]
    q, k, v = (t.double().transpose(1, 2) for t in (q, k, v))
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2)

out = {}
for c in json.load(sys.stdin):
    gen = torch.Generator().manual_seed(len(out))
    dtype = getattr(torch, c["dtype"])
    q = torch.randn(c["batch"], c["seq"], c["heads"], c["dim"], generator=gen).to(dtype)
    k, v = (torch.randn(c["batch"], c["seq"], c["kv_heads"], c["dim"], generator=gen).to(dtype) for _ in "kv")
    t0 = time.perf_counter()
    try:
        o = bench.attention(q, k, v, c["causal"], path=c["path"], warp_specialize=c["ws"], config=tuple(c["config"]))
    except Exception as exc:
        out[c["name"]] = {"error": f"{type(exc).__name__}: {exc}"}
        continue
    ref = reference(q, k, v, c["causal"])
    out[c["name"]] = {"shape": list(o.shape), "dtype": str(o.dtype).removeprefix("torch."),
                      "finite": bool(torch.isfinite(o).all()),
                      "rel_l2": float((o.double() - ref).norm() / ref.norm()), "s": time.perf_counter() - t0}
print(json.dumps(out))
"""


INCOMPATIBLE = ("this Triton's interpreter does not run with this NumPy (Triton <= 3.6 with NumPy >= 2.3: "
                "use triton>=3.7 or numpy<2.3)")


@pytest.fixture(scope="module")
def interpreted() -> dict:
    """Every case of CASES run once by the interpreter in a child process: name -> result."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO / "shared")}
    res = subprocess.run([sys.executable, "-c", CHILD, str(BENCH)], input=json.dumps(CASES), env=env,
                         capture_output=True, text=True, timeout=600)
    # Triton <= 3.6's interpreter calls int() on 1-element arrays, which NumPy >= 2.3 refuses: per case (caught
    # below as that case's error, as seen on the H200 image: triton 3.6.0, numpy 2.5.2) or for the whole child.
    incompatible = "only 0-dimensional arrays can be converted"
    if incompatible in res.stderr:
        pytest.skip(INCOMPATIBLE)
    assert res.returncode == 0, res.stderr[-4000:]
    results = json.loads(res.stdout.strip().splitlines()[-1])
    if any(incompatible in r.get("error", "") for r in results.values()):
        pytest.skip(INCOMPATIBLE)
    return results


@pytest.mark.parametrize("c", CASES, ids=[c["name"] for c in CASES])
def test_kernel_matches_float64_reference_in_interpreter(interpreted, c):
    r = interpreted[c["name"]]
    assert "error" not in r, r["error"]
    assert r["shape"] == [c["batch"], c["seq"], c["heads"], c["dim"]] and r["dtype"] == c["dtype"]
    assert r["finite"], r
    assert r["rel_l2"] <= TOL[c["dtype"]], r


@pytest.fixture(scope="module")
def bench():
    """bench.py as a module in this process (no kernel is launched here: triton is not interpreting)."""
    sys.path.insert(0, str(REPO / "shared"))
    try:
        spec = importlib.util.spec_from_file_location("triton_flash_bench_host", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "shared"))
    return module


@pytest.fixture(scope="module")
def kernel(bench):
    """kernel.py, as bench.py imported it."""
    return sys.modules[bench.attention.__module__]


@pytest.fixture(scope="module")
def variants(bench):
    return bench.variants


@pytest.mark.parametrize("shape, dtype, words", [
    ((1, 64, 2, 96), "float16", "head_dim 96 is not supported"),
    ((1, 64, 2, 64), "float32", "dtype float32 is not supported"),
])
def test_unsupported_shapes_are_refused_with_the_reason(bench, shape, dtype, words):
    import torch

    x = torch.zeros(shape, dtype=getattr(torch, dtype))
    assert words in bench.unsupported(shape[0], shape[1], shape[1], shape[2], shape[2], shape[3], dtype)
    with pytest.raises(ValueError, match=words):
        bench.attention(x, x, x, False, config=SMALL)


def test_other_unsupported_inputs_are_refused(bench):
    import torch

    q = torch.zeros(1, 64, 3, 64, dtype=torch.float16)
    kv = torch.zeros(1, 64, 2, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match="not a multiple of kv_heads"):
        bench.attention(q, kv, kv, False, config=SMALL)
    short = torch.zeros(1, 32, 3, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match="query length 64 != key length 32"):
        bench.attention(q, short, short, False, config=SMALL)
    with pytest.raises(ValueError, match="needs path 'devdesc'"):
        bench.attention(q, q, q, False, path="desc", warp_specialize=True, config=SMALL)
    assert bench.unsupported(1, 4096, 4096, 32, 8, 128, "bfloat16") is None


def test_prepare_turns_an_unsupported_workload_into_an_error_with_the_reason(bench):
    from opbench.suite import Workload  # importable: the bench fixture loaded opbench from shared/

    wl = Workload.attention("d96", 1, 64, 2, 2, 96, "bfloat16", False)
    with pytest.raises(ValueError, match="unsupported by triton_flash: head_dim 96"):
        bench.prepare(None, None, None, wl)


def test_every_head_dim_keeps_autotune_configs_within_shared_memory(kernel, variants):
    import triton

    configs = [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
               for bm, bn, w, s in sorted({c for cs in variants.CONFIGS.values() for c in cs})]
    for dim in kernel.HEAD_DIMS:
        kept = variants.prune_configs(configs, {}, HEAD_DIM=dim)
        assert len(kept) == len(variants.CONFIGS[dim]), dim  # none is over the budget: the table is honest
        for c in kept:
            bm, bn = c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]
            assert bm % bn == 0 and variants.smem_bytes(bm, bn, c.num_stages, dim) <= variants.SMEM_BUDGET


def test_bench_skips_cleanly_without_cuda(tmp_path):
    env = {**os.environ, **job_variables(BENCH), "ORCH_OUT": str(tmp_path), "ORCH_WORKLOADS": "smoke",
           "PYTHONPATH": str(REPO / "shared"),
           "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, str(BENCH)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 77, res.stderr[-2000:]
    assert "CUDA" in (tmp_path / "skipped.txt").read_text()
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert records and {r["status"] for r in records} == {"skipped"}
    assert records[0]["tags"]["family"] == "triton" and records[0]["tags"]["backend"] == "opbench-triton-fa"


@pytest.mark.parametrize("seq, dim, causal, ws", [
    (4096, 128, False, True), (8192, 128, False, True),  # measured correct and fastest with WS on the H100
    (4416, 128, False, False),  # a masked last key block: WS gave wrong answers with masks
    (4096, 128, True, False), (4096, 64, False, False), (4096, 256, False, False),
])
def test_auto_uses_warp_specialization_only_where_it_was_measured_correct(variants, seq, dim, causal, ws):
    variant = variants.auto_variant(seq, dim, causal)
    assert variant["warp_specialize"] is ws
    assert variant["path"] == ("devdesc" if ws else "desc")


def test_tuning_tools_live_outside_the_job_folder_and_bench_stays_thin():
    """The cache key hashes the impl's whole folder: a tool in it would re-key the benchmark when edited."""
    for tool in ("compile_check.py", "tune.py"):
        assert not (IMPL / tool).exists(), tool
        assert (TOOLS / tool).is_file(), tool
    text = BENCH.read_text()
    assert len(text.splitlines()) < 80 and "@triton.jit" not in text
    assert "@triton.jit" in (IMPL / "kernel.py").read_text()


def test_tuning_tools_find_the_kernel_and_print_help_without_a_gpu():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    for tool in ("compile_check.py", "tune.py"):
        res = subprocess.run([sys.executable, str(TOOLS / tool), "--help"], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0 and "usage:" in res.stdout, res.stderr[-2000:]
    code = "import compile_check; k = compile_check.load_kernel(); print(k.__file__, len(k.variants.CONFIGS))"
    res = subprocess.run([sys.executable, "-c", code], cwd=TOOLS, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    path, tables = res.stdout.split()
    assert path == str(IMPL / "kernel.py") and int(tables) == 3


def _key(impls, tmp_path) -> dict:
    """The orchestrator's key for triton_flash in this impls folder, and the inputs it was made from."""
    res = subprocess.run([sys.executable, "-m", "orchestrator", "show", "triton_flash", "--impls-dir", str(impls),
                          "--artifacts", str(tmp_path / "artifacts"), "--envs-dir", str(tmp_path / "envs")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    key = next(line.split()[1] for line in res.stdout.splitlines() if line.startswith("key "))
    inputs = json.loads(res.stdout.split("key inputs:\n", 1)[1].split("\nmanifest:", 1)[0])
    return {"key": key, **inputs}


def test_every_python_file_in_the_job_folder_is_a_module_bench_imports():
    """The key hashes the folder whole, so what is in it should be what the benchmark runs: no tools."""
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('b', sys.argv[1]); "
            "s.loader.exec_module(importlib.util.module_from_spec(s)); "
            "print('\\n'.join(getattr(m, '__file__', None) or '' for m in list(sys.modules.values())))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared"), "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-c", code, str(BENCH)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    imported = {Path(f).name for f in res.stdout.split() if Path(f).parent == IMPL}
    assert {p.name for p in IMPL.glob("*.py")} - {"bench.py"} == imported == {"kernel.py", "kernel_bwd.py", "variants.py"}


@pytest.mark.parametrize("module", ["kernel.py", "kernel_bwd.py", "variants.py"])
def test_editing_a_kernel_module_rekeys_the_benchmark(tmp_path, module):
    import shutil

    impls = tmp_path / "impls"
    shutil.copytree(IMPL, impls / "triton_flash", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "shared").symlink_to(REPO / "shared")  # bench.py's path dependency, ../../shared
    before = _key(impls, tmp_path)
    assert (impls / "triton_flash" / module).is_file()
    with open(impls / "triton_flash" / module, "a") as f:
        f.write("# an edit\n")
    after = _key(impls, tmp_path)
    assert after["script_sha256"] == before["script_sha256"]  # bench.py itself is unchanged
    assert after["folder_sha256"] != before["folder_sha256"] and after["key"] != before["key"]


def test_tuning_knobs_are_recorded_in_the_kernel_tag(tmp_path):
    env = {**os.environ, **job_variables(BENCH), "ORCH_OUT": str(tmp_path), "ORCH_WORKLOADS": "smoke",
           "PYTHONPATH": str(REPO / "shared"),
           "CUDA_VISIBLE_DEVICES": "", "TRITON_FA_PATH": "devdesc", "TRITON_FA_WS": "1",
           "TRITON_FA_CONFIG": "128,128,4,2"}
    res = subprocess.run([sys.executable, str(BENCH)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 77, res.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["tags"]["kernel"] for r in records} == {"devdesc+ws@128,128,4,2"}
