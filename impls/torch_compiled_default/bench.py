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
# timeout = 3600
# tags = { family = "torch-compile", backend = "inductor", compile = "default", sdpa = "auto" }
# ///
"""torch.compile(mode="default") of SDPA, left to pick its kernel (tags.sdpa = "auto").

Each workload compiles afresh (dynamo reset in `prepare`, static shapes), so `compile_ms` is that
workload's own compilation and no workload runs on a kernel compiled for another shape.
"""

from opbench import sdpa

if __name__ == "__main__":
    raise SystemExit(sdpa.run_compiled("default"))
