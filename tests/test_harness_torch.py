"""The harness measuring real torch code on the CPU: verdicts, error and skip paths, the reference, the scripts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numpy")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "shared"))

import opbench  # noqa: E402
from opbench import torch_backend  # noqa: E402
from opbench.suite import Workload  # noqa: E402

TAGS = {"family": "test", "backend": "MATH", "compile": "none"}
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

[[workload]]
name = "half"
seq_len = 16
dtype = "bfloat16"
"""
FAST = {"warmup_s": 0.0, "time_cap_s": 0.02, "min_reps": 3}
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")


def sdpa(q, k, v, causal):
    """A correct impl: SDPA on (B, H, S, D) views of the canonical tensors."""
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal, enable_gqa=q.shape[2] != k.shape[2]
    )
    return out.transpose(1, 2)


@pytest.fixture
def harness(tmp_path, monkeypatch):
    """Run opbench.run in-process on a tiny suite; returns (exit code, records by workload name)."""
    suite = tmp_path / "tiny.toml"
    suite.write_text(SUITE)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("ORCH_OUT", str(out))
    monkeypatch.setenv("ORCH_WORKLOADS", str(suite))
    monkeypatch.setenv("ORCH_IMPL", "fake_impl")

    def go(fn, **kw):
        kw = {"tags": TAGS, "requires_cuda": False, **FAST, **kw}
        code = opbench.run(fn, **kw)
        lines = (out / "results.jsonl").read_text().splitlines()
        return code, {r["wl"]["name"]: r for r in map(json.loads, lines)}, out

    return go


def test_correct_impl_gets_ok_records_with_every_field(harness):
    code, recs, _ = harness(sdpa)
    assert code == 0 and list(recs) == ["plain", "causal_gqa", "half"]
    for rec in recs.values():
        assert rec["status"] == "ok" and rec["ok"] is True and rec["reason"] is None
        assert rec["impl"] == "fake_impl" and rec["tags"] == TAGS
        assert rec["lat_ms"]["reps"] >= 3 and len(rec["lat_ms"]["raw"]) == rec["lat_ms"]["reps"]
        assert rec["lat_ms"]["mode"] == ("graph" if torch.cuda.is_available() else "host")
        assert rec["compile_ms"] > 0 and rec["tflops"] > 0
        assert rec["env"]["torch"] == torch.__version__ and rec["env"]["python"]
    assert recs["plain"]["err"]["rel_l2"] < 1e-5
    assert 1e-4 < recs["half"]["err"]["rel_l2"] < recs["half"]["err"]["tol"]
    assert recs["causal_gqa"]["wl"]["kv_heads"] == 2 and recs["causal_gqa"]["wl"]["causal"] is True


def test_wrong_impl_is_flagged_not_hidden(harness):
    code, recs, _ = harness(lambda q, k, v, causal: sdpa(q * 2.0, k, v, causal))
    assert code == 0
    for rec in recs.values():
        assert rec["status"] == "ok" and rec["ok"] is False
        assert rec["lat_ms"]["p50"] > 0
        assert rec["err"]["rel_l2"] > rec["err"]["tol"]
        assert "rel_l2" in rec["reason"]


def test_ignoring_the_causal_mask_is_caught(harness):
    _, recs, _ = harness(lambda q, k, v, causal: sdpa(q, k, v, False))
    assert recs["plain"]["ok"] is True and recs["causal_gqa"]["ok"] is False


def test_nan_output_never_passes(harness):
    def nan_impl(q, k, v, causal):
        out = sdpa(q, k, v, causal)
        out[0, 0, 0, 0] = math.nan
        return out

    _, recs, _ = harness(nan_impl)
    rec = recs["plain"]
    assert rec["ok"] is False and rec["err"]["rel_l2"] is None and "NaN" in rec["reason"]


