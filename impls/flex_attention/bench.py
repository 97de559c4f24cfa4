# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "torch>=2.6", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = []
# timeout = 3600
# tags = { family = "flex-attention", backend = "inductor", compile = "default" }
# ///
"""torch FlexAttention, compiled (inductor's Triton template on CUDA, its C++ template on the CPU).

The causal block mask is built in `prepare`, once per workload, as a user of flex would; it is not timed.
Each workload gets a fresh compiled function (dynamo reset, static shapes) so compile_ms is its own.
"""

import opbench


def prepare(q, k, v, wl):
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    torch._dynamo.reset()
    compiled = torch.compile(flex_attention, dynamic=False)
    mask = None
    if wl.causal:
        mask = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, wl.seq_len, wl.seq_len, device=q.device)
    bhsd = [t.transpose(1, 2).contiguous() for t in (q, k, v)]
    return (compiled, *bhsd, mask)


def attend(compiled, q, k, v, mask):
    return compiled(q, k, v, block_mask=mask, enable_gqa=q.shape[1] != k.shape[1]).transpose(1, 2)


if __name__ == "__main__":
    raise SystemExit(opbench.run(attend, prepare=prepare, requires_cuda=False))
