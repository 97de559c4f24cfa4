# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "kernels==0.17.2", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "layer_norm"
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "hf-kernels", backend = "layer-norm", compile = "none" }
# ///
"""layer_norm from the Hugging Face Hub's kernels-community/layer-norm (`kernels.get_kernel`, pinned in hub.toml; see opbench.hub)."""

from pathlib import Path

from opbench import hub

if __name__ == "__main__":
    raise SystemExit(hub.run_hub_op(Path(__file__).with_name("hub.toml"), "layer_norm"))
