# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "flash-attn", backend = "flash-attn-2", compile = "none" }
# ///
"""FlashAttention-2 from the `flash-attn` package (flash_attn_func, canonical (B, S, H, D) layout, native GQA).

`flash-attn` is deliberately not in `dependencies`: PyPI has only its source distribution, whose build
needs the CUDA toolkit and the env's torch at build time (uv's isolated build cannot do it), so listing
it would stop the env from being built at all. It runs in host mode over an interpreter that already has a
flash-attn build matching its torch (`python -m orchestrator run flash_attn2 --python /path/to/python`, where
that Python's site-packages holds flash-attn); otherwise it is skipped with the import error as the reason.
Never install into an orchestrator env by hand: envs are shared by every impl with the same pins.
"""

import opbench


def attend(q, k, v, causal):
    from flash_attn import flash_attn_func

    return flash_attn_func(q, k, v, causal=causal)


def check():
    torch = opbench.require("torch")
    opbench.require("flash_attn")
    x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
    opbench.probe(lambda: attend(x, x, x, False), "flash-attn cannot run here")


if __name__ == "__main__":
    raise SystemExit(opbench.run(attend, check=check))
