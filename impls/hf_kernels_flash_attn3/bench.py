# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "kernels==0.17.2", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "hf-kernels", backend = "flash-attn-3", compile = "none" }
# ///
"""FlashAttention-3 (Hopper) as a prebuilt Hub kernel: `kernels.get_kernel` at the revision pinned in hub.toml beside this file (see opbench.hub)."""

from pathlib import Path

from opbench import hub

if __name__ == "__main__":
    raise SystemExit(hub.run_hub(Path(__file__).with_name("hub.toml")))
