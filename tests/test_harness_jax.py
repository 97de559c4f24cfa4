"""The harness's framework-neutral path, driven by JAX (on its CPU here; cuDNN impls need a GPU)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

jax = pytest.importorskip("jax")
np = pytest.importorskip("numpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

import opbench  # noqa: E402
from opbench.ops import attention  # noqa: E402

TAGS = {"family": "jax", "backend": "xla", "compile": "jit"}
SUITE = """
[defaults]
batch = 1
heads = 4
head_dim = 16
dtype = "float32"

[[workload]]
name = "plain"
seq_len = 32

[[workload]]
name = "causal_gqa"
seq_len = 24
kv_heads = 2
causal = true
"""

xla_attention = jax.jit(
    lambda q, k, v, causal: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="xla"),
    static_argnames="causal",
)


@pytest.fixture
def harness(tmp_path, monkeypatch):
    suite = tmp_path / "tiny.toml"
    suite.write_text(SUITE)
    monkeypatch.setenv("ORCH_OUT", str(tmp_path))
    monkeypatch.setenv("ORCH_WORKLOADS", str(suite))
    monkeypatch.setenv("ORCH_IMPL", "jax_test")

    def go(fn, mode="fwd", **kw):
        monkeypatch.setenv("ORCH_MODE", mode)
        kw = {"tags": TAGS, "framework": "jax", "requires_cuda": False, "warmup_s": 0.0, "time_cap_s": 0.05,
              "min_reps": 3, **kw}
        code = opbench.run(fn, **kw)
        recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
        if mode == "fwd":
            return code, {r["wl"]["name"]: r for r in recs}
        return code, {(r["wl"]["name"], r["mode"]): r for r in recs}

    return go


def test_jax_impl_is_batched_into_one_program_and_checked(harness):
    code, recs = harness(lambda q, k, v, causal: xla_attention(q, k, v, causal=causal))
    assert code == 0
    for rec in recs.values():
        assert rec["status"] == "ok" and rec["ok"] is True
        assert rec["lat_ms"]["mode"] == "xla-batch" and rec["lat_ms"]["p50"] > 0
        assert rec["peak_bytes"] and rec["peak_bytes"] >= 4 * rec["wl"]["seq_len"] * 4 * 16
        assert rec["env"]["torch"] is None and rec["env"]["packages"]["jax"] == jax.__version__


def test_untraceable_jax_impl_falls_back_to_host_batch(harness):
    def host_roundtrip(q, k, v, causal):
        out = xla_attention(q, k, v, causal=causal)
        return jax.numpy.asarray(np.asarray(out))  # concrete values: cannot be traced into a larger program

    _, recs = harness(host_roundtrip)
    assert all(r["lat_ms"]["mode"] == "host-batch" and r["ok"] for r in recs.values())


def test_wrong_jax_impl_is_flagged(harness):
    _, recs = harness(lambda q, k, v, causal: xla_attention(q, k, v, causal=False))
    assert recs["plain"]["ok"] is True and recs["causal_gqa"]["ok"] is False


def test_jax_inputs_equal_the_torch_inputs_for_the_same_workload():
    torch = pytest.importorskip("torch")
    from opbench.jax_backend import JaxBackend
    from opbench.torch_backend import TorchBackend

    wl = opbench.Workload.attention("x", 1, 8, 2, 2, 4, "float32", False)
    jq = JaxBackend.create().inputs(wl)[0]
    tq = TorchBackend.create().inputs(wl)[0]
    assert np.array_equal(np.asarray(jq), tq.cpu().numpy())
    assert torch is not None


@pytest.mark.parametrize("causal, kv_heads", [(False, 4), (True, 2)])
def test_jax_reference_in_padded_blocks_matches_the_torch_reference(monkeypatch, causal, kv_heads):
    pytest.importorskip("torch")
    from opbench import jax_backend
    from opbench.jax_backend import JaxBackend
    from opbench.torch_backend import TorchBackend

    monkeypatch.setitem(attention.REF_BUDGET, "cpu", 4 * 4 * 40 * 7)  # 7 rows a block: 40 rows need padding
    monkeypatch.setitem(attention.REF_BUDGET, "gpu", 4 * 4 * 40 * 7)
    wl = opbench.Workload.attention("r", 1, 40, 4, kv_heads, 8, "float32", causal)
    jb, tb = JaxBackend.create(), TorchBackend.create()
    ref_j = np.asarray(jb.reference(jb.inputs(wl), wl))
    ref_t = tb.reference(tb.inputs(wl), wl).cpu().numpy()
    assert ref_j.shape == (1, 40, 4, 8)
    assert np.allclose(ref_j, ref_t, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("causal, kv_heads", [(False, 4), (True, 2)])
def test_jax_reference_gradients_in_padded_blocks_match_the_torch_ones(monkeypatch, causal, kv_heads):
    pytest.importorskip("torch")
    from opbench.jax_backend import JaxBackend
    from opbench.torch_backend import TorchBackend

    monkeypatch.setitem(attention.REF_BUDGET, "cpu", 4 * 4 * 4 * 40 * 7)  # 7 rows a block: 40 rows need padding
    wl = opbench.Workload.attention("r", 1, 40, 4, kv_heads, 8, "float32", causal)
    jb, tb = JaxBackend.create(), TorchBackend.create()
    got = jb.grad_reference(jb.inputs(wl), jb.upstream(wl), wl)
    want = tb.grad_reference(tb.inputs(wl), tb.upstream(wl), wl)
    assert sorted(got) == ["dk", "dq", "dv"] and got["dk"].shape == (1, 40, kv_heads, 8)
    for name in want:
        assert np.allclose(np.asarray(got[name]), want[name].numpy(), atol=1e-5, rtol=1e-4), name


def test_jax_backward_modes_time_the_vjp_and_check_each_gradient(harness):
    code, recs = harness(lambda q, k, v, causal: xla_attention(q, k, v, causal=causal), mode="fwd,bwd,fwd_bwd")
    assert code == 0 and len(recs) == 6
    for (name, mode), rec in recs.items():
        assert rec["status"] == "ok" and rec["ok"] is True and rec["mode"] == mode, rec
        assert rec["lat_ms"]["mode"] == "xla-batch" and rec["lat_ms"]["p50"] > 0
        wl = opbench.Workload.from_json(rec["wl"])
        factor = {"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5}[mode]
        assert rec["tflops"] * rec["lat_ms"]["p50"] * 1e9 == pytest.approx(factor * wl.flops, rel=1e-3)
        if mode != "fwd":
            assert sorted(rec["grad_err"]) == ["dk", "dq", "dv"] and max(rec["grad_err"].values()) < 1e-4


def test_a_wrong_jax_backward_is_flagged(harness):
    @jax.custom_vjp
    def attend(q, k, v):
        return xla_attention(q, k, v, causal=False)

    def fwd(q, k, v):
        out, vjp = jax.vjp(lambda a, b, c: xla_attention(a, b, c, causal=False), q, k, v)
        return out, vjp

    def bwd(vjp, dy):
        dq, dk, dv = vjp(dy)
        return dq, dk, 2 * dv

    attend.defvjp(fwd, bwd)
    _, recs = harness(lambda q, k, v, causal: attend(q, k, v), mode="fwd,bwd")
    assert recs[("plain", "fwd")]["ok"] is True
    bad = recs[("plain", "bwd")]
    assert bad["ok"] is False and "gradient dv" in bad["reason"] and bad["grad_err"]["dq"] < 1e-4
