"""The harness's training modes on the CPU with real torch: fwd, bwd and fwd_bwd records for attention (SDPA MATH
and FLASH) and every family's torch eager function, each gradient checked against the fp32 reference's, the work
counts of each mode, a wrong backward caught, an impl without a backward skipped with its reason, $ORCH_MODE
validated."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numpy")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "shared"))

import opbench  # noqa: E402
from opbench import eager, ops, sdpa  # noqa: E402
from opbench.record import Record  # noqa: E402
from opbench.suite import Workload, load_suite  # noqa: E402
from opbench.torch_backend import TorchBackend  # noqa: E402

TAGS = {"family": "test", "backend": "MATH", "compile": "none"}
FAST = {"warmup_s": 0.0, "time_cap_s": 0.02, "min_reps": 3}
ATTENTION = """
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
GRADS = {"attention": ["dq", "dk", "dv"], "rms_norm": ["dx", "dweight"], "layer_norm": ["dx", "dweight", "dbias"],
         "rotary": ["dq", "dk"], "swiglu": ["dx"]}
MODES = ("fwd", "bwd", "fwd_bwd")


@pytest.fixture
def harness(tmp_path, monkeypatch):
    """opbench.run in-process in the given modes; returns (exit code, records by (workload, mode), out folder)."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("ORCH_OUT", str(out))
    monkeypatch.setenv("ORCH_IMPL", "fake_impl")
    monkeypatch.delenv("ORCH_OP", raising=False)

    def go(fn, mode="fwd,bwd,fwd_bwd", suite=ATTENTION, **kw):
        path = tmp_path / "suite.toml"
        path.write_text(suite)
        monkeypatch.setenv("ORCH_WORKLOADS", str(path) if "[[workload]]" in suite else suite)
        monkeypatch.setenv("ORCH_MODE", mode)
        code = opbench.run(fn, **{"tags": TAGS, "requires_cuda": False, **FAST, **kw})
        lines = (out / "results.jsonl").read_text().splitlines() if (out / "results.jsonl").exists() else []
        return code, {(r["wl"]["name"], r["mode"]): r for r in map(json.loads, lines)}, out

    return go


def work(rec: dict) -> tuple[float, float]:
    """The FLOPs and bytes a record's rates stand for (rate x its median)."""
    p50 = rec["lat_ms"]["p50"]
    return rec["tflops"] * p50 * 1e9, rec["gbps"] * p50 * 1e6


