# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "quack-kernels[cu13]==0.6.5", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "rms_norm"
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# optional = ["nvidia-cutlass-dsl-libs-cu12"]  # the CUDA 12 build of the CuTe DSL libs; CUDA 13 hosts load libs-cu13
# tags = { family = "quack", backend = "cute-dsl", compile = "none" }
# ///
"""QuACK 0.6.5's RMSNorm (CuTe DSL, SM90+): `quack.rmsnorm(x, weight, eps=...)`, fp32 math, output in x's dtype.

Its first call per shape compiles and autotunes (counted in compile_ms, not in the timed reps).
"""

import opbench


def rms_norm(x, weight, eps):
    import quack

    return quack.rmsnorm(x, weight, eps=eps)


def check():
    torch = opbench.require("torch")
    opbench.require("quack")
    major, _ = torch.cuda.get_device_capability()
    if major < 9:
        raise opbench.Skip(f"QuACK needs SM90 or newer; this GPU is SM{major}x")


if __name__ == "__main__":
    raise SystemExit(opbench.run(rms_norm, op="rms_norm", check=check, packages=("quack-kernels", "nvidia-cutlass-dsl")))
