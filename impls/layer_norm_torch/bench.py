# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "layer_norm"
# gpu = true
# requires = []
# timeout = 1800
# tags = { family = "torch-eager", backend = "aten", compile = "none" }
# ///
"""layer_norm in torch eager, the way a model's own code calls it (opbench.eager.layer_norm)."""

from opbench import eager

if __name__ == "__main__":
    raise SystemExit(eager.run("layer_norm"))
