"""The combine stage as a subprocess: CSV rows, warnings with file:line, determinism, summary.txt, bad inputs."""

from __future__ import annotations

import csv
import json

from combine_data import (IMPLS, MEASURED, NOT_MEASURED, PARTIAL, WORKLOADS, WRONG, commit, make_run, run_combine,
                          upstream, write_upstreams)

OUTPUTS = ["latency.csv", "report.html", "summary.txt", "warnings.txt"]


def rows_of(out) -> list[dict]:
    with open(out / "latency.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_csv_has_a_row_per_record_and_one_per_upstream_without_records(tmp_path):
    res = run_combine(make_run(tmp_path / "in"), tmp_path / "out")
    assert res.returncode == 0, res.stderr
    rows = rows_of(tmp_path / "out")
    assert rows[0].keys() >= {"Implementation", "Impl ID", "Op", "Mode", "Workload", "Batch", "Seq Length", "Heads",
                              "Head Dim", "Dtype", "Mean (ms)", "P10 (ms)", "P50 (ms)", "P90 (ms)", "Reps",
                              "Peak Mem (MB)", "Backend", "Family", "TFLOP/s", "% of peak", "GB/s", "% of bandwidth",
                              "ok", "status", "reason"}
    by_impl: dict = {}
    for r in rows:
        by_impl.setdefault(r["Impl ID"], []).append(r)
    assert set(by_impl) == set(IMPLS)
    assert {r["Op"] for r in rows} == {"attention"}
    assert [r["status"] for r in by_impl["jax_cudnn"]] == ["failed"]
    assert "exit status 1" in by_impl["jax_cudnn"][0]["reason"]
    assert {r["status"] for r in by_impl["xformers"]} == {"skipped"} and len(by_impl["xformers"]) == len(WORKLOADS)
    assert {r["ok"] for r in by_impl[WRONG]} == {"False"}
    errored = [r for r in by_impl[PARTIAL] if r["status"] == "error"]
    assert [r["Workload"] for r in errored] == ["flux_L512"] and "out of memory" in errored[0]["reason"]
    flash = by_impl["torch_flash"][0]
    assert flash["Workload"] == "flux_L128" and flash["Seq Length"] == "1152" and float(flash["P50 (ms)"]) > 0
    assert flash["Mode"] == "fwd" and flash["GB/s"] == "" and float(flash["TFLOP/s"]) > 100


def test_garbage_lines_are_reported_with_file_and_line_and_skipped(tmp_path):
    res = run_combine(make_run(tmp_path / "in", garbage=True), tmp_path / "out")
    assert res.returncode == 0, res.stderr
    warnings = (tmp_path / "out" / "warnings.txt").read_text().splitlines()
    assert any(w.endswith("not a JSON object; line skipped") and "results.jsonl:5:" in w for w in warnings)
    assert any("results.jsonl:3: not JSON" in w for w in warnings)
    assert any("results.jsonl:9: lat_ms.p50 is not a finite number" in w for w in warnings)
    assert all(w in res.stderr for w in warnings)
    measured = [r for r in rows_of(tmp_path / "out") if r["Impl ID"] == "torch_flash" and r["status"] == "ok"]
    assert len(measured) == len(WORKLOADS)


def test_two_runs_on_the_same_input_give_identical_bytes(tmp_path):
    up = make_run(tmp_path / "in", garbage=True)
    assert run_combine(up, tmp_path / "one").returncode == 0
    assert run_combine(up, tmp_path / "two").returncode == 0
    charts = sorted(p.name for p in (tmp_path / "one" / "charts").iterdir())
    assert len(charts) >= 3 and charts == sorted(p.name for p in (tmp_path / "two" / "charts").iterdir())
    for name in OUTPUTS + [f"charts/{c}" for c in charts]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert "<dc:date>" not in (tmp_path / "one" / "charts" / charts[0]).read_text()


def test_records_missing_optional_fields_still_render(tmp_path):
    lines = [
        {"impl": "bare", "wl": {"name": "w1"}, "lat_ms": {"p50": 1.5}},
        {"impl": "bare", "wl": {"name": "w2"}, "lat_ms": {"p50": 2.5, "raw": "oops"}, "ok": "yes"},
        {"impl": "bare", "status": "error", "reason": "kernel launch failed", "wl": {"name": "w3"}},
        {"impl": "bare", "status": "ok", "wl": {"name": "w4"}},
        {"wl": "not an object"},
    ]
    entry = commit(tmp_path / "in", "bare", extra_files={"a.jsonl": "\n".join(json.dumps(x) for x in lines) + "\n",
                                                        "b.jsonl": "\n\n"})
    up = write_upstreams(tmp_path / "in", {"bare": upstream(entry), "ghost": upstream(None, "missing")})
    res = run_combine(up, tmp_path / "out")
    assert res.returncode == 0, res.stderr
    rows = rows_of(tmp_path / "out")
    assert [(r["Impl ID"], r["Workload"], r["status"]) for r in rows] == [
        ("bare", "w1", "ok"), ("bare", "w2", "ok"), ("bare", "w3", "error"), ("bare", "w4", "error"),
        ("bare", "?", "error"), ("ghost", "", "missing")]
    svg = (tmp_path / "out" / "charts" / "attention-latency.svg").read_text()
    assert svg.count('class="series"') == 1
    assert 'class="missing-entry" data-impl="ghost"' in (tmp_path / "out" / "report.html").read_text()
    warnings = (tmp_path / "out" / "warnings.txt").read_text()
    assert "a.jsonl:2: lat_ms.raw is not a list" in warnings and "a.jsonl:2: ok is not true/false" in warnings
    assert "a.jsonl:5: wl is not an object" in warnings


def test_summary_txt_lists_every_impl_and_why_some_have_no_numbers(tmp_path):
    assert run_combine(make_run(tmp_path / "in"), tmp_path / "out").returncode == 0
    text = (tmp_path / "out" / "summary.txt").read_text(encoding="ascii")
    for name in MEASURED + NOT_MEASURED:
        assert name in text
    assert "needs compute capability 10.0" in text and "out of memory" in text
    sage = [line for line in text.splitlines() if line.startswith(WRONG)]
    assert "".join(sage).count("!") == len(WORKLOADS)


def test_no_upstreams_at_all_still_writes_every_output(tmp_path):
    up = tmp_path / "upstreams.json"
    up.write_text("{}")
    res = run_combine(up, tmp_path / "out")
    assert res.returncode == 0, res.stderr
    for name in OUTPUTS:
        assert (tmp_path / "out" / name).exists(), name
    assert "no impl produced a measurement" in (tmp_path / "out" / "summary.txt").read_text()


def test_an_unreadable_upstreams_file_is_one_line_and_status_2(tmp_path):
    up = tmp_path / "upstreams.json"
    up.write_text("[not json")
    res = run_combine(up, tmp_path / "out")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and str(up) in res.stderr


def test_synthetic_run_is_reproducible(tmp_path):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    first = (a.parent / "torch_flash").rglob("results.jsonl")
    second = (b.parent / "torch_flash").rglob("results.jsonl")
    assert [p.read_text() for p in first] == [p.read_text() for p in second]
