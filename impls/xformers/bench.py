# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "xformers==0.0.35", "torch==2.10.*", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "xformers", backend = "auto", compile = "none" }
# ///
"""xFormers memory_efficient_attention, letting xFormers dispatch to its best forward op (tags.backend = "auto").

xformers 0.0.35 is built for torch 2.10; against another torch it imports but has no operator, so a tiny
probe call decides whether it runs here at all. GQA uses xFormers' own 5-D (B, M, G, H, K) form, built
from views in `prepare`.
"""

import opbench


def prepare(q, k, v, wl):
    """Views into xFormers' (B, M, G, H, K) grouped layout; no copies."""
    b, s, h, d = q.shape
    g = k.shape[2]
    if g == h:
        return q, k, v, wl.causal
    q5 = q.view(b, s, g, h // g, d)
    k5, v5 = (t.view(b, s, g, 1, d).expand(b, s, g, h // g, d) for t in (k, v))
    return q5, k5, v5, wl.causal


def attend(q, k, v, causal):
    import xformers.ops as xops

    bias = xops.LowerTriangularMask() if causal else None
    return xops.memory_efficient_attention(q, k, v, attn_bias=bias)


def to_canonical(out):
    return out.flatten(2, 3) if out.dim() == 5 else out


def check():
    torch = opbench.require("torch")
    opbench.require("xformers.ops")
    x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
    opbench.probe(lambda: attend(x, x, x, False), "xformers cannot run here")


if __name__ == "__main__":
    raise SystemExit(opbench.run(attend, prepare=prepare, finish=to_canonical, check=check))
