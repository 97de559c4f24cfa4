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
# timeout = 3600
# tags = { family = "torch-compile", backend = "inductor", compile = "default" }
# ///
"""torch.compile(mode="default") of the eager layer_norm (opbench.eager.layer_norm): Inductor's generated Triton kernel.

Each workload compiles afresh (dynamo reset in `prepare`, static shapes), so `compile_ms` is its own compilation.
"""

from opbench import eager

if __name__ == "__main__":
    raise SystemExit(eager.run("layer_norm", compile_mode="default"))
