# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "liger-kernel==0.8.5", "torch>=2.5", "triton>=3.0", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# op = "swiglu"
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "liger", backend = "triton", compile = "none" }
# ///
"""Liger-Kernel 0.8.5's swiglu (Triton), called as its module does (see opbench.liger)."""

from opbench import liger

if __name__ == "__main__":
    raise SystemExit(liger.run("swiglu"))
