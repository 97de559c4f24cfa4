"""Synthetic upstream artifacts for the combine-stage tests: 14 attention impls on the seed suite (FLUX shapes),
some skipped, one failed, one wrong, one with an error on one workload, plus helpers to run the stage.

Everything is written by the real writers: records are the harness's `Record`s (statistics from its
`summarize`) written by its `ResultsWriter`, and entries are committed by the orchestrator's `Store` with a
`Manifest` whose `files` come from `hash_outputs`, exactly as a job's outputs are."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "shared"))

from opbench.accuracy import Accuracy  # noqa: E402
from opbench.output import ResultsWriter  # noqa: E402
from opbench.record import Env, Record  # noqa: E402
from opbench.stats import summarize  # noqa: E402
from opbench.suite import Workload  # noqa: E402,F401 - re-exported to the other combine tests
from orchestrator.model.device import Device  # noqa: E402
from orchestrator.cache.outputs import hash_outputs  # noqa: E402
from orchestrator.cache.store import Manifest, Store  # noqa: E402

COMBINE = REPO / "orchestrator" / "stages" / "combine.py"
STARTED = 1748772000.25  # 2025-06-01T10:00:00Z
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


def flops(seq: int, heads: int = 24, dim: int = 128) -> float:
    return 4.0 * 1 * heads * seq * seq * dim


def latency(p50: float, rng: random.Random, n: int = 60, sigma: float = 0.025):
    """The harness's statistics of n lognormal reps around p50."""
    return summarize([p50 * rng.lognormvariate(0, sigma) for _ in range(n)], "graph")


def wl(name: str, seq: int, heads: int = 24, dim: int = 128) -> Workload:
    return Workload.attention(name, 1, seq, heads, heads, dim, "bfloat16", False)


def env(name: str) -> Env:
    pkgs = {"torch": "2.8.0+cu128", "triton": "3.4.0"}
    extra = {"flash_attn2": ("flash-attn", "2.8.3"), "sage_attention": ("sageattention", "2.2.0"),
             "hf_kernels_flash_attn": ("kernels", "0.10.1"), "hf_kernels_flash_attn3": ("kernels", "0.10.1")}
    if name in extra:
        pkgs[extra[name][0]] = extra[name][1]
    return Env(DEVICE, "9.0", "570.124.06", "12.8", "2.8.0+cu128", "3.11.9", pkgs)


def measured(name: str, w: Workload, p50: float, rng: random.Random, tags: dict | None = None, wrong: bool = False,
             sigma: float = 0.025, environment: Env | None = None) -> Record:
    """One ok record as the harness writes it: latency stats, TFLOP/s from the median, an accuracy verdict."""
    lat = latency(p50, rng, sigma=sigma)
    tflops = w.flops / (lat.p50 * 1e-3) / 1e12
    err = Accuracy(0.31, 0.094, 0.02, False, True) if wrong else Accuracy(0.0039, 0.0021, 0.02, True, True)
    return Record(name, w, "ok", tags or {}, environment or env(name), lat_ms=lat,
                  compile_ms=round(900 * rng.random(), 1), peak_bytes=95_000_000 + w.seq_len * 9000,
                  tflops=tflops, pct_peak=tflops / PEAK * 100, ok=not wrong, err=err)


def records(name: str, rng: random.Random, workloads=None) -> list[Record]:
    family, backend, compile_, rate = IMPLS[name]
    tags = {"family": family, "backend": backend, "compile": compile_}
    out = []
    ws = [wl(n, s) for n, s in WORKLOADS] if workloads is None else workloads
    for i, w in enumerate(ws):
        if isinstance(rate, tuple):
            out.append(Record(name, w, "skipped", tags, env(name), reason=rate[1]))
            continue
        if name == PARTIAL and i == len(ws) - 1:
            out.append(Record(name, w, "error", tags, env(name),
                              reason="torch.OutOfMemoryError: CUDA out of memory (autotune)"))
            continue
        tf = rate * (0.86 + 0.14 * i / max(len(ws) - 1, 1))  # small shapes run a little below the best rate
        out.append(measured(name, w, w.flops / (tf * 1e12) * 1e3, rng, tags, wrong=name == WRONG))
    return out