def test_impl_raising_on_one_workload_gives_an_error_record_and_the_rest_still_run(harness):
    def picky(q, k, v, causal):
        if causal:
            raise ValueError("causal is not supported\nsecond line")
        return sdpa(q, k, v, causal)

    code, recs, _ = harness(picky)
    assert code == 0
    assert recs["causal_gqa"]["status"] == "error"
    assert recs["causal_gqa"]["reason"] == "ValueError: causal is not supported"
    assert recs["causal_gqa"]["lat_ms"] is None and recs["causal_gqa"]["ok"] is None
    assert recs["plain"]["status"] == recs["half"]["status"] == "ok"


@pytest.mark.parametrize("exc", ["torch", "python"])
def test_allocation_failure_in_one_workload_is_an_error_record(harness, exc):
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError

    def hungry(q, k, v, causal):
        if q.shape[1] == 32:
            raise oom("CUDA out of memory. Tried to allocate 80.00 GiB") if exc == "torch" else MemoryError("no RAM")
        return sdpa(q, k, v, causal)

    code, recs, _ = harness(hungry)
    assert code == 0
    assert recs["plain"]["status"] == "error"
    expected = "OutOfMemoryError: CUDA out of memory" if exc == "torch" else "MemoryError: no RAM"
    assert recs["plain"]["reason"].startswith(expected)
    assert recs["causal_gqa"]["status"] == "ok" and recs["half"]["status"] == "ok"


def test_output_of_the_wrong_shape_is_an_error(harness):
    _, recs, _ = harness(lambda q, k, v, causal: sdpa(q, k, v, causal).transpose(1, 2))
    assert recs["plain"]["status"] == "error" and "output shape" in recs["plain"]["reason"]


def test_prepare_runs_once_per_workload_and_finish_only_for_checks(harness):
    calls = {"prepare": 0, "fn": 0, "finish": 0}

    def prepare(q, k, v, wl):
        calls["prepare"] += 1
        return q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous(), wl.causal

    def bhsd(q, k, v, causal):
        calls["fn"] += 1
        gqa = q.shape[1] != k.shape[1]
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

    def finish(out):
        calls["finish"] += 1
        return out.transpose(1, 2)

    code, recs, _ = harness(bhsd, prepare=prepare, finish=finish)
    assert code == 0 and all(r["ok"] for r in recs.values())
    assert calls["prepare"] == 3
    assert calls["finish"] <= 6 < calls["fn"]


def test_quantized_impl_passes_only_with_its_declared_tolerance(harness):
    def coarse(q, k, v, causal):
        out = sdpa(q, k, v, causal)
        return out + 0.02 * out.abs().mean() * torch.sign(out)

    _, strict, _ = harness(coarse)
    _, loose, _ = harness(coarse, tolerance=0.1)
    assert strict["plain"]["ok"] is False and loose["plain"]["ok"] is True
    assert loose["plain"]["err"]["tol"] == 0.1


@NO_CUDA
def test_gpu_only_impl_without_cuda_writes_skipped_records_and_exits_77(harness):
    code, recs, out = harness(sdpa, requires_cuda=True)
    assert code == opbench.SKIP_EXIT == 77
    assert {r["status"] for r in recs.values()} == {"skipped"} and len(recs) == 3
    reason = (out / "skipped.txt").read_text()
    assert reason.startswith("requires CUDA") and reason.count("\n") == 1
    assert all(r["reason"] == reason.strip() and r["lat_ms"] is None for r in recs.values())


def test_check_raising_skip_or_import_error_skips_the_whole_impl(harness):
    def no_kernel():
        raise opbench.Skip("no operator for this torch")

    code, recs, out = harness(sdpa, check=no_kernel)
    assert code == 77 and (out / "skipped.txt").read_text().strip() == "no operator for this torch"
    assert all(r["reason"] == "no operator for this torch" for r in recs.values())

    code, recs, out = harness(sdpa, check=lambda: opbench.require("surely_not_a_module_xyz"))
    assert code == 77 and "surely_not_a_module_xyz is not importable" in (out / "skipped.txt").read_text()

    def probe_fails():
        opbench.probe(lambda: 1 / 0, "tiny call failed")

    code, _, out = harness(sdpa, check=probe_fails)
    assert code == 77
    assert (out / "skipped.txt").read_text().strip() == "tiny call failed: ZeroDivisionError: division by zero"


