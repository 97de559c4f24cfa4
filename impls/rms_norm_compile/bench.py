# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "rms_norm"
# gpu = true
# requires = []
# timeout = 3600
# tags = { family = "torch-compile", backend = "inductor", compile = "default" }
# ///
"""torch.compile(mode="default") of the eager rms_norm (opbench.eager.rms_norm): Inductor's generated Triton kernel.

Each workload compiles afresh (dynamo reset in `prepare`, static shapes), so `compile_ms` is its own compilation.
"""

from opbench import eager

if __name__ == "__main__":
    raise SystemExit(eager.run("rms_norm", compile_mode="default"))