def commit(root: Path, name: str, records_: list[Record] = (), status: str = "ok", reason: str = "",
           lines: list[str] | None = None, packages: list[str] | None = None, extra_files: dict | None = None,
           started: float = STARTED) -> Path:
    """Commit one job's outputs under the store `root` the way the orchestrator does; returns the entry folder.
    `lines` replaces the writer's output with raw text lines (damaged results); `extra_files` adds outputs."""
    key = hashlib.sha256(f"{name}|{started}".encode()).hexdigest()
    store = Store(root)
    staging = store.new_staging(name, key)
    out, logs = staging / "out", staging / "logs"
    if lines is not None:
        (out / "results.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    elif records_:
        with ResultsWriter(out) as writer:
            for r in records_:
                writer.write(r)
    for rel, data in (extra_files or {}).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    (logs / "stdout.log").write_text(f"{name}: done\n")
    (logs / "stderr.log").write_text("")
    device = Device((DEVICE,), "570.124.06", "Intel(R) Xeon(R) Platinum 8480+")
    manifest = Manifest(
        name=name, key=key, inputs={"name": name, "workloads": {"name": "seed", "sha256": "0" * 64}},
        status=status, reason=reason, started=started, finished=started + 90.5, returncode=0,
        files=hash_outputs(out, logs),
        packages=["numpy==2.3.1", "torch==2.8.0+cu128", "triton==3.4.0", "nvidia-cudnn-cu12==9.10.2.21"]
        if packages is None else packages,
        device=device.to_json(),
        reproduce=f'out="$(mktemp -d)" && cd "$out" && env ORCH_OUT="$out" ORCH_IMPL={name} '
                  f"/envs/{name}/bin/python /repo/impls/{name}/bench.py",
        runner={"host": "gpu-node-1", "executor": "local"})
    return store.commit(staging, manifest)


def upstream(entry: Path | None, status: str = "ok", reason: str = "", tags: dict | None = None, log_tail: str = "",
             cached: bool = False) -> dict:
    """One upstream as the scheduler describes it to a stage (orchestrator.run.stage.upstreams_doc)."""
    key = entry.name if entry is not None else None
    return {"status": status, "reason": reason, "key": key, "cached": cached,
            "entry": str(entry) if entry is not None else None, "tags": tags or {}, "log_tail": log_tail}


def write_upstreams(root: Path, doc: dict) -> Path:
    path = root / "upstreams.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    return path


def make_run(root: Path, impls=None, garbage: bool = False, seed: int = 1, workloads=None) -> Path:
    """Upstream artifact folders under root and the ORCH_UPSTREAMS file describing them; returns that file."""
    rng = random.Random(seed)
    doc = {}
    for name in sorted(impls or IMPLS):
        rate = IMPLS[name][3]
        tags = {"family": IMPLS[name][0], "backend": IMPLS[name][1]}
        if isinstance(rate, tuple) and rate[0] == "failed":
            doc[name] = upstream(None, "failed", rate[1], {"family": IMPLS[name][0]}, LOG_TAIL)
            doc[name]["key"] = hashlib.sha256(name.encode()).hexdigest()
            continue
        status, reason = ("skipped", rate[1]) if isinstance(rate, tuple) else ("ok", "")
        recs = records(name, rng, workloads)
        lines = None
        if garbage and name == "torch_flash":
            lines = [r.to_line() for r in recs]
            lines.insert(2, "{not json")
            lines.insert(4, "[1, 2, 3]")
            bad = recs[0].to_json()
            bad["lat_ms"]["p50"] = "fast"
            lines.append(json.dumps(bad))
        closure = sorted({**env(name).packages, "numpy": "2.3.1", "nvidia-cudnn-cu12": "9.10.2.21"}.items())
        entry = commit(root, name, recs, status, reason, lines=lines, packages=[f"{k}=={v}" for k, v in closure])
        doc[name] = upstream(entry, status, reason, tags, cached=name < "m")
    return write_upstreams(root, doc)


def run_combine(upstreams: Path, out: Path, baseline: str | None = None) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    env_vars = {k: v for k, v in os.environ.items() if k != "ORCH_BASELINE"}
    # the stage's env holds the harness (its record schema); here it is this checkout's shared/
    path = os.pathsep.join(filter(None, [str(REPO / "shared"), os.environ.get("PYTHONPATH")]))
    env_vars.update({"ORCH_OUT": str(out), "ORCH_UPSTREAMS": str(upstreams), "PYTHONPATH": path})
    if baseline:
        env_vars["ORCH_BASELINE"] = baseline
    return subprocess.run([sys.executable, str(COMBINE)], cwd=out, env=env_vars, capture_output=True, text=True,
                          timeout=120)
