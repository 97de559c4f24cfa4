"""compare A B: a real 20% slowdown on many raw samples is flagged (exit 1); two draws of one distribution are not."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.report.compare import compare, mann_whitney
from orchestrator.errors import UserError

REPO = Path(__file__).resolve().parents[1]
IMPLS = ("torch_flash", "torch_cudnn", "flash_attn2")
WORKLOADS = (("flux_L128", 0.055), ("flux_L512", 0.085))


def write_results(folder: Path, seed: int, slow: dict | None = None, n: int = 200, finished: str = "2025-06-01T10:00:00"):
    """One artifact folder per impl (results.jsonl + manifest.json); slow maps (impl, workload) -> factor."""
    rng = random.Random(seed)
    for impl in IMPLS:
        entry = folder / impl / f"key{seed}"
        entry.mkdir(parents=True)
        lines = []
        for wl, p50 in WORKLOADS:
            factor = (slow or {}).get((impl, wl), 1.0)
            raw = [round(p50 * factor * rng.lognormvariate(0, 0.03), 6) for _ in range(n)]
            lat = {"p50": sorted(raw)[n // 2], "raw": raw, "reps": n, "mode": "cuda_event"}
            lines.append(json.dumps({"impl": impl, "wl": {"name": wl}, "lat_ms": lat, "ok": True, "status": "ok"}))
        lines.append(json.dumps({"impl": impl, "wl": {"name": "skipped_wl"}, "status": "skipped", "reason": "x"}))
        (entry / "results.jsonl").write_text("\n".join(lines) + "\n")
        (entry / "manifest.json").write_text(json.dumps({"name": impl, "finished": finished}))
    return folder


def run(a, b, **kw) -> tuple[int, str]:
    buf = io.StringIO()
    return compare(a, b, out=buf, **kw), buf.getvalue()


def test_mann_whitney_matches_the_normal_approximation_with_tie_correction():
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(0.0808556, abs=1e-6)
    assert mann_whitney([1, 1, 2, 3, 3], [2, 3, 3, 4, 4, 5]) == pytest.approx(0.0598090, abs=1e-6)
    assert mann_whitney([2.0] * 5, [2.0] * 7) == 1.0


def test_a_real_20_percent_slowdown_is_flagged_and_exits_1(tmp_path):
    a = write_results(tmp_path / "a", seed=1)
    b = write_results(tmp_path / "b", seed=2, slow={("torch_cudnn", "flux_L512"): 1.2})
    code, text = run(a, b)
    assert code == 1
    flagged = [line for line in text.splitlines() if "SLOWER" in line]
    assert len(flagged) == 1 and flagged[0].startswith("torch_cudnn") and "flux_L512" in flagged[0]
    assert "6 compared, 1 regression(s)" in text


def test_two_draws_of_the_same_distribution_exit_0(tmp_path):
    a = write_results(tmp_path / "a", seed=1)
    b = write_results(tmp_path / "b", seed=2)
    code, text = run(a, b)
    assert code == 0, text
    assert "SLOWER" not in text and "0 regression(s)" in text


def test_a_slowdown_below_the_threshold_or_too_noisy_is_not_a_regression(tmp_path):
    a = write_results(tmp_path / "a", seed=1, n=8)
    b = write_results(tmp_path / "b", seed=2, n=8, slow={("torch_flash", "flux_L128"): 1.03})
    assert run(a, b)[0] == 0
    assert run(a, b, threshold=0.01, alpha=1e-9)[0] == 0  # significant at no sane alpha with 8 samples


def test_a_combine_folder_reads_its_upstreams_and_the_newest_run_wins(tmp_path):
    artifacts = write_results(tmp_path / "artifacts", seed=1)
    write_results(tmp_path / "artifacts", seed=3, slow={("flash_attn2", "flux_L128"): 1.25}, finished="2025-06-02T00:00:00")
    combine = tmp_path / "artifacts" / "combine" / "ckey"
    combine.mkdir(parents=True)
    doc = {i: {"status": "ok", "entry": str(artifacts / i / "key1")} for i in IMPLS}
    (combine / "upstreams.json").write_text(json.dumps(doc))
    code, text = run(combine, artifacts)  # A: the run combine saw; B: the whole tree, where seed 3 is newer
    assert code == 1 and "flash_attn2: results of 2 runs" in text
    assert [line.split()[0] for line in text.splitlines() if "SLOWER" in line] == ["flash_attn2"]


def test_a_folder_without_results_is_a_one_line_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no measured result records"):
        run(write_results(tmp_path / "a", seed=1), tmp_path / "empty")
    with pytest.raises(UserError, match="not a folder"):
        run(tmp_path / "nope", tmp_path / "empty")


def test_importing_compare_is_cheap():
    code = "import sys, orchestrator.report.compare as c; print(sorted(m for m in ('statistics', 'numpy', 'scipy') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def _one_impl(folder: Path, key: str, p50: float, finished, n: int = 50, seed: int = 0, lat=None) -> Path:
    rng = random.Random(seed)
    entry = folder / "torch_flash" / key
    entry.mkdir(parents=True)
    raw = [round(p50 * rng.lognormvariate(0, 0.02), 6) for _ in range(n)]
    lat = lat if lat is not None else {"p50": sorted(raw)[n // 2], "raw": raw}
    (entry / "results.jsonl").write_text(json.dumps({"impl": "torch_flash", "wl": {"name": "w"}, "lat_ms": lat,
                                                     "ok": True, "status": "ok"}) + "\n")
    (entry / "manifest.json").write_text(json.dumps({"name": "torch_flash", "finished": finished}))
    return entry


def test_the_newest_run_is_chosen_by_the_manifests_float_finished_time_not_the_files_mtime(tmp_path):
    a = tmp_path / "a"
    _one_impl(a, "k0", 1.0, 1000.0)
    b = tmp_path / "b"
    old = _one_impl(b, "old", 1.0, 1000.0, seed=1)
    _one_impl(b, "new", 2.0, 2000.0, seed=2)  # the newer run is 2x slower
    os.utime(old / "results.jsonl", (3e9, 3e9))  # touching the old file must not hide that
    code, text = run(a, b)
    assert code == 1 and "SLOWER" in text, text  # before: the touched old run won and the row read "same"
    assert "torch_flash: results of 2 runs" in text and "2065-" not in text and "1970-01-01 00:33:20 UTC" in text


@pytest.mark.parametrize("lat", [{"p50": float("nan")}, {"p50": None}, {}, {"raw": [float("nan")]}],
                         ids=["nan", "null", "missing", "nan_raw"])
def test_a_nan_or_missing_median_is_not_comparable_never_same(tmp_path, lat):
    a = tmp_path / "a"
    _one_impl(a, "k", 1.0, 1000.0, lat=lat)
    b = tmp_path / "b"
    _one_impl(b, "k", 1.0, 2000.0)
    code, text = run(a, b)
    row = next(line for line in text.splitlines() if line.startswith("torch_flash"))
    assert "not comparable" in row and "same" not in row, text  # before: "same" for NaN, dropped when missing
    assert "1 not comparable" in text


def test_nothing_in_common_exits_2(tmp_path):
    a = write_results(tmp_path / "a", seed=1)
    b = tmp_path / "b"
    _one_impl(b, "k", 1.0, 1.0)
    (b / "torch_flash" / "k" / "results.jsonl").write_text(json.dumps(
        {"impl": "other_impl", "wl": {"name": "w"}, "lat_ms": {"p50": 1.0}, "status": "ok"}) + "\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "orchestrator", "compare", str(a), str(b)], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 2, out.stdout + out.stderr  # before: exit 0, "no impl x workload measured in both"
    assert len(out.stderr.strip().splitlines()) == 1 and "nothing to compare" in out.stderr


@pytest.mark.parametrize("cwd,arg", [(REPO, "results/h100"), (REPO / "results", "h100"), (None, str(REPO / "results" / "h100"))],
                         ids=["repo_root", "results_folder", "elsewhere_absolute"])
def test_compare_the_published_results_with_themselves_from_any_cwd(tmp_path, cwd, arg):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "orchestrator", "compare", arg, arg], capture_output=True, text=True,
                         env=env, cwd=cwd or tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr  # before: "results/h100: no measured result records found"
    compared = int(out.stdout.strip().splitlines()[-1].split()[0])
    assert compared > 50 and "0 regression(s)" in out.stdout
    assert "note:" not in out.stdout  # before (through a combine folder's records): "results of 2 runs" per impl


def _moded(folder: Path, rows: dict, finished: str = "2025-06-01T10:00:00", seed: int = 0) -> Path:
    """One impl's entry of schema 3 records: rows maps (workload, mode) -> p50."""
    rng = random.Random(seed)
    entry = folder / "torch_flash" / f"k{seed}"
    entry.mkdir(parents=True)
    lines = []
    for (wl, mode), p50 in rows.items():
        raw = [round(p50 * rng.lognormvariate(0, 0.02), 6) for _ in range(100)]
        lines.append(json.dumps({"schema": 3, "op": "attention", "mode": mode, "impl": "torch_flash", "wl": {"name": wl},
                                 "lat_ms": {"p50": sorted(raw)[50], "raw": raw}, "ok": True, "status": "ok"}))
    (entry / "results.jsonl").write_text("\n".join(lines) + "\n")
    (entry / "manifest.json").write_text(json.dumps({"name": "torch_flash", "finished": finished}))
    return folder