def test_attention_math_in_every_mode_checks_each_gradient_and_counts_its_work(harness):
    code, recs, _ = harness(sdpa.backend_attend("MATH"), prepare=sdpa.to_bhsd)
    assert code == 0
    assert list(recs) == [(w, m) for w in ("plain", "causal_gqa", "half") for m in MODES]
    for (name, mode), rec in recs.items():
        assert rec["schema"] == 3 and rec["mode"] == mode and rec["status"] == "ok" and rec["ok"] is True, rec
        wl = Workload.from_json(rec["wl"], "attention")
        flops, nbytes = work(rec)
        assert flops == pytest.approx({"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5}[mode] * wl.flops, rel=1e-3)
        assert nbytes == pytest.approx(wl.spec.work(wl, mode)[1], rel=1e-3)
        if mode == "fwd":
            assert rec["grad_err"] is None
            continue
        assert sorted(rec["grad_err"]) == sorted(GRADS["attention"])
        assert rec["err"]["rel_l2"] == max(rec["grad_err"].values()) or mode == "fwd_bwd"
        assert rec["err"]["tol"] == 2 * recs[(name, "fwd")]["err"]["tol"] or mode == "fwd_bwd"
    assert recs[("causal_gqa", "bwd")]["wl"]["kv_heads"] == 2  # dk, dv of the kv heads, summed over their group
    assert max(recs[("half", "bwd")]["grad_err"].values()) > 1e-4  # bf16 rounding is seen, not hidden
    assert max(recs[("plain", "bwd")]["grad_err"].values()) < 1e-5


def test_causal_halves_the_backward_work_too():
    full = Workload.attention("a", 1, 64, 2, 2, 8, "bfloat16", False)
    half = Workload.attention("a", 1, 64, 2, 2, 8, "bfloat16", True)
    for mode, factor in (("fwd", 1.0), ("bwd", 2.5), ("fwd_bwd", 3.5)):
        assert full.spec.work(full, mode)[0] == factor * 4 * 64 * 64 * 2 * 8
        assert half.spec.work(half, mode)[0] == full.spec.work(full, mode)[0] / 2


def test_flash_on_the_cpu_runs_its_own_backward(harness):
    """The SDPA backend is chosen at the forward and its backward kernel follows it (no context needed there)."""
    wl = Workload.attention("a", 1, 32, 2, 2, 16, "float32", False)
    q, k, v = (t.requires_grad_() for t in TorchBackend.create().inputs(wl))
    out = sdpa.backend_attend("FLASH_ATTENTION")(*sdpa.to_bhsd(q, k, v, wl))
    fns, node = [], out.grad_fn
    while node is not None and len(fns) < 5:
        fns.append(type(node).__name__)
        node = node.next_functions[0][0] if node.next_functions else None
    assert any("FlashAttention" in f for f in fns), fns
    code, recs, _ = harness(sdpa.backend_attend("FLASH_ATTENTION"), mode="bwd", prepare=sdpa.to_bhsd)
    assert code == 0 and all(r["ok"] for r in recs.values()), recs


BYTES = {  # what each family's backward must read and write at least, written out here independently
    "rms_norm": lambda w, e: e * (3 * w.batch * w.seq_len * w.hidden + 2 * w.hidden),
    "layer_norm": lambda w, e: e * (3 * w.batch * w.seq_len * w.hidden + 3 * w.hidden),
    "rotary": lambda w, e: e * (4 * w.batch * w.seq_len * w.heads * w.head_dim + 2 * w.seq_len * w.head_dim),
    "swiglu": lambda w, e: e * 5 * w.tokens * w.dim,
}


@pytest.mark.parametrize("op", sorted(GRADS.keys() - {"attention"}))
def test_each_familys_eager_function_in_every_mode(harness, op):
    code, recs, _ = harness(eager.FUNCTIONS[op], suite="smoke", op=op)
    suite = load_suite("smoke", op)
    assert code == 0
    assert list(recs) == [(w.name, m) for w in suite.workloads for m in MODES]
    for (_name, mode), rec in recs.items():
        assert rec["op"] == op and rec["mode"] == mode and rec["status"] == "ok" and rec["ok"] is True, rec
        wl = Workload.from_json(rec["wl"], op)
        elt = {"float32": 4, "float16": 2, "bfloat16": 2}[wl.dtype]
        want = {"fwd": wl.bytes, "bwd": BYTES[op](wl, elt), "fwd_bwd": wl.bytes + BYTES[op](wl, elt)}[mode]
        assert work(rec)[1] == pytest.approx(want, rel=1e-3)
        assert rec["l2"]["policy"] == "cold"
        if mode != "fwd":
            assert sorted(rec["grad_err"]) == sorted(GRADS[op]), rec["grad_err"]
            assert all(v is not None and v < rec["err"]["tol"] for v in rec["grad_err"].values())


class DoubledBackward(torch.autograd.Function):
    """rms_norm's forward, right; its backward twice the true gradient (a wrong kernel's)."""

    @staticmethod
    def forward(ctx, x, w, eps):
        with torch.enable_grad():
            xd, wd = x.detach().requires_grad_(), w.detach().requires_grad_()
            y = torch.nn.functional.rms_norm(xd, (x.shape[-1],), wd, eps)
        ctx.save_for_backward(xd, wd, y)
        return y.detach()

    @staticmethod
    def backward(ctx, dy):
        xd, wd, y = ctx.saved_tensors
        dx, dw = torch.autograd.grad(y, (xd, wd), dy, retain_graph=True)
        return 2 * dx, dw, None


def test_a_wrong_backward_is_flagged_while_its_forward_is_ok(harness):
    code, recs, _ = harness(lambda x, w, eps: DoubledBackward.apply(x, w, eps), suite="smoke", op="rms_norm")
    assert code == 0
    for (_name, mode), rec in recs.items():
        assert rec["status"] == "ok" and rec["lat_ms"]["p50"] > 0, rec  # measured, kept, flagged
        if mode == "fwd":
            assert rec["ok"] is True
            continue
        assert rec["ok"] is False and "gradient dx" in rec["reason"], rec["reason"]
        assert rec["grad_err"]["dx"] > 0.5 and rec["grad_err"]["dweight"] < rec["err"]["tol"]
        assert rec["err"]["rel_l2"] == rec["grad_err"]["dx"]


def test_an_impl_without_a_backward_is_skipped_in_those_modes_with_its_reason(harness):
    why = "a forward-only kernel"
    code, recs, out = harness(sdpa.backend_attend("MATH"), prepare=sdpa.to_bhsd, backward=why)
    assert code == 0
    for (_name, mode), rec in recs.items():
        if mode == "fwd":
            assert rec["status"] == "ok" and rec["ok"] is True
        else:
            assert rec["status"] == "skipped" and rec["reason"] == f"no backward: {why}" and rec["lat_ms"] is None
    code, recs, out = harness(sdpa.backend_attend("MATH"), mode="bwd", prepare=sdpa.to_bhsd, backward=why)
    assert code == opbench.SKIP_EXIT and {r["status"] for r in recs.values()} == {"skipped"}
    assert (out / "skipped.txt").read_text().strip() == f"no backward: {why}"


def test_phases_json_times_each_workload_and_mode_by_the_same_steps_beside_unchanged_records(harness):
    from opbench.reps import PHASE_KEYS

    code, recs, out = harness(sdpa.backend_attend("MATH"), mode="fwd,bwd", prepare=sdpa.to_bhsd)
    assert code == 0 and list(recs) == [(w, m) for w in ("plain", "causal_gqa", "half") for m in ("fwd", "bwd")]
    assert sorted(p.name for p in out.iterdir()) == ["phases.json", "results.jsonl"]  # the tmp file is renamed
    doc = json.loads((out / "phases.json").read_text())
    assert doc["format"] == 1 and doc["ready_s"] >= 0 and doc["ceilings_s"] >= 0
    assert sorted(doc["workloads"]) == ["causal_gqa", "half", "plain"]
    for name, modes in doc["workloads"].items():
        assert sorted(modes) == ["bwd", "fwd"], name
        for mode, steps in modes.items():
            assert tuple(sorted(steps)) == tuple(sorted(PHASE_KEYS)), (name, mode)
            assert all(isinstance(v, float) and v >= 0 for v in steps.values()), steps
            assert steps["first_call_s"] > 0 and steps["reps_s"] > 0, (name, mode, steps)
    why = "a forward-only kernel"  # a mode not taken is timed as nothing, under the same keys
    code, recs, out = harness(sdpa.backend_attend("MATH"), mode="fwd,bwd", prepare=sdpa.to_bhsd, backward=why)
    doc = json.loads((out / "phases.json").read_text())
    assert set(doc["workloads"]["plain"]["bwd"].values()) == {0.0} and doc["workloads"]["plain"]["fwd"]["reps_s"] > 0


def test_the_process_age_is_read_from_proc_and_grows():
    import time

    from opbench.phases import process_age

    a = process_age()
    time.sleep(0.05)
    assert 0 < a < process_age()


def test_an_output_without_autograd_is_an_error_never_a_forward_timed_as_backward(harness):
    def detached(q, k, v, causal):
        return sdpa.backend_attend("MATH")(q, k, v, causal).detach()

    code, recs, _ = harness(detached, mode="fwd,bwd", prepare=sdpa.to_bhsd)
    assert code == 0
    assert all(recs[(w, "fwd")]["ok"] for w in ("plain", "half"))
    bwd = [r for (_, m), r in recs.items() if m == "bwd"]
    assert bwd and all(r["status"] == "error" and "no autograd graph" in r["reason"] for r in bwd), bwd


@pytest.mark.parametrize("value", ["bwdd", "fwd,sideways", "FWD"])
def test_an_unknown_mode_is_a_one_line_error_naming_it(harness, capsys, value):
    code, recs, _ = harness(sdpa.backend_attend("MATH"), mode=value, prepare=sdpa.to_bhsd)
    err = capsys.readouterr().err.strip()
    assert code == 2 and not recs
    bad = [p for p in value.split(",") if p not in MODES][0]
    assert err.count("\n") == 0 and "ORCH_MODE" in err and repr(bad) in err, err


def test_no_mode_is_the_forward_and_repeats_are_dropped(harness):
    _, recs, _ = harness(sdpa.backend_attend("MATH"), mode="", prepare=sdpa.to_bhsd)
    assert {m for _, m in recs} == {"fwd"}
    _, recs, _ = harness(sdpa.backend_attend("MATH"), mode="bwd, fwd,bwd", prepare=sdpa.to_bhsd)
    assert list(recs)[:2] == [("plain", "bwd"), ("plain", "fwd")] and len(recs) == 6


@pytest.mark.parametrize("mode", ["bwd", "fwd_bwd"])
def test_every_input_copy_has_its_own_forward_and_gives_the_same_gradients(mode):
    """The L2-cold rotation's copies (made on CUDA; the CPU times one set): each is a forward of its own whose
    backward gives the reference's gradients, carried back through prepare."""
    backend = TorchBackend.create()
    wl = Workload.make("swiglu", "s", "float32", tokens=8, dim=16)
    inputs, dys = backend.inputs(wl), backend.upstream(wl)
    ref = backend.grad_reference(inputs, dys, wl)

    def split(x, wl):  # a prepare that changes layout, as Liger's SwiGLU has
        return x[..., : wl.dim].contiguous(), x[..., wl.dim:].contiguous()

    task = backend.grad_task(lambda a, b: torch.nn.functional.silu(a) * b, inputs, dys, wl, split, None, mode)
    grads, out, ms = task.first()
    copy = task._copy()
    assert copy[0] is not task.first_set[0]
    again = task.canonical(task.call_on(*copy))
    for g in (grads, again):
        assert torch.allclose(g["dx"], ref["dx"], atol=1e-6) and g["dx"].shape == (8, 32)
    assert all(leaf.grad is None for leaf in task.leaves)  # autograd.grad: nothing accumulates between reps
    assert (out is not None) == (mode == "fwd_bwd") and ms > 0


def test_records_of_every_schema_read_with_their_mode():
    wl = Workload.make("swiglu", "s", "bfloat16", tokens=8, dim=16)
    env = opbench.Env("cpu", None, None, None, None, "3.11")
    bwd = Record("x", wl, "skipped", TAGS, env, reason="r", mode="bwd", grad_err={"dx": 0.01})
    data = json.loads(bwd.to_line())
    assert data["mode"] == "bwd" and data["grad_err"] == {"dx": 0.01} and Record.from_json(data) == bwd
    old = {**data, "schema": 2}
    old.pop("mode")
    assert Record.from_json(old).mode == "fwd"  # schema 2 is a forward
    with pytest.raises(ValueError, match="mode"):
        Record.from_json({**data, "mode": "sideways"})
    assert ops.MODES == MODES


# -- the impls: who has a backward -------------------------------------------------------------------------------

NO_BACKWARD = {"sage_attention", "rms_norm_hf", "layer_norm_hf", "rotary_hf", "swiglu_hf"}


def impl_run_kwargs(name: str) -> dict:
    """What impls/<name>/bench.py hands opbench.run (run as a script, opbench.run replaced)."""
    import runpy

    seen: dict = {}

    def capture(fn, **kwargs):
        seen.update(fn=fn, **kwargs)
        return 0

    real, opbench.run = opbench.run, capture
    path, modules = list(sys.path), set(sys.modules)
    try:
        runpy.run_path(str(REPO / "impls" / name / "bench.py"), run_name="__main__")
    except SystemExit:
        pass
    finally:
        opbench.run = real
        sys.path[:] = path
        for m in set(sys.modules) - modules:  # each impl's kernel.py is `kernel`: never another impl's
            if m in ("kernel", "variants"):
                del sys.modules[m]
    return seen


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "impls").iterdir() if (p / "bench.py").is_file()))
def test_only_forward_only_impls_declare_no_backward(name):
    kwargs = impl_run_kwargs(name)
    assert "fn" in kwargs, name
    if name in NO_BACKWARD:
        assert isinstance(kwargs.get("backward"), str) and len(kwargs["backward"]) > 20, kwargs.get("backward")
    else:
        assert kwargs.get("backward") is None, (name, kwargs.get("backward"))


