"""Synthetic upstream artifacts for the combine-stage tests: 14 attention impls on the seed suite (FLUX shapes),
some skipped, one failed, one wrong, one with an error on one workload, plus helpers to run the stage."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

COMBINE = Path(__file__).resolve().parents[1] / "orchestrator" / "stages" / "combine.py"
DEVICE = "NVIDIA H100 80GB HBM3"
PEAK = 752.0
WORKLOADS = [("flux_L128", 1152), ("flux_L256", 1280), ("flux_L320", 1344), ("flux_L384", 1408),
             ("flux_L448", 1472), ("flux_L512", 1536)]
# name -> (family, backend, compile, TFLOP/s at the largest shape or a status, reason)
IMPLS = {
    "flash_attn2": ("flash-attn", "flash-attn-2", "none", 360.0),
    "flash_attn4": ("flash-attn", "flash-attn-4-cute", "jit",
                    ("skipped", "flash-attn-4 (CuTe DSL) needs compute capability 10.0; this GPU has 9.0")),
    "flex_attention": ("flex-attention", "inductor", "default", 300.0),
    "hf_kernels_flash_attn": ("hf-kernels", "flash-attn-2", "none", 355.0),
    "hf_kernels_flash_attn3": ("hf-kernels", "flash-attn-3", "none", 540.0),
    "jax_cudnn": ("jax", "cudnn", "jit", ("failed", "exit status 1 after 14.2s")),
    "sage_attention": ("sageattention", "triton", "none", 640.0),
    "torch_compiled_default": ("torch-compile", "inductor", "default", 335.0),
    "torch_compiled_max_autotune": ("torch-compile", "inductor", "max-autotune-no-cudagraphs", 345.0),
    "torch_cudnn": ("torch-sdpa", "CUDNN_ATTENTION", "none", 500.0),
    "torch_flash": ("torch-sdpa", "FLASH_ATTENTION", "none", 340.0),
    "torch_math": ("torch-sdpa", "MATH", "none", 2.4),
    "torch_mem_efficient": ("torch-sdpa", "EFFICIENT_ATTENTION", "none", 210.0),
    "xformers": ("xformers", "auto", "none", ("skipped", "no xformers wheel for torch 2.8.0+cu128 (needs torch<2.8)")),
}
WRONG = "sage_attention"
PARTIAL = "torch_compiled_max_autotune"  # errors on the largest workload
MEASURED = sorted(n for n, v in IMPLS.items() if not isinstance(v[3], tuple))
NOT_MEASURED = sorted(n for n, v in IMPLS.items() if isinstance(v[3], tuple))
LOG_TAIL = ("Traceback (most recent call last):\n  File \"bench.py\", line 41, in <module>\n    import jax\n"
            "ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory\n")


def flops(seq: int) -> float:
    return 4.0 * 1 * 24 * seq * seq * 128


def _quantile(xs: list[float], q: float) -> float:
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency(p50: float, rng: random.Random, n: int = 60) -> dict:
    raw = [round(p50 * rng.lognormvariate(0, 0.025), 6) for _ in range(n)]
    xs = sorted(raw)
    mean = sum(xs) / n
    std = (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5
    return {"mean": round(mean, 6), "p10": round(_quantile(xs, 0.1), 6), "p50": round(_quantile(xs, 0.5), 6),
            "p90": round(_quantile(xs, 0.9), 6), "min": xs[0], "max": xs[-1], "std": round(std, 6), "reps": n,
            "raw": raw, "mode": "cuda_graph_l2flush"}


def wl(name: str, seq: int) -> dict:
    return {"name": name, "batch": 1, "seq_len": seq, "heads": 24, "kv_heads": 24, "head_dim": 128,
            "dtype": "bfloat16", "causal": False}


def env(name: str) -> dict:
    pkgs = {"torch": "2.8.0+cu128", "triton": "3.4.0"}
    extra = {"flash_attn2": ("flash-attn", "2.8.3"), "sage_attention": ("sageattention", "2.2.0"),
             "hf_kernels_flash_attn": ("kernels", "0.10.1"), "hf_kernels_flash_attn3": ("kernels", "0.10.1")}
    if name in extra:
        pkgs[extra[name][0]] = extra[name][1]
    return {"device": DEVICE, "sm": "9.0", "driver": "570.124.06", "cuda": "12.8", "torch": "2.8.0+cu128",
            "python": "3.11.9", "packages": pkgs}


def records(name: str, rng: random.Random) -> list[dict]:
    family, backend, compile_, rate = IMPLS[name]
    tags = {"family": family, "backend": backend, "compile": compile_}
    out = []
    for i, (wname, seq) in enumerate(WORKLOADS):
        base = {"impl": name, "wl": wl(wname, seq), "tags": tags, "env": env(name)}
        if isinstance(rate, tuple):
            out.append({**base, "status": "skipped", "reason": rate[1]})
            continue
        if name == PARTIAL and i == len(WORKLOADS) - 1:
            out.append({**base, "status": "error", "reason": "torch.OutOfMemoryError: CUDA out of memory (autotune)"})
            continue
        tf = rate * (0.86 + 0.14 * i / (len(WORKLOADS) - 1))  # small shapes run a little below the best rate
        lat = latency(flops(seq) / (tf * 1e12) * 1e3, rng)
        tflops = flops(seq) / (lat["p50"] * 1e-3) / 1e12
        wrong = name == WRONG
        out.append({**base, "lat_ms": lat, "compile_ms": round(900 * rng.random(), 1), "peak_bytes": 95_000_000 + seq * 9000,
                    "tflops": round(tflops, 2), "pct_peak": round(tflops / PEAK * 100, 2), "ok": not wrong,
                    "err": {"max_abs": 0.31 if wrong else 0.0039, "rel_l2": 0.094 if wrong else 0.0021, "tol": 0.02},
                    "status": "ok", "reason": None})
    return out


def manifest(name: str, status: str, reason: str) -> dict:
    return {"name": name, "key": hashlib.sha256(name.encode()).hexdigest(), "status": status, "reason": reason,
            "started": "2025-06-01T10:00:00", "finished": "2025-06-01T10:01:30",
            "packages": ["numpy==2.3.1", "torch==2.8.0+cu128", "triton==3.4.0", "nvidia-cudnn-cu12==9.10.2.21"],
            "device": {"gpus": [{"name": DEVICE, "memory_mib": 81559}], "driver": "570.124.06",
                       "cpu": "Intel(R) Xeon(R) Platinum 8480+", "fingerprint": "abc123"},
            "reproduce": f'out="$(mktemp -d)" && cd "$out" && env ORCH_OUT="$out" ORCH_IMPL={name} '
                         f"/envs/{name}/bin/python /repo/impls/{name}/bench.py",
            "runner": {"host": "gpu-node-1"}}


def make_run(root: Path, impls=None, garbage: bool = False, seed: int = 1) -> Path:
    """Upstream artifact folders under root and the ORCH_UPSTREAMS file describing them; returns that file."""
    rng = random.Random(seed)
    doc = {}
    for name in sorted(impls or IMPLS):
        rate = IMPLS[name][3]
        key = hashlib.sha256(name.encode()).hexdigest()
        if isinstance(rate, tuple) and rate[0] == "failed":
            doc[name] = {"status": "failed", "reason": rate[1], "key": key, "cached": False, "entry": None,
                         "tags": {"family": IMPLS[name][0]}, "log_tail": LOG_TAIL}
            continue
        status, reason = ("skipped", rate[1]) if isinstance(rate, tuple) else ("ok", "")
        entry = root / name / key[:16]
        entry.mkdir(parents=True)
        lines = [json.dumps(r) for r in records(name, rng)]
        if garbage and name == "torch_flash":
            lines.insert(2, "{not json")
            lines.insert(4, "[1, 2, 3]")
            lines.append(json.dumps({"impl": name, "wl": {"name": "flux_L128"}, "lat_ms": {"p50": "fast"}}))
        (entry / "results.jsonl").write_text("\n".join(lines) + "\n")
        (entry / "manifest.json").write_text(json.dumps(manifest(name, status, reason)))
        doc[name] = {"status": status, "reason": reason, "key": key, "cached": name < "m", "entry": str(entry),
                     "tags": {"family": IMPLS[name][0], "backend": IMPLS[name][1]}, "log_tail": ""}
    path = root / "upstreams.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    return path


def run_combine(upstreams: Path, out: Path, baseline: str | None = None) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    env_vars = {k: v for k, v in os.environ.items() if k != "ORCH_BASELINE"}
    env_vars.update({"ORCH_OUT": str(out), "ORCH_UPSTREAMS": str(upstreams)})
    if baseline:
        env_vars["ORCH_BASELINE"] = baseline
    return subprocess.run([sys.executable, str(COMBINE)], cwd=out, env=env_vars, capture_output=True, text=True,
                          timeout=120)


def test_synthetic_run_is_reproducible(tmp_path):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    first = (a.parent / "torch_flash").rglob("results.jsonl")
    second = (b.parent / "torch_flash").rglob("results.jsonl")
    assert [p.read_text() for p in first] == [p.read_text() for p in second]
