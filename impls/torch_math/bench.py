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
# timeout = 1800
# tags = { family = "torch-sdpa", backend = "MATH", compile = "none" }
# ///
"""torch SDPA held to its MATH backend: plain PyTorch ops, the baseline every kernel is compared with."""

import attnbench


def to_bhsd(q, k, v, wl):
    """SDPA's native (B, H, S, D) layout, made contiguous outside the timed region."""
    return q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous(), wl.causal


def attend(q, k, v, causal):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=q.shape[1] != k.shape[1])
    return out.transpose(1, 2)  # a view back to (B, S, H, D); no copy in the timed call


if __name__ == "__main__":
    raise SystemExit(attnbench.run(attend, prepare=to_bhsd, requires_cuda=False))
