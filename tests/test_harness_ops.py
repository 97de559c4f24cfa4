"""The memory-bound ops on the CPU: their references against float64 formulas, each family's torch eager impl run
through the harness as the orchestrator runs it, wrong impls caught, the L2 rotation plan, suites per op."""

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

from opbench import ops  # noqa: E402
from opbench.errors import SuiteError  # noqa: E402
from opbench.runner import Options, l2_plan  # noqa: E402
from opbench.suite import Workload, load_suite  # noqa: E402
from opbench.torch_backend import TorchBackend  # noqa: E402

FAMILIES = ("rms_norm", "layer_norm", "rotary", "swiglu")
SMALL = {
    "rms_norm": dict(batch=2, seq_len=5, hidden=24),
    "layer_norm": dict(batch=2, seq_len=5, hidden=24),
    "rotary": dict(batch=2, seq_len=6, heads=3, head_dim=8),
    "swiglu": dict(tokens=7, dim=12),
}


def f64(inputs):
    return tuple(t.double() for t in inputs)


def expected(op: str, wl, inputs):
    """Each op's formula in float64, written independently of its module."""
    if op == "rms_norm":
        x, w = f64(inputs)
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w
    if op == "layer_norm":
        x, w, b = f64(inputs)
        m = x.mean(-1, keepdim=True)
        return (x - m) / torch.sqrt(((x - m) ** 2).mean(-1, keepdim=True) + 1e-5) * w + b
    if op == "rotary":
        q, k, cos, sin = f64(inputs)
        h = wl.head_dim // 2
        out = []
        for x in (q, k):
            x1, x2 = x[..., :h], x[..., h:]
            c, s = cos[None, :, None, :h], sin[None, :, None, :h]
            out.append(torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1))
        return tuple(out)
    (x,) = f64(inputs)
    a, b = x[..., : wl.dim], x[..., wl.dim :]
    return a / (1 + torch.exp(-a)) * b


@pytest.mark.parametrize("op", FAMILIES)
def test_reference_matches_the_float64_formula(op):
    wl = Workload.make(op, "t", "float32", **SMALL[op])
    backend = TorchBackend.create()
    inputs = backend.inputs(wl)
    ref, want = backend.reference(inputs, wl), expected(op, wl, inputs)
    refs, wants = (ref, want) if isinstance(ref, tuple) else ((ref,), (want,))
    for r, w in zip(refs, wants):
        assert r.dtype == torch.float32 and torch.allclose(r.double(), w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op", FAMILIES)
def test_work_counts_are_the_minimal_bytes_and_inputs_are_seeded(op):
    wl = Workload.make(op, "t", "bfloat16", **SMALL[op])
    backend = TorchBackend.create()
    inputs = backend.inputs(wl)
    outputs = backend.reference(inputs, wl)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    moved = sum(t.numel() for t in inputs) + sum(t.numel() for t in outputs)  # each read once, each written once
    assert wl.bytes == 2 * moved and wl.flops > 0
    again = backend.inputs(wl)
    assert all(torch.equal(a, b) for a, b in zip(inputs, again))
    other = Workload.make(op, "t", "bfloat16", **{**SMALL[op], next(iter(SMALL[op])): 3})
    assert wl.seed != other.seed


def test_a_wrong_output_is_caught_and_a_tuple_op_is_judged_over_all_its_tensors():
    backend = TorchBackend.create()
    wl = Workload.make("rotary", "t", "float32", **SMALL["rotary"])
    inputs = backend.inputs(wl)
    ref = backend.reference(inputs, wl)
    assert backend.check(tuple(r.clone() for r in ref), ref, 1e-3).ok
    bad_k = (ref[0].clone(), inputs[1].float())  # k left unrotated
    acc = backend.check(bad_k, ref, 1e-3)
    assert not acc.ok and acc.rel_l2 > 1e-2
    with pytest.raises(TypeError, match="1 outputs, expected 2"):
        backend.check(ref[0], ref, 1e-3)


class Device:
    """A backend as far as the L2 plan asks (its L2 size, a CUDA device, byte counts of the arguments)."""

    has_cuda = True

    def __init__(self, l2: int):
        self.l2 = l2

    def l2_bytes(self):
        return self.l2

    def tensor_bytes(self, args):
        return sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))


