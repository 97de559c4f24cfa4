# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "triton>=3.4", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 3600
# env = ["TRITON_FA_PATH", "TRITON_FA_WS", "TRITON_FA_CONFIG"]
# tags = { family = "triton", backend = "opbench-triton-fa", compile = "jit" }
# ///
"""triton_flash: this project's own flash-attention kernels, in Triton, run by the harness.

The forward kernel and its launch are in kernel.py, the per-shape variant rules and autotune table in
variants.py, the backward kernels and the autograd Function in kernel_bwd.py, all beside this script.
`attend` is differentiable: with q, k or v requiring grad, kernel.attention goes through
kernel_bwd.FlashAttnFn (the forward also stores the log-sum-exp; backward configs: kernel_bwd.BWD_CONFIGS);
without, it is the forward alone. The cache key hashes this impl's whole folder (every file in it), so editing either
module re-keys the benchmark; the tuning tools live outside it, in scripts/triton_flash/. Kernels are
JIT-compiled and autotuned on the first call of each shape (tags.compile = "jit", measured as compile_ms).

Knobs for a tuning session, recorded in tags.kernel: TRITON_FA_PATH=auto|desc|devdesc|ptr (auto, the default,
picks per shape: see variants.auto_variant), TRITON_FA_WS=0|1, TRITON_FA_CONFIG=BM,BN,warps,stages (one config,
no autotuning; with an explicit path only). They are listed in `[tool.orchestrator] env`, so their values enter
the cache key: a run with other knobs is another result, never a cached one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import opbench

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kernel_bwd  # noqa: E402, F401 - the backward attention() takes where an input requires grad
import variants  # noqa: E402 - the kernel's modules live beside this script
from kernel import attention, unsupported  # noqa: E402

SETTINGS = variants.settings() if __name__ == "__main__" else dict(variants.AUTO_SETTINGS)


def prepare(q, k, v, wl):
    """Refuse what the kernel does not support (an error record with the reason); contiguous inputs, untimed."""
    reason = unsupported(wl.batch, wl.seq_len, wl.seq_len, wl.heads, wl.kv_heads, wl.head_dim, wl.dtype)
    if reason:
        raise ValueError(f"unsupported by triton_flash: {reason}")
    return q.contiguous(), k.contiguous(), v.contiguous(), wl.causal


def attend(q, k, v, causal):
    auto = SETTINGS["path"] == variants.AUTO
    return attention(q, k, v, causal, **(variants.auto_variant(q.shape[1], q.shape[3], causal) if auto else SETTINGS))


def check():
    """Skip without triton or where the chosen path cannot compile and run (a tiny fixed-config call tells)."""
    torch = opbench.require("torch")
    opbench.require("triton")
    x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
    path = variants.PLAIN_VARIANT["path"] if SETTINGS["path"] == variants.AUTO else SETTINGS["path"]

    def tiny():
        attention(x, x, x, True, **{**SETTINGS, "path": path, "config": variants.PROBE_CONFIG})
        torch.cuda.synchronize()

    opbench.probe(tiny, f"the Triton kernel ({path} path) cannot run here")


if __name__ == "__main__":
    SETTINGS.update(variants.for_device(SETTINGS))
    tags = {"kernel": variants.describe(SETTINGS)}
    raise SystemExit(opbench.run(attend, prepare=prepare, check=check, tags=tags))
