# /// script
# requires-python = ">=3.10"
# dependencies = ["attnbench-harness", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# attnbench-harness = { path = "../../shared", editable = true }
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

import attnbench

MODE = "max-autotune-no-cudagraphs"


def sdpa(q, k, v, causal: bool):
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=q.shape[1] != k.shape[1])


def prepare(q, k, v, wl):
    """A fresh compiled function for this workload, and SDPA's (B, H, S, D) layout; none of this is timed."""
    import torch

    torch._dynamo.reset()
    compiled = torch.compile(sdpa, mode=MODE, dynamic=False, fullgraph=True)
    bhsd = [t.transpose(1, 2).contiguous() for t in (q, k, v)]
    return (compiled, *bhsd, wl.causal)


def attend(compiled, q, k, v, causal):
    return compiled(q, k, v, causal).transpose(1, 2)


if __name__ == "__main__":
    raise SystemExit(attnbench.run(attend, prepare=prepare, requires_cuda=False))
