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
# tags = { family = "torch-sdpa", backend = "FLASH_ATTENTION", compile = "none" }
# ///
"""torch SDPA held to its FLASH_ATTENTION backend (FlashAttention-2 on CUDA; SDPA's own flash kernel on the CPU)."""

import attnbench

BACKEND = "FLASH_ATTENTION"


def to_bhsd(q, k, v, wl):
    """SDPA's native (B, H, S, D) layout, made contiguous outside the timed region."""
    return q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous(), wl.causal


def attend(q, k, v, causal):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(getattr(SDPBackend, BACKEND)):  # this backend only: no silent fallback to another kernel
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=q.shape[1] != k.shape[1])
    return out.transpose(1, 2)  # a view back to (B, S, H, D); no copy in the timed call


def check():
    """Skip where SDPA has no FLASH_ATTENTION kernel for this device (a tiny call tells)."""
    torch = attnbench.require("torch")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    x = torch.randn(1, 2, 64, 64, device=device, dtype=dtype)
    attnbench.probe(lambda: attend(x, x, x, False), f"SDPA {BACKEND} is not available on {device}")


if __name__ == "__main__":
    raise SystemExit(attnbench.run(attend, prepare=to_bhsd, check=check, requires_cuda=False))
