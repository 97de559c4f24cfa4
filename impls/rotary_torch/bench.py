# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "rotary"
# gpu = true
# requires = []
# timeout = 1800
# tags = { family = "torch-eager", backend = "aten", compile = "none" }
# ///
"""rotary in torch eager, the way a model's own code calls it (opbench.eager.rotary)."""

from opbench import eager

if __name__ == "__main__":
    raise SystemExit(eager.run("rotary"))