def test_l2_plan_rotates_small_memory_bound_inputs_and_leaves_large_or_compute_bound_ones():
    l2 = 50 << 20
    small = Workload.make("rms_norm", "t", "bfloat16", batch=1, seq_len=512, hidden=2048)  # 2 MiB of x
    x = torch.empty(512 * 2048, dtype=torch.bfloat16)
    copies, policy = l2_plan(Device(l2), small, (x,), Options())
    assert policy.policy == "cold" and copies == math.ceil(3 * l2 / x.numel() / 2) and policy.copies == copies
    big = torch.empty(3 * l2 // 2, dtype=torch.bfloat16)
    copies, policy = l2_plan(Device(l2), small, (big,), Options())
    assert copies == 1 and policy.policy == "cold" and "exceed" in policy.method
    attn = Workload.attention("a", 1, 128, 2, 2, 64, "bfloat16")
    assert l2_plan(Device(l2), attn, (x,), Options())[1].policy == "hot"
    assert l2_plan(Device(l2), small, (x,), Options(l2="hot"))[0] == 1


def test_every_op_has_smoke_and_seed_and_the_families_a_large_suite_moving_256_mb():
    for op in ops.NAMES:
        for name in ("smoke", "seed"):
            assert load_suite(name, op).op == op
    for op in FAMILIES:
        assert min(w.bytes for w in load_suite("large", op).workloads) >= 256e6


def test_a_suite_names_its_op_and_fields_are_the_ops_own(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[suite]\nop = "swiglu"\n[[workload]]\nname = "a"\ntokens = 4\ndim = 8\ndtype = "float32"\n')
    suite = load_suite(str(path))
    assert suite.op == "swiglu" and suite.workloads[0].dim == 8
    path.write_text('[suite]\nop = "swiglu"\n[[workload]]\nname = "a"\ntokens = 4\nhidden = 8\ndtype = "float32"\n')
    with pytest.raises(SuiteError, match=r"workload\[0\]: unknown field 'hidden' for op swiglu"):
        load_suite(str(path))
    path.write_text('[suite]\nop = "conv"\n[[workload]]\nname = "a"\ndtype = "float32"\n')
    with pytest.raises(SuiteError, match="suite.op: unknown op 'conv'"):
        load_suite(str(path))


def run_impl(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """The impl's bench.py with the variables the orchestrator sets (its op and tags, read from its PEP 723 block
    by the orchestrator's own reader), on its op's smoke suite."""
    sys.path.insert(0, str(REPO))
    from orchestrator.model.job import load_job

    job = load_job(REPO / "impls" / name / "bench.py", name)
    env = {**os.environ, "ORCH_OUT": str(tmp_path), "ORCH_WORKLOADS": "smoke", "ORCH_OP": job.op,
           "ORCH_TAGS": json.dumps(job.tags), "ORCH_IMPL": name, "PYTHONPATH": str(REPO / "shared")}
    res = subprocess.run([sys.executable, str(job.script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    path = tmp_path / "results.jsonl"
    return res, [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("op", FAMILIES)
def test_each_familys_torch_eager_impl_runs_smoke_correctly(op, tmp_path):
    res, recs = run_impl(f"{op}_torch", tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert [r["wl"]["name"] for r in recs] == [w.name for w in load_suite("smoke", op).workloads]
    for r in recs:
        assert r["schema"] == 3 and r["op"] == op and r["mode"] == "fwd" and r["status"] == "ok" and r["ok"], r
        assert r["gbps"] > 0 and r["pct_bandwidth"] is None and r["l2"]["policy"] == "cold", r
        assert r["tags"]["family"] == "torch-eager"


def test_only_a_result_that_could_sit_in_l2_is_flagged_resident_above_the_copy_bandwidth():
    from opbench.schema import l2_resident

    cold = {"policy": "cold", "method": "one call's inputs exceed 3x the 60 MiB L2"}
    hot = {"policy": "hot", "method": "inputs reused by the calls of a replay"}
    assert not l2_resident(4300.0, 4205.0, cold)  # read-heavy traffic outrunning a 1:1 copy, inputs >> L2
    assert l2_resident(9000.0, 4205.0, hot) and not l2_resident(4000.0, 4205.0, hot)
    assert l2_resident(9000.0, 4205.0, {"policy": "cold", "method": "L2 size unknown"})
    assert not l2_resident(9000.0, None, hot)
