# /// script
# requires-python = ">=3.10"
# dependencies = ["attnbench-harness", "kernels==0.17.2", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# attnbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "hf-kernels", backend = "flash-attn-2", compile = "none", hub = "kernels-community/flash-attn2@v1" }
# ///
"""FlashAttention-2 as a prebuilt Hub kernel (`kernels-community/flash-attn2`).

The kernel comes from the Hugging Face Hub through `kernels.get_kernel("kernels-community/flash-attn2", version=1)`
(the v1 branch: a pinned major version of the kernel's API). Without the Hub (HF_HUB_OFFLINE set
with nothing cached, or no network) the impl is skipped with the loader's error as the reason.
Canonical (B, S, H, D) layout and native GQA.
"""

import functools
import os

import attnbench

REPO = "kernels-community/flash-attn2"
VERSION = 1


@functools.cache
def kernel():
    from kernels import get_kernel

    # Allow-list exactly the repository we name: otherwise kernels asks the Hub whether its publisher is
    # trusted, and offline that question, not the download, is what fails.
    return get_kernel(REPO, version=VERSION, trust_remote_code=[REPO])


def attend(q, k, v, causal):
    return kernel().flash_attn_func(q, k, v, causal=causal)


def output_only(out):
    """Some builds return (out, softmax_lse); the check wants the output."""
    return out[0] if isinstance(out, (tuple, list)) else out


def check():
    torch = attnbench.require("torch")
    attnbench.require("kernels")
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") else ""
    attnbench.probe(kernel, f"cannot load {REPO} v{VERSION} from the Hugging Face Hub{offline}")
    x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
    attnbench.probe(lambda: attend(x, x, x, False), f"{REPO} cannot run here")


if __name__ == "__main__":
    raise SystemExit(attnbench.run(attend, finish=output_only, check=check))
