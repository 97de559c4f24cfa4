"""FlashAttention kernels prebuilt on the Hugging Face Hub, loaded with `kernels.get_kernel`: the hf-kernels impls
are this module plus a `hub.toml` beside their bench.py naming the repository and the revision to load.

`hub.toml` holds `repo` and either `revision` (a 40-hex commit: an exact pin) or `version` (a major-version branch,
which moves: the record says so). The file sits in the impl's folder, so it is part of the cache key, and its
contents go into the record's tags (`hub`, `hub_pinned`).

Without the Hub (HF_HUB_OFFLINE set with nothing cached, or no network) the impl is skipped with the loader's
error as the reason. Canonical (B, S, H, D) layout and native GQA.

Backward: the FlashAttention repos' flash_attn_func is FlashAttention's autograd Function (its mha_bwd), so the
attention impls run the bwd and fwd_bwd modes; the memory-bound ops' kernels are called through forward-only ops
(NO_BACKWARD says which), so those impls are skipped in the backward modes with that reason.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def read_pin(path: Path) -> tuple[str, dict, str]:
    """(repo, get_kernel's revision/version argument, tag text) from hub.toml; a bad file is a HarnessError."""
    from opbench.errors import HarnessError

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(f"{path}: cannot read the Hub pin: {exc}") from None
    repo, revision, version = doc.get("repo"), doc.get("revision"), doc.get("version")
    if not isinstance(repo, str) or "/" not in repo:
        raise HarnessError(f"{path}: repo: expected 'owner/name', got {repo!r}")
    if revision is not None:
        if not isinstance(revision, str) or not COMMIT.match(revision):
            raise HarnessError(f"{path}: revision: expected a 40-hex commit, got {revision!r}")
        return repo, {"revision": revision}, f"{repo}@{revision}"
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise HarnessError(f"{path}: give revision (a commit) or version (a major version), got {doc!r}")
    return repo, {"version": version}, f"{repo}@v{version}"


def run_hub(pin_file: Path) -> int:
    import opbench
    from opbench.errors import HarnessError

    try:
        repo, which, text = read_pin(Path(pin_file))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tags = {"hub": text, "hub_pinned": "revision" in which}

    @functools.cache
    def kernel():
        from kernels import get_kernel

        # Allow-list exactly the repository we name: otherwise kernels asks the Hub whether its publisher is
        # trusted, and offline that question, not the download, is what fails.
        return get_kernel(repo, **which, trust_remote_code=[repo])

    def attend(q, k, v, causal):
        return kernel().flash_attn_func(q, k, v, causal=causal)

    def output_only(out):
        """Some builds return (out, softmax_lse); the check wants the output."""
        return out[0] if isinstance(out, (tuple, list)) else out

    def check():
        torch = opbench.require("torch")
        opbench.require("kernels")
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") else ""
        opbench.probe(kernel, f"cannot load {text} from the Hugging Face Hub{offline}")
        x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
        opbench.probe(lambda: attend(x, x, x, False), f"{repo} cannot run here")

    return opbench.run(attend, finish=output_only, check=check, tags=tags)


def _norm_call(kernel, x, weight, bias, eps, rms: bool):
    """The layer-norm repo's fused dropout/residual/norm forward, with everything but the norm switched off."""
    d = x.shape[-1]
    out = kernel.dropout_add_ln_fwd(
        input=x.reshape(-1, d), gamma=weight, beta=bias, rowscale=None, colscale=None, x0_subset=None,
        z_subset=None, dropout_p=0.0, epsilon=eps, rowscale_const=1.0, z_numrows=0, gen=None,
        residual_in_fp32=False, is_rms_norm=rms,
    )
    return (out[0] if isinstance(out, (tuple, list)) else out).view(x.shape)


def _rotary_call(kernel, q, k, cos, sin):
    """flash-attention's rotary kernel: halves in, halves out, cos/sin (S, 1, D/2); one launch per tensor."""
    import torch

    half = q.shape[-1] // 2
    c, s = cos[:, None, :half], sin[:, None, :half]
    outs = []
    for x in (q, k):
        out = torch.empty_like(x)
        kernel.apply_rotary(x[..., :half], x[..., half:], c, s, out[..., :half], out[..., half:], False)
        outs.append(out)
    return tuple(outs)


def _swiglu_call(kernel, x):
    import torch

    out = torch.empty(*x.shape[:-1], x.shape[-1] // 2, dtype=x.dtype, device=x.device)
    kernel.silu_and_mul(out, x)
    return out


OP_CALLS = {
    "rms_norm": lambda kernel, x, w, eps: _norm_call(kernel, x, w, None, eps, True),
    "layer_norm": lambda kernel, x, w, b, eps: _norm_call(kernel, x, w, b, eps, False),
    "rotary": _rotary_call,
    "swiglu": _swiglu_call,
}
# Why each has no backward mode: the op is called through a raw forward kernel (outputs written into buffers made
# here), with no autograd Function around it, so there is no backward to time.
NO_BACKWARD = {
    "rms_norm": "the Hub kernel is called through its forward op dropout_add_ln_fwd (no autograd; its backward op "
                "is not wired)",
    "layer_norm": "the Hub kernel is called through its forward op dropout_add_ln_fwd (no autograd; its backward op "
                  "is not wired)",
    "rotary": "the Hub kernel's apply_rotary is a forward-only op writing into given outputs (no autograd)",
    "swiglu": "the Hub kernel's silu_and_mul is a forward-only op writing into a given output (no autograd)",
}


def run_hub_op(pin_file: Path, op: str) -> int:
    """A Hub kernel of a memory-bound op (OP_CALLS says how each repo is called); skipped without the Hub."""
    import opbench
    from opbench.errors import HarnessError

    try:
        repo, which, text = read_pin(Path(pin_file))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    call_op = OP_CALLS[op]

    @functools.cache
    def kernel():
        from kernels import get_kernel

        return get_kernel(repo, **which, trust_remote_code=[repo])

    def fn(*args):
        return call_op(kernel(), *args)

    def check():
        opbench.require("torch")
        opbench.require("kernels")
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") else ""
        opbench.probe(kernel, f"cannot load {text} from the Hugging Face Hub{offline}")

    return opbench.run(fn, op=op, check=check, tags={"hub": text, "hub_pinned": "revision" in which},
                       packages=("kernels",), backward=NO_BACKWARD[op])