def test_bad_suite_is_a_one_line_user_error(harness, monkeypatch, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[workload]]\nname = "x"\nbatch = 1\nseq_len = 0\nheads = 1\nhead_dim = 8\ndtype = "float32"\n')
    monkeypatch.setenv("ORCH_WORKLOADS", str(bad))
    assert opbench.run(sdpa, tags=TAGS, requires_cuda=False) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.toml" in err and "seq_len" in err


@NO_CUDA
def test_default_suite_without_cuda_is_smoke(harness, monkeypatch):
    monkeypatch.delenv("ORCH_WORKLOADS")
    _, recs, _ = harness(sdpa)
    assert set(recs) == {w.name for w in opbench.load_suite("smoke").workloads}


@pytest.mark.parametrize("causal, kv_heads", [(False, 4), (True, 2), (True, 1)])
def test_chunked_reference_matches_float64_attention(monkeypatch, causal, kv_heads):
    from opbench.ops import attention

    monkeypatch.setitem(attention.REF_BUDGET, "cpu", 4 * 4 * 40 * 7)  # 7 query rows per chunk
    monkeypatch.setitem(attention.REF_BUDGET, "cuda", 4 * 4 * 40 * 7)
    wl = Workload.attention("r", 1, 40, 4, kv_heads, 8, "float32", causal)
    backend = torch_backend.TorchBackend.create()
    q, k, v = backend.inputs(wl)
    ref = backend.reference((q, k, v), wl).double().cpu()
    qd, kd, vd = (t.double().cpu().transpose(1, 2) for t in (q, k, v))
    kd, vd = (t.repeat_interleave(4 // kv_heads, dim=1) for t in (kd, vd))
    scores = qd @ kd.transpose(-1, -2) / math.sqrt(8)
    if causal:
        scores = scores.masked_fill(torch.ones(40, 40, dtype=torch.bool).triu(1), -math.inf)
    expected = (scores.softmax(-1) @ vd).transpose(1, 2)
    assert torch.allclose(ref, expected, atol=1e-6, rtol=1e-5)


def test_inputs_are_seeded_reproducible_distinct_and_never_zero():
    backend = torch_backend.TorchBackend.create()
    wl = Workload.attention("x", 2, 16, 4, 2, 8, "bfloat16", False)
    q1, k1, v1 = backend.inputs(wl)
    q2, _, _ = backend.inputs(wl)
    assert q1.shape == (2, 16, 4, 8) and k1.shape == v1.shape == (2, 16, 2, 8) and q1.dtype == torch.bfloat16
    assert torch.equal(q1, q2)
    assert not torch.equal(k1, v1)
    assert q1.abs().sum() > 0 and 0.5 < q1.float().std() < 1.5


def run_script(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    from orchestrator.model.job import load_job

    job = load_job(REPO / "impls" / name / "bench.py", name)  # the orchestrator reads the PEP 723 block, once
    env = {**os.environ, "ORCH_OUT": str(tmp_path), "ORCH_WORKLOADS": "smoke", "PYTHONPATH": str(REPO / "shared"),
           "ORCH_TAGS": json.dumps(job.tags), "ORCH_OP": job.op}
    env.pop("ORCH_IMPL", None)
    res = subprocess.run([sys.executable, str(REPO / "impls" / name / "bench.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    path = tmp_path / "results.jsonl"
    return res, [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_torch_math_script_runs_the_smoke_suite_end_to_end(tmp_path):
    res, recs = run_script("torch_math", tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(recs) == len(opbench.load_suite("smoke").workloads)
    assert all(r["status"] == "ok" and r["ok"] for r in recs)
    assert recs[0]["impl"] == "torch_math"
    assert recs[0]["tags"] == {"backend": "MATH", "compile": "none", "family": "torch-sdpa"}


@NO_CUDA
def test_cuda_only_script_skips_cleanly_on_cpu(tmp_path):
    res, recs = run_script("torch_cudnn", tmp_path)
    assert res.returncode == 77, res.stderr[-2000:]
    assert recs and all(r["status"] == "skipped" for r in recs)
    assert (tmp_path / "skipped.txt").read_text().startswith("requires CUDA")
