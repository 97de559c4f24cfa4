"""torch's scaled_dot_product_attention, eager and held to one backend or compiled: the torch-sdpa and
torch-compile impls are this module plus a backend name or a compile mode.

Inputs go to SDPA's (B, H, S, D) layout in `prepare` (untimed); the output comes back as a view.

Backward: `sdpa_kernel` picks the kernel at the forward, and autograd's node for it is that kernel's own backward
(e.g. _scaled_dot_product_flash_attention_backward), so the backward modes time the held backend's backward without
the context around the backward call; MATH's is autograd over its plain ops. torch.compile compiles its backward
too: `prepare` makes a fresh compile per workload and mode, so compile_ms is that mode's own compilation.
"""

from __future__ import annotations


def to_bhsd(q, k, v, wl):
    """SDPA's native (B, H, S, D) layout, made contiguous outside the timed region."""
    return q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous(), wl.causal


def _sdpa(q, k, v, causal: bool):
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=q.shape[1] != k.shape[1])


def backend_attend(backend: str):
    """attend(q, k, v, causal) with SDPA held to `backend` only: no silent fallback to another kernel."""

    def attend(q, k, v, causal):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(getattr(SDPBackend, backend)):
            out = _sdpa(q, k, v, causal)
        return out.transpose(1, 2)  # a view back to (B, S, H, D); no copy in the timed call

    return attend


def backend_check(backend: str, attend):
    """Skip where SDPA has no `backend` kernel for this device (a tiny call tells)."""

    def check():
        import opbench

        torch = opbench.require("torch")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        x = torch.randn(1, 2, 64, 64, device=device, dtype=dtype)
        opbench.probe(lambda: attend(x, x, x, False), f"SDPA {backend} is not available on {device}")

    return check


def run_backend(backend: str, *, requires_cuda: bool, probe: bool = True) -> int:
    """Benchmark SDPA held to one backend; `probe` skips the impl where that backend has no kernel here."""
    import opbench

    attend = backend_attend(backend)
    check = backend_check(backend, attend) if probe else None
    return opbench.run(attend, prepare=to_bhsd, check=check, requires_cuda=requires_cuda)


def run_compiled(mode: str) -> int:
    """Benchmark torch.compile(SDPA, mode) with a fresh, static-shape compile per workload (dynamo reset in
    `prepare`), so compile_ms is that workload's own compilation and no workload runs another shape's kernel."""
    import opbench

    def prepare(q, k, v, wl):
        import torch

        torch._dynamo.reset()
        compiled = torch.compile(_sdpa, mode=mode, dynamic=False, fullgraph=True)
        return (compiled, *to_bhsd(q, k, v, wl))

    def attend(compiled, q, k, v, causal):
        return compiled(q, k, v, causal).transpose(1, 2)

    return opbench.run(attend, prepare=prepare, requires_cuda=False)
