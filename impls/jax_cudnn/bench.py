# /// script
# requires-python = ">=3.10"
# dependencies = ["opbench-harness", "jax[cuda13]>=0.6", "numpy"]
#
# [tool.uv.sources]
# opbench-harness = { path = "../../shared", editable = true }
#
# [tool.orchestrator]
# gpu = true
# requires = ["cuda"]
# timeout = 1800
# tags = { family = "jax", backend = "cudnn", compile = "jit" }
# ///
"""jax.nn.dot_product_attention(implementation="cudnn"), jitted: cuDNN's fused attention through XLA.

JAX's (B, T, N, H) layout is the canonical one, and GQA is native (K heads dividing N). Timing is the
harness's JAX method (JAX has no CUDA events): batches of asynchronously dispatched calls over rotating
input copies, host clock until the last result is ready; lat_ms.mode = "host-batch".
"""

import functools

import opbench


@functools.cache
def jitted():
    import jax

    def attention(q, k, v, causal):
        return jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="cudnn")

    return jax.jit(attention, static_argnames="causal")


def attend(q, k, v, causal):
    return jitted()(q, k, v, causal=causal)


def check():
    jax = opbench.require("jax")
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 128, 2, 64), dtype=jax.numpy.bfloat16)
    tiny = lambda: jax.block_until_ready(attend(x, x, x, False))  # noqa: E731
    opbench.probe(tiny, "cuDNN attention through JAX cannot run here")


if __name__ == "__main__":
    raise SystemExit(opbench.run(attend, check=check, framework="jax"))
