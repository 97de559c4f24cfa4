"""Pure parts of the harness: statistics, the stopping rule, tolerances, records, script metadata."""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

from opbench import script  # noqa: E402
from opbench.accuracy import judge, tolerance_for  # noqa: E402
from opbench.errors import HarnessError, one_line  # noqa: E402
from opbench.record import Env, Record  # noqa: E402
from opbench.stats import Latency, median_ci, median_stable, quantile, summarize  # noqa: E402
from opbench.suite import Workload  # noqa: E402

WL = Workload.attention("w", 1, 16, 2, 2, 8, "bfloat16", False)
ENV = Env("cpu: test", None, None, None, "2.x", "3.11", {"torch": "2.x"})


def test_quantiles_interpolate_linearly_like_numpy():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert quantile(xs, 0.1) == pytest.approx(1.3)
    assert quantile(xs, 0.5) == pytest.approx(2.5)
    assert quantile(xs, 0.9) == pytest.approx(3.7)
    assert quantile([5.0], 0.9) == 5.0


def test_summary_keeps_raw_times_and_reports_every_statistic():
    raw = [3.0, 1.0, 2.0, 4.0, 10.0]
    lat = summarize(raw, "events")
    assert lat.raw == tuple(raw) and lat.reps == 5 and lat.mode == "events"
    assert (lat.min, lat.max, lat.p50) == (1.0, 10.0, 3.0)
    assert lat.mean == pytest.approx(4.0)
    assert lat.std == pytest.approx(statistics.stdev(raw))
    assert lat.p10 == pytest.approx(1.4) and lat.p90 == pytest.approx(7.6)
    assert set(lat.to_json()) == {"mean", "p10", "p50", "p90", "min", "max", "std", "reps", "raw", "mode", "calls", "ci95", "unstable",
                                  "cold_p50"}
    assert lat.calls == 1 and lat.cold_p50 is None
    cold = summarize([2.0, 9.0, 4.0], "graph", calls=29, cold_ms=[5.0, 1.0, 3.0])
    assert (cold.calls, cold.cold_p50) == (29, 3.0)


def test_median_ci_brackets_the_median_and_narrows_with_more_reps():
    few = [1.0 + 0.01 * i for i in range(10)]
    many = [1.0 + 0.001 * (i % 10) for i in range(400)]
    lo, hi = median_ci(few)
    assert lo <= quantile(sorted(few), 0.5) <= hi
    lo2, hi2 = median_ci(many)
    assert hi2 - lo2 < hi - lo


def test_stopping_rule_needs_min_reps_and_a_tight_median():
    assert not median_stable([1.0] * 5, rel=0.01, min_reps=10)
    assert median_stable([1.0] * 10, rel=0.01, min_reps=10)
    spread = [1.0, 2.0] * 10
    assert not median_stable(spread, rel=0.01, min_reps=10)


def test_default_tolerances_are_dtype_aware_and_impls_can_declare_their_own():
    assert tolerance_for("float32") < tolerance_for("float16") < tolerance_for("bfloat16")
    assert 2.2e-3 < tolerance_for("bfloat16") < 1.3e-2  # exact bf16 passes, an int8-quantized result does not
    assert tolerance_for("bfloat16", 0.03) == 0.03
    assert tolerance_for("float16", {"float16": 0.02}) == 0.02
    assert tolerance_for("float32", {"float16": 0.02}) == tolerance_for("float32")


def test_verdict_flags_large_error_and_never_passes_nan():
    assert judge(1e-3, 2e-3, True, 1e-2).ok
    assert not judge(0.5, 0.3, True, 1e-2).ok
    bad = judge(math.nan, math.nan, False, 1e-2)
    assert not bad.ok and bad.rel_l2 is None and bad.max_abs is None
    assert not judge(1e-3, 1e-3, False, 1e-2).ok  # finite metrics but an Inf somewhere still fails


