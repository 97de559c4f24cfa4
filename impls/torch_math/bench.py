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
# tags = { family = "torch-sdpa", backend = "MATH", compile = "none" }
# ///
"""torch SDPA held to its MATH backend: plain PyTorch ops, the baseline every kernel is compared with."""

from opbench import sdpa

if __name__ == "__main__":
    raise SystemExit(sdpa.run_backend("MATH", requires_cuda=False, probe=False))
