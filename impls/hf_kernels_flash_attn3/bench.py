# /// script
# requires-python = ">=3.10"
# dependencies = ["attnbench-harness", "kernels==0.17.2", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# attnbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "hf-kernels", backend = "flash-attn-3", compile = "none", hub = "kernels-community/flash-attn3@v1" }
# ///
"""FlashAttention-3 (Hopper) as a prebuilt Hub kernel: `kernels.get_kernel("kernels-community/flash-attn3", version=1)` (see attnbench.hub)."""

from attnbench import hub

if __name__ == "__main__":
    raise SystemExit(hub.run_hub("kernels-community/flash-attn3", version=1))
