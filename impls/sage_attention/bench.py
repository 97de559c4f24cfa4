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
"""

import opbench

TOLERANCE = {"bfloat16": 3e-2, "float16": 3e-2, "float32": 3e-2}


def attend(q, k, v, causal):
    from sageattention import sageattn

    return sageattn(q, k, v, tensor_layout="NHD", is_causal=causal)


def check():
    torch = opbench.require("torch")
    opbench.require("sageattention")
    x = torch.randn(1, 128, 2, 64, device="cuda", dtype=torch.bfloat16)
    opbench.probe(lambda: attend(x, x.clone(), x, False), "sageattention cannot run here")


NO_BACKWARD = "SageAttention's sageattn is a forward-only (inference) kernel: no autograd backward"

if __name__ == "__main__":
    raise SystemExit(opbench.run(attend, check=check, tolerance=TOLERANCE, backward=NO_BACKWARD))
