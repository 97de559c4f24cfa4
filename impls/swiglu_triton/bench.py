# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "triton>=3.4", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "swiglu"
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "triton", backend = "opbench-triton-swiglu", compile = "jit" }
# ///
"""swiglu_triton: this project's own swiglu kernel in Triton (kernel.py beside this script: one pass over memory,
a fixed launch table, no autotuning), run by the harness through its autograd Function `swiglu_fn` (the same forward
launch; its backward is the Triton backward kernel, for the bwd and fwd_bwd modes). Interpreter-tested on the CPU in
tests/test_triton_rotary_swiglu.py."""

from __future__ import annotations

import sys
from pathlib import Path

import opbench

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel import swiglu_fn  # noqa: E402 - the kernel lives beside this script


def check():
    opbench.require("torch")
    opbench.require("triton")


if __name__ == "__main__":
    raise SystemExit(opbench.run(swiglu_fn, op="swiglu", check=check, packages=("triton",)))