def test_record_line_is_strict_json_and_round_trips():
    lat = summarize([1.0, 1.1, 0.9], "graph")
    rec = Record("impl_a", WL, "ok", {"family": "f", "backend": "b", "compile": "none"}, ENV, lat_ms=lat,
                 compile_ms=5.0, peak_bytes=123, tflops=1.5, pct_peak=None, ok=True,
                 err=judge(1e-3, 2e-3, True, 1e-2))
    data = json.loads(rec.to_line())
    assert list(data) == ["schema", "op", "mode", "impl", "wl", "lat_ms", "compile_ms", "peak_bytes", "tflops",
                          "pct_peak", "gbps", "pct_bandwidth", "l2", "ok", "err", "grad_err", "tags", "env", "status",
                          "reason", "clocks"]
    assert data["schema"] == 3 and data["op"] == "attention" and data["mode"] == "fwd" and data["grad_err"] is None
    assert data["clocks"] is None  # no NVML reading given (the CPU's records)
    assert set(data["wl"]) == {"name", "batch", "seq_len", "heads", "kv_heads", "head_dim", "dtype", "causal"}
    assert set(data["env"]) == {"device", "sm", "driver", "cuda", "torch", "python", "packages", "peak_tflops",
                                "copy_gbps"}
    assert set(data["err"]) == {"max_abs", "rel_l2", "tol"}
    assert Record.from_json(data).to_json() == data


def test_record_refuses_unknown_status():
    with pytest.raises(ValueError):
        Record("x", WL, "failed", {}, ENV)


def test_tags_come_from_the_variable_the_orchestrator_sets(tmp_path, monkeypatch):
    """The orchestrator is the one reader of the PEP 723 block: it hands the tags over in $ORCH_TAGS."""
    path = tmp_path / "my_impl" / "bench.py"
    path.parent.mkdir()
    path.write_text("print()\n")
    monkeypatch.setenv("ORCH_TAGS", json.dumps({"family": "torch-sdpa", "backend": "MATH", "compile": "none", "extra": 1}))
    assert script.resolve_tags(path, None) == {"backend": "MATH", "compile": "none", "extra": 1, "family": "torch-sdpa"}
    assert script.resolve_tags(path, {"backend": "X"})["backend"] == "X"
    assert script.impl_name(path, None) == "my_impl"


def test_missing_tags_or_bad_impl_name_are_one_line_errors(tmp_path, monkeypatch):
    path = tmp_path / "bench.py"
    path.write_text("print()\n")
    monkeypatch.setenv("ORCH_TAGS", '{"family": "x"}')
    with pytest.raises(HarnessError, match="missing backend, compile"):
        script.resolve_tags(path, None)
    monkeypatch.setenv("ORCH_TAGS", "[1]")
    with pytest.raises(HarnessError, match="ORCH_TAGS: expected a JSON table"):
        script.resolve_tags(path, None)
    monkeypatch.setenv("ORCH_IMPL", "Bad-Name")
    with pytest.raises(HarnessError, match=r"\[a-z0-9_\]\+"):
        script.impl_name(path, None)
    monkeypatch.setenv("ORCH_IMPL", "from_env")
    assert script.impl_name(path, "given") == "from_env"


def test_one_line_keeps_type_and_first_line_only():
    assert one_line(RuntimeError("CUDA out of memory.\nTried to allocate")) == "RuntimeError: CUDA out of memory."
    assert len(one_line(ValueError("x" * 1000))) <= 400


def test_importing_opbench_loads_no_heavy_package():
    import subprocess

    code = "import sys, opbench; print(sorted(m for m in ('torch', 'numpy', 'jax') if m in sys.modules))"
    shared = str(Path(__file__).resolve().parents[1] / "shared")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": shared}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cold_single_calls_come_from_the_cold_timer_or_from_the_reps_of_a_one_call_graph():
    from opbench.runner import COLD_REPS, Options, timed_reps
    from opbench.torch_timing import RepTimer

    opts = Options(settle_s=0.0, time_cap_s=0.05)
    many = RepTimer("graph", lambda n: [1.0] * n, calls=8, cold=lambda n: [1.2] * n)
    raw, cold = timed_reps(many, opts, cuda=False)
    assert set(raw) == {1.0} and cold == [1.2] * COLD_REPS
    one = RepTimer("graph", lambda n: [2.0] * n)  # one call per replay: the reps are the cold calls
    raw, cold = timed_reps(one, opts, cuda=False)
    assert cold is raw
    raw, cold = timed_reps(RepTimer("host", lambda n: [3.0] * n), opts, cuda=False)
    assert cold is None


def test_a_contended_measurement_is_flagged_unstable_and_a_steady_one_is_not():
    steady = summarize([1.00, 1.01, 0.99, 1.00, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00], "host")
    assert steady.unstable is False and steady.ci95[0] <= steady.p50 <= steady.ci95[1]
    contended = summarize([1.129, 1.13, 31.995, 1.2, 25.0, 1.15, 30.1, 1.14, 28.0, 1.13], "host")
    assert contended.unstable is True
    assert contended.to_json()["unstable"] is True and Latency.from_json(contended.to_json()) == contended
