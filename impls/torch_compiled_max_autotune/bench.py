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
# tags = { family = "torch-compile", backend = "inductor", compile = "max-autotune-no-cudagraphs", sdpa = "auto" }
# ///
"""torch.compile(mode="max-autotune-no-cudagraphs") of SDPA, left to pick its kernel (tags.sdpa = "auto").

Inductor's max-autotune without its own CUDA graphs: the harness captures and replays the graph itself
(cudagraph trees would copy the inputs into static buffers on every call, timing a copy the kernel never
needs), so the kernels autotuned are the max-autotune ones and the timing method matches every other impl.
Each workload compiles afresh (dynamo reset in `prepare`, static shapes), so `compile_ms` is that
workload's own compilation and no workload runs on a kernel compiled for another shape.
"""

from opbench import sdpa

if __name__ == "__main__":
    raise SystemExit(sdpa.run_compiled("max-autotune-no-cudagraphs"))
