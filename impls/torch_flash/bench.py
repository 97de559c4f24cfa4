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
# tags = { family = "torch-sdpa", backend = "FLASH_ATTENTION", compile = "none" }
# ///
"""torch SDPA held to its FLASH_ATTENTION backend (FlashAttention-2 on CUDA; SDPA's own flash kernel on the CPU)."""

from opbench import sdpa

if __name__ == "__main__":
    raise SystemExit(sdpa.run_backend("FLASH_ATTENTION", requires_cuda=False))
