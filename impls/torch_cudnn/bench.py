# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "torch-sdpa", backend = "CUDNN_ATTENTION", compile = "none" }
# ///
"""torch SDPA held to its CUDNN_ATTENTION backend (cuDNN's fused attention; CUDA only)."""

from opbench import sdpa

if __name__ == "__main__":
    raise SystemExit(sdpa.run_backend("CUDNN_ATTENTION", requires_cuda=True))
