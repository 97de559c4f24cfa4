"""FlashAttention kernels prebuilt on the Hugging Face Hub, loaded with `kernels.get_kernel`: the hf-kernels impls
are this module plus a repository and its pinned major version.

Without the Hub (HF_HUB_OFFLINE set with nothing cached, or no network) the impl is skipped with the loader's
error as the reason. Canonical (B, S, H, D) layout and native GQA.
"""

from __future__ import annotations

import functools
import os


def run_hub(repo: str, version: int) -> int:
    import attnbench

    @functools.cache
    def kernel():
        from kernels import get_kernel

        # Allow-list exactly the repository we name: otherwise kernels asks the Hub whether its publisher is
        # trusted, and offline that question, not the download, is what fails.
        return get_kernel(repo, version=version, trust_remote_code=[repo])

    def attend(q, k, v, causal):
        return kernel().flash_attn_func(q, k, v, causal=causal)

    def output_only(out):
        """Some builds return (out, softmax_lse); the check wants the output."""
        return out[0] if isinstance(out, (tuple, list)) else out

    def check():
        torch = attnbench.require("torch")
        attnbench.require("kernels")
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") else ""
        attnbench.probe(kernel, f"cannot load {repo} v{version} from the Hugging Face Hub{offline}")
        x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
        attnbench.probe(lambda: attend(x, x, x, False), f"{repo} cannot run here")

    return attnbench.run(attend, finish=output_only, check=check)
