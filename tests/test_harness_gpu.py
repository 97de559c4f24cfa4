"""The harness's CUDA paths: graph capture and its fallback, the L2 flush, memory, the peak. Skipped without CUDA."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numpy")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

import opbench  # noqa: E402
from opbench import torch_timing  # noqa: E402

TAGS = {"family": "test", "backend": "FLASH_ATTENTION", "compile": "none"}
SUITE = """
[defaults]
batch = 1
heads = 16
head_dim = 128
dtype = "bfloat16"

[[workload]]
name = "small"
seq_len = 1024

[[workload]]
name = "large_causal_gqa"
seq_len = 4096
kv_heads = 4
causal = true
"""
FAST = {"warmup_s": 0.05, "time_cap_s": 0.5}


def sdpa(q, k, v, causal):
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal, enable_gqa=q.shape[2] != k.shape[2]
    )
    return out.transpose(1, 2)


@pytest.fixture
def harness(tmp_path, monkeypatch):
    suite = tmp_path / "gpu.toml"
    suite.write_text(SUITE)
    monkeypatch.setenv("ORCH_OUT", str(tmp_path))
    monkeypatch.setenv("ORCH_WORKLOADS", str(suite))
    monkeypatch.setenv("ORCH_IMPL", "gpu_test")
    monkeypatch.setenv("OPBENCH_CACHE_DIR", str(tmp_path / "cache"))

    def go(fn, **kw):
        code = opbench.run(fn, **{"tags": TAGS, **FAST, **kw})
        recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
        return code, {r["wl"]["name"]: r for r in recs}

    return go


def test_graph_safe_impl_is_timed_by_graph_replay_and_its_replays_are_checked(harness):
    code, recs = harness(sdpa)
    assert code == 0
    for rec in recs.values():
        assert rec["status"] == "ok" and rec["ok"] is True, rec["reason"]
        assert rec["lat_ms"]["mode"] == "graph"
        assert rec["env"]["sm"] and rec["env"]["cuda"]
        assert 0 < rec["pct_peak"] < 100


def test_impl_that_syncs_falls_back_to_events(harness, capsys):
    def syncing(q, k, v, causal):
        out = sdpa(q, k, v, causal)
        out.float().sum().item()  # a host sync: not allowed while a graph is being captured
        return out

    code, recs = harness(syncing)
    assert code == 0 and all(r["lat_ms"]["mode"] == "events" and r["ok"] for r in recs.values())
    assert "graph capture failed" in capsys.readouterr().err


def test_graph_unsafe_declaration_uses_events_and_agrees_with_graph_on_long_kernels(harness):
    _, graph = harness(sdpa)
    _, events = harness(sdpa, graph_safe=False)
    g, e = graph["large_causal_gqa"]["lat_ms"]["p50"], events["large_causal_gqa"]["lat_ms"]["p50"]
    assert events["large_causal_gqa"]["lat_ms"]["mode"] == "events"
    assert abs(g - e) / g < 0.15  # launch overhead is noise at this size


def test_peak_bytes_counts_what_the_impl_allocates_beyond_its_inputs(harness):
    extra = 64 << 20

    def wasteful(q, k, v, causal):
        scratch = torch.empty(extra, dtype=torch.uint8, device=q.device)
        scratch.fill_(1)
        return sdpa(q, k, v, causal)

    _, lean = harness(sdpa)
    _, fat = harness(wasteful)
    out_bytes = 1 * 1024 * 16 * 128 * 2
    assert out_bytes <= lean["small"]["peak_bytes"] < extra
    assert fat["small"]["peak_bytes"] >= extra + out_bytes


def test_flush_buffer_is_at_least_twice_the_l2():
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    buf = torch_timing.flush_buffer(torch, torch.device("cuda"))
    assert buf.numel() >= 2 * l2


def test_peak_rate_is_cached_per_device(harness, tmp_path):
    harness(sdpa)
    cache = json.loads((tmp_path / "cache" / "peak_bf16_tflops.json").read_text())
    assert torch.cuda.get_device_name() in cache
    assert 50 < cache[torch.cuda.get_device_name()]["tflops"] < 5000
