# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "flash-attn-4[cu13]==4.0.0b36", "torch>=2.8", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# optional = ["nvidia-cutlass-dsl-libs-cu12"]  # the CUDA 12 build of the CuTe DSL libs; CUDA 13 hosts load libs-cu13
# timeout = 1800
# tags = { family = "flash-attn", backend = "flash-attn-4-cute", compile = "jit" }
# ///
"""FlashAttention-4 (`flash-attn-4`, CuTe DSL): `from flash_attn.cute import flash_attn_func`.

Kernels are JIT-compiled by the CuTe DSL on the first call of each configuration (tags.compile = "jit",
measured as compile_ms). Canonical (B, S, H, D) layout and native GQA; it returns (out, lse), and the
tuple is unpacked in the timed call (free). Supported on Hopper (SM90) and Blackwell; fp16/bf16 only.
"""

import opbench


def attend(q, k, v, causal):
    from flash_attn.cute import flash_attn_func

    return flash_attn_func(q, k, v, causal=causal)[0]


def check():
    torch = opbench.require("torch")
    opbench.require("flash_attn.cute")
    x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
    opbench.probe(lambda: attend(x, x, x, False), "flash-attn-4 cannot run here")


if __name__ == "__main__":
    raise SystemExit(opbench.run(attend, check=check))
