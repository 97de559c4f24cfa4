# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = []
# timeout = 1800
# tags = { family = "torch-sdpa", backend = "EFFICIENT_ATTENTION", compile = "none" }
# ///
"""torch SDPA held to its EFFICIENT_ATTENTION backend (the memory-efficient CUTLASS kernel).

CUDA only in practice: where SDPA has no such kernel (the CPU), the probe in `check` skips the impl."""

from opbench import sdpa

if __name__ == "__main__":
    raise SystemExit(sdpa.run_backend("EFFICIENT_ATTENTION", requires_cuda=False))
