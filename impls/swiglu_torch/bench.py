# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "swiglu"
# gpu = true
# requires = []
# timeout = 1800
# tags = { family = "torch-eager", backend = "aten", compile = "none" }
# ///
"""swiglu in torch eager, the way a model's own code calls it (opbench.eager.swiglu)."""

from opbench import eager

if __name__ == "__main__":
    raise SystemExit(eager.run("swiglu"))
