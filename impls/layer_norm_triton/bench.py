# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "triton>=3.4", "torch>=2.5", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "layer_norm"
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "triton", backend = "opbench-triton-layer_norm", compile = "jit" }
# ///
"""layer_norm_triton: this project's own layer_norm kernel in Triton (kernel.py beside this script: one pass over memory, a fixed
launch table, no autotuning), run by the harness through layer_norm_fn, differentiable by a Triton backward (with
no input requiring grad it is the plain forward). Interpreter-tested on the CPU in tests/test_triton_norms.py and
tests/test_triton_norms_bwd.py."""

from __future__ import annotations

import sys
from pathlib import Path

import opbench

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel import layer_norm_fn  # noqa: E402 - the kernel lives beside this script


def check():
    opbench.require("torch")
    opbench.require("triton")


if __name__ == "__main__":
    raise SystemExit(opbench.run(layer_norm_fn, op="layer_norm", check=check, packages=("triton",)))