TRITON_CHILD = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import opbench
from kernel import {fn}
raise SystemExit(opbench.run({fn}, op="{op}", requires_cuda=False, warmup_s=0.0, time_cap_s=0.01, min_reps=3,
                             tags={{"family": "triton", "backend": "x", "compile": "jit"}}))
"""


@pytest.mark.parametrize("op, fn", [("rotary", "rotary_fn"), ("swiglu", "swiglu_fn")])
def test_our_triton_rotary_and_swiglu_run_the_backward_modes_through_their_bench_functions(tmp_path, op, fn):
    """What their bench.py hands the harness, in Triton's CPU interpreter: each gradient right in bwd and fwd_bwd."""
    import os
    import subprocess

    pytest.importorskip("triton")
    assert impl_run_kwargs(f"{op}_triton")["fn"].__name__ == fn
    suite = tmp_path / "s.toml"
    row = "batch = 1\nseq_len = 6\nheads = 2\nhead_dim = 16" if op == "rotary" else "tokens = 5\ndim = 24"
    suite.write_text(f'[suite]\nop = "{op}"\n\n[[workload]]\nname = "tiny"\ndtype = "float32"\n{row}\n')
    env = {**os.environ, "TRITON_INTERPRET": "1", "ORCH_OUT": str(tmp_path), "ORCH_WORKLOADS": str(suite),
           "ORCH_IMPL": f"{op}_triton", "ORCH_MODE": "fwd,bwd,fwd_bwd", "PYTHONPATH": str(REPO / "shared")}
    res = subprocess.run([sys.executable, "-c", TRITON_CHILD.format(fn=fn, op=op), str(REPO / "impls" / f"{op}_triton")],
                         env=env, capture_output=True, text=True, timeout=600)
    if "only 0-dimensional arrays can be converted" in res.stderr:
        pytest.skip("this Triton's interpreter does not run with this NumPy")
    assert res.returncode == 0, res.stderr[-3000:]
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["mode"] for r in recs] == list(MODES)
    assert all(r["status"] == "ok" and r["ok"] for r in recs), [(r["mode"], r["reason"]) for r in recs]
    assert sorted(recs[1]["grad_err"]) == sorted(GRADS[op])


def test_every_memory_bound_hub_op_says_why_it_has_no_backward():
    from opbench import hub

    assert set(hub.NO_BACKWARD) == set(hub.OP_CALLS)
