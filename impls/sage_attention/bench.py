# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "sageattention==1.0.6", "torch>=2.4", "triton>=3.0", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "sageattention", backend = "triton", compile = "none", quant = "int8-qk" }
# ///
"""SageAttention 1.0.6 (Triton): Q and K quantized to int8 per block, P·V in fp16, in the canonical NHD layout.

It is quantized, so it declares its own tolerance (its rel-L2 error is about 1.3e-2 in bf16). With its
default smooth_k it subtracts the keys' mean in place (k -= mean); attention is unchanged by that shift,
and the harness computes the reference before the first call. The quantization kernels are part of the
call and are timed with it. Head dims other than 64, 96 and 128 are refused by the package (error records).
It has no backward: its bwd and fwd_bwd records are skipped with that reason.
Releases before 1.0.4 (for the version matrix, `--matrix sageattention=1.0.0,...`) take (B, H, S, D) only:
they are given contiguous copies in that layout, made untimed, and their output is viewed back.
"""

import opbench

TOLERANCE = {"bfloat16": 3e-2, "float16": 3e-2, "float32": 3e-2}


def takes_layout() -> bool:
    """1.0.4 added `tensor_layout`; 1.0.0–1.0.3 take (B, H, S, D) alone (the version matrix runs them all)."""
    import inspect

    from sageattention import sageattn

    return "tensor_layout" in inspect.signature(sageattn).parameters


def attend(q, k, v, causal):
    from sageattention import sageattn

    return sageattn(q, k, v, tensor_layout="NHD", is_causal=causal)


def attend_hnd(q, k, v, causal):
    from sageattention import sageattn

    return sageattn(q, k, v, is_causal=causal)


def hnd(q, k, v):
    """(B, S, H, D) to contiguous (B, H, S, D) copies."""
    return tuple(t.transpose(1, 2).contiguous() for t in (q, k, v))


def to_hnd(q, k, v, wl):
    """The harness's prepare for an older release: its copies made untimed, so it is not charged a transpose."""
    return (*hnd(q, k, v), wl.causal)


def from_hnd(out):
    return out.transpose(1, 2)


def check():
    torch = opbench.require("torch")
    opbench.require("sageattention")
    x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
    if takes_layout():
        opbench.probe(lambda: attend(x, x.clone(), x, False), "sageattention cannot run here")
    else:
        opbench.probe(lambda: attend_hnd(*hnd(x, x.clone(), x), False), "sageattention cannot run here")


NO_BACKWARD = "SageAttention's sageattn is a forward-only (inference) kernel: no autograd backward"

if __name__ == "__main__":
    try:
        layout = takes_layout()
    except ImportError:  # not installed: check() says so in the skip record
        layout = True
    kw = {} if layout else {"prepare": to_hnd, "finish": from_hnd}
    raise SystemExit(opbench.run(attend if layout else attend_hnd, check=check, tolerance=TOLERANCE,
                                 backward=NO_BACKWARD, **kw))