def test_a_backward_is_compared_with_the_backward_of_the_same_workload(tmp_path):
    a = _moded(tmp_path / "a", {("w", "fwd"): 1.0, ("w", "bwd"): 2.5})
    b = _moded(tmp_path / "b", {("w", "fwd"): 1.0, ("w", "bwd"): 3.0, ("w", "fwd_bwd"): 4.0}, seed=1)
    code, text = run(a, b)
    assert code == 1, text
    rows = {tuple(line.split()[1:3]): line for line in text.splitlines() if line.startswith("torch_flash ")}
    assert set(rows) == {("w", "fwd"), ("w", "bwd")}  # never the forward's 1.0 against the backward's 3.0
    assert "SLOWER" in rows[("w", "bwd")] and "SLOWER" not in rows[("w", "fwd")]
    assert text.splitlines()[4].split()[:3] == ["impl", "workload", "mode"]
    assert "only in B:\n  torch_flash: w [fwd_bwd]\n" in text


def test_results_one_side_has_alone_are_a_short_line_per_impl(tmp_path):
    """Two result sets of different suites share little: what each has alone is named per impl, the first few
    workloads and a count, never one line of every result."""
    a = _moded(tmp_path / "a", {("w", "fwd"): 1.0})
    b = _moded(tmp_path / "b", {("w", "fwd"): 1.0, **{(f"only_{i:02d}", "bwd"): 2.0 for i in range(30)}}, seed=1)
    code, text = run(a, b)
    assert code == 0, text
    assert "only in B:\n  torch_flash: only_00 [bwd], only_01 [bwd], only_02 [bwd], only_03 [bwd], … 26 more\n" in text
    assert max(len(line) for line in text.splitlines()) < 200


def test_records_without_a_mode_are_forwards(tmp_path):
    a = write_results(tmp_path / "a", seed=1)  # no schema, no mode: forwards
    b = tmp_path / "b"
    for impl in IMPLS:
        entry = b / impl / "k"
        entry.mkdir(parents=True)
        lines = [json.dumps({"schema": 3, "op": "attention", "mode": "bwd", "impl": impl, "wl": {"name": wl},
                             "lat_ms": {"p50": 9.0, "raw": [9.0] * 10}, "ok": True, "status": "ok"})
                 for wl, _ in WORKLOADS]
        (entry / "results.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="no impl x workload x mode in common"):
        run(a, b)
