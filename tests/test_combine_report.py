"""The combine stage on crafted upstreams, one property each: rows ranked by the figure shown over the workloads
all ranked impls share, one chart per shape family, the report's rough edges (notes once, ISO times, small
throughputs, colours from names, key versions), unstable results flagged, hostile strings, planted files."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import xml.etree.ElementTree as ET

from combine_data import STARTED, Env, Workload, commit, measured, run_combine, upstream, write_upstreams

NS = "{http://www.w3.org/2000/svg}"
OUTPUTS = ["latency.csv", "report.html", "summary.txt", "warnings.txt"]


def charts(out) -> list:
    return sorted((out / "charts").glob("*.svg"))


def stroke(path) -> str:
    return re.search(r"stroke: (#[0-9a-f]{6})", path.get("style") or "").group(1)


def suite(prefix: str, seqs, heads: int = 24, dim: int = 128) -> list[Workload]:
    return [Workload.attention(f"{prefix}_s{s}", 1, s, heads, heads, dim, "bfloat16", False) for s in seqs]


def run(tmp_path, impls: dict, baseline: str | None = None, **commit_args):
    """impls: name -> list of (Workload, p50 ms); returns the output folder after running the real stage."""
    rng = random.Random(3)
    doc = {}
    for name, points in impls.items():
        recs = [measured(name, w, p50, rng, {"family": "test", "backend": name.upper()}) for w, p50 in points]
        doc[name] = upstream(commit(tmp_path / "in", name, recs, **commit_args), tags={"family": "test"})
    out = tmp_path / "out"
    res = run_combine(write_upstreams(tmp_path / "in", doc), out, baseline)
    assert res.returncode == 0, res.stderr
    return out


def html_rows(out) -> list[str]:
    table = re.search(r'<table class="summary" id="summary-attention">.*?</table>', (out / "report.html").read_text(),
                      re.S).group(0)
    return re.findall(r'<tr data-series="([^"]+)"', table)


def text_rows(out, names) -> list[str]:
    lines = (out / "summary.txt").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("impl "))
    return [line.split()[0] for line in lines[first + 2:first + 2 + len(names)]]


# -- row: rank by what the table shows -----------------------------------------------------------------------

def test_rows_are_ranked_by_the_shown_geomean_over_the_workloads_all_ranked_impls_share(tmp_path):
    seed = suite("seed", (1024, 2048, 4096))
    big = suite("long", (16384, 32768))
    # both_suites is the fastest on every shared workload, but also ran two slow long workloads
    out = run(tmp_path, {
        "both_suites": [(w, 0.5 * (i + 1)) for i, w in enumerate(seed)]
        + [(w, 40.0 * (i + 1)) for i, w in enumerate(big)],
        "seed_only": [(w, 0.8 * (i + 1)) for i, w in enumerate(seed)],
        "torch_math": [(w, 8.0 * (i + 1)) for i, w in enumerate(seed)],
    })
    assert html_rows(out) == ["both_suites", "seed_only", "torch_math"]
    assert text_rows(out, range(3)) == ["both_suites", "seed_only", "torch_math"]
    html = (out / "report.html").read_text()
    assert "over 3 shared workloads" in html and "over the 3 workloads every ranked impl measured" in html
    assert "over the 3 workloads every ranked impl measured (seed_s1024, seed_s2048, seed_s4096)" in \
        (out / "summary.txt").read_text()


def test_an_impl_sharing_no_workload_is_listed_unranked_after_the_others(tmp_path):
    seed, other = suite("seed", (1024, 2048)), suite("kern", (4096,), heads=32, dim=64)
    out = run(tmp_path, {"a": [(w, 2.0) for w in seed], "b": [(w, 1.0) for w in seed], "c": [(w, 0.1) for w in other]})
    assert html_rows(out) == ["b", "a", "c"]
    assert "not ranked (no workload in common with them): c" in (out / "report.html").read_text()


# -- row: lines join only workloads of one shape family -------------------------------------------------------

def test_each_shape_family_gets_its_own_chart_and_no_line_crosses_families(tmp_path):
    g1, g2 = suite("flux", (1024, 2048, 4096)), suite("kern", (1024, 2048, 4096), heads=32, dim=64)
    out = run(tmp_path, {"x": [(w, 1.0 + i) for i, w in enumerate(g1 + g2)],
                         "y": [(w, 2.0 + i) for i, w in enumerate(g1 + g2)]})
    for kind in ("latency", "throughput"):
        panels = sorted((out / "charts").glob(f"*-{kind}.svg"))
        assert [p.name for p in panels] == [f"attention-b1-h24-d128-non-causal-bfloat16-fwd-{kind}.svg",
                                            f"attention-b1-h32-d64-non-causal-bfloat16-fwd-{kind}.svg"]
        for panel, group in zip(panels, (g1, g2)):
            root = ET.parse(panel).getroot()
            labels = {"".join(t.itertext()) for t in root.iter(f"{NS}text")}
            assert {w.name for w in group} <= labels and not {w.name for w in (g2 if group is g1 else g1)} & labels
            lines = [g for g in root.iter(f"{NS}g") if g.get("class") == "series"]
            assert len(lines) == 2
            for g in lines:  # three points, one family
                assert len(re.findall(r"[ML]", next(g.iter(f"{NS}path")).get("d"))) == 3
    html = (out / "report.html").read_text()
    assert 'id="attention-b1-h24-d128-non-causal-bfloat16-fwd-latency"' in html
    assert 'id="attention-b1-h32-d64-non-causal-bfloat16-fwd-latency"' in html


# -- row: the report's rough edges ---------------------------------------------------------------------------

def test_the_not_in_this_chart_list_appears_once_and_run_times_are_iso_utc(tmp_path):
    from combine_data import make_run
    out = tmp_path / "out"
    assert run_combine(make_run(tmp_path / "in"), out).returncode == 0
    html = (out / "report.html").read_text()
    assert html.count("not in this chart:") == 1
    assert "2025-06-01T10:00:00Z → 2025-06-01T10:01:30Z" in html and str(STARTED) not in html


def test_small_throughput_is_shown_in_gflops_never_as_zero(tmp_path):
    cpu = Workload.attention("cpu_s256", 1, 256, 4, 4, 64, "float32", False)  # 67 MFLOP: 4.5 GFLOP/s at 15 ms
    out = run(tmp_path, {"cpu_impl": [(cpu, 15.0)]})
    html, text = (out / "report.html").read_text(), (out / "summary.txt").read_text()
    assert "0.0 TF" not in html and re.search(r"4\.\d+ GF/s", html)
    cell = next(line for line in text.splitlines() if line.startswith("cpu_impl"))
    assert re.search(r"4\.\d+G$", cell) and " 0.0" not in cell
    row = next(csv.DictReader(io.StringIO((out / "latency.csv").read_text())))
    assert 0.004 < float(row["TFLOP/s"]) < 0.005


def test_a_series_colour_comes_from_its_name_and_survives_added_impls(tmp_path):
    ws = suite("seed", (1024, 2048))
    base = {name: [(w, 1.0 + k) for w in ws] for k, name in enumerate(["torch_flash", "torch_math", "xformers"])}

    def colours(out):
        root = ET.parse(out / "charts" / "attention-latency.svg").getroot()
        return {g.get("data-series"): stroke(next(g.iter(f"{NS}path")))
                for g in root.iter(f"{NS}g") if g.get("class") == "series"}

    before = colours(run(tmp_path / "a", base))
    added = {"aaa_new": [(w, 0.5) for w in ws], "flash_new": [(w, 0.7) for w in ws]}
    after = colours(run(tmp_path / "b", {**added, **base}))
    assert {k: after[k] for k in before} == before


def test_key_versions_list_what_the_impl_declared_not_the_whole_base_image(tmp_path):
    host_env = Env("NVIDIA H100", "9.0", "580", "13.0", "2.11.0+cu130", "3.12.3",
                   {"torch": "2.11.0", "numpy": "2.5.2", "jax": "0.11.2", "jaxlib": "0.11.2", "triton": "3.6.0"})
    w = suite("seed", (1024,))[0]
    rec = measured("torch_flash", w, 1.0, random.Random(1), {"backend": "FLASH_ATTENTION"}, environment=host_env)
    entry = commit(tmp_path / "in", "torch_flash", [rec], packages=["torch==2.11.0 (base)", "numpy==2.5.2 (base)"])
    out = tmp_path / "out"
    assert run_combine(write_upstreams(tmp_path / "in", {"torch_flash": upstream(entry)}), out).returncode == 0
    key = re.search(r"<dt>key versions</dt><dd>([^<]*)</dd>", (out / "report.html").read_text()).group(1)
    assert key == "cuda 13.0, numpy 2.5.2, torch 2.11.0+cu130"


# -- row: unstable measurements are flagged ------------------------------------------------------------------

def test_a_wide_spread_is_flagged_in_the_table_the_csv_and_the_report(tmp_path):
    rng = random.Random(5)
    ws = suite("seed", (1024, 2048))
    recs = [measured("noisy", ws[0], 1.0, rng), measured("noisy", ws[1], 1.0, rng, sigma=0.5)]
    entry = commit(tmp_path / "in", "noisy", recs)
    out = tmp_path / "out"
    assert run_combine(write_upstreams(tmp_path / "in", {"noisy": upstream(entry)}), out).returncode == 0
    rows = {r["Workload"]: r for r in csv.DictReader(io.StringIO((out / "latency.csv").read_text()))}
    assert rows["seed_s1024"]["Unstable"] == "False" and rows["seed_s2048"]["Unstable"] == "True"
    assert float(rows["seed_s2048"]["Spread"]) > 0.25 > float(rows["seed_s1024"]["Spread"])
    line = next(ln for ln in (out / "summary.txt").read_text().splitlines() if ln.startswith("noisy"))
    assert line.count("~") == 1
    html = (out / "report.html").read_text()
    assert html.count("num best unstable") + html.count("num unstable") == 1 and "~1 unstable" in html
    ring = ET.parse(out / "charts" / "attention-latency.svg").getroot().findall(f".//{NS}g[@id='ring--noisy']")
    assert len(ring) == 1 and len(list(ring[0].iter(f"{NS}use"))) == 1


def test_the_harness_unstable_verdict_is_the_one_shown(tmp_path):
    import dataclasses

    from opbench.stats import summarize

    rng = random.Random(6)
    ws = suite("seed", (1024,))
    few = summarize([1.0, 1.0, 1.12], "graph")  # 3 reps: the median's CI is wide though p10-p90 is 10 %
    assert few.unstable is True
    rec = dataclasses.replace(measured("few", ws[0], 1.0, rng), lat_ms=few)
    entry = commit(tmp_path / "in", "few", [rec])
    out = tmp_path / "out"
    assert run_combine(write_upstreams(tmp_path / "in", {"few": upstream(entry)}), out).returncode == 0
    row = next(csv.DictReader(io.StringIO((out / "latency.csv").read_text())))
    assert float(row["Spread"]) < 0.25 and row["Unstable"] == "True"


# -- row: any valid JSON in a record, any file name, never breaks the report ---------------------------------

EVIL = "\x1b[31mred\x1b[0m\x00\x07\r\u202e\ud800\udcff<b>&'\""


def test_hostile_strings_are_escaped_or_cut_in_every_output(tmp_path):
    rng = random.Random(2)
    w = Workload.attention("wl" + EVIL, 1, 1024, 24, 24, 128, "bfloat16", False)
    huge = "A" * 10_000_000
    evil = measured("evil" + EVIL, w, 1.0, rng, {"backend": "<script>alert(1)</script>" + EVIL, "family": huge},
                    environment=Env("dev" + EVIL, None, None, None, None, "3.11", {"pkg" + EVIL: huge}))
    odd = json.loads(evil.to_line())
    odd.update({"reason": huge + EVIL, "ok": True, "wl": {**odd["wl"], "dtype": {"deep": [EVIL] * 3}}})
    nested = json.dumps({"impl": "evil", "reason": [[[]]]}).replace("[[[]]]", "[" * 100_000 + "]" * 100_000)
    lines = [json.dumps(odd), nested, "\x1b[2J\x00 not JSON"]
    entry = commit(tmp_path / "in", "evil", lines=lines,
                   extra_files={"\udcff\udcfe" + "\x1b[1m.jsonl": evil.to_line() + "\n"}, packages=[EVIL, huge])
    good = commit(tmp_path / "in", "good", [measured("good", w, 2.0, rng)])
    up = write_upstreams(tmp_path / "in", {
        "evil" + EVIL: upstream(entry, "ok", huge + EVIL, {"backend": EVIL}, log_tail=EVIL * 3),
        "good": upstream(good), "failed" + EVIL: upstream(None, "failed", EVIL, log_tail=huge)})
    out = tmp_path / "out"
    res = run_combine(up, out)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in OUTPUTS + [f"charts/{c.name}" for c in charts(out)]:
        data = (out / name).read_bytes()
        text = data.decode("utf-8")  # strict: no lone surrogates made it out
        assert len(data) < 3_000_000, name
        bad = re.findall("[\x00-\x08\x0b-\x1f\x7f\u202e\ud800-\udfff]", text)
        assert not bad, (name, bad[:5])
    assert (out / "summary.txt").read_bytes().isascii()
    assert len(charts(out)) >= 3
    for path in charts(out):
        ET.parse(path)  # well-formed XML
    html = (out / "report.html").read_text()
    assert html.count("<script>") == 1 and "&lt;script&gt;alert(1)" in html
    rows = list(csv.DictReader(io.StringIO((out / "latency.csv").read_text())))
    assert {r["Impl ID"] for r in rows} >= {"good"} and any(r["Impl ID"] == "good" and r["P50 (ms)"] for r in rows)
    assert max(len(v or "") for r in rows for v in r.values()) <= 2000
    assert "\\xff\\xfe" in (out / "warnings.txt").read_text() or "\\xff\\xfe" in html


# -- row: an entry holds exactly its manifest's files --------------------------------------------------------

def test_files_planted_in_an_upstream_entry_are_never_read(tmp_path):
    rng = random.Random(4)
    w = suite("seed", (1024,))[0]
    entry = commit(tmp_path / "in", "torch_flash", [measured("torch_flash", w, 1.25, rng)])
    forged = measured("torch_flash", w, 0.000123, rng)
    forged_other = measured("forged_impl", w, 0.000456, rng)
    (entry / "planted.jsonl").write_text(forged.to_line() + "\n" + forged_other.to_line() + "\n")
    (entry / "sub").mkdir()
    (entry / "sub" / "more.jsonl").write_text(forged_other.to_line() + "\n")
    out = tmp_path / "out"
    assert run_combine(write_upstreams(tmp_path / "in", {"torch_flash": upstream(entry)}), out).returncode == 0
    csv_text = (out / "latency.csv").read_text()
    assert "0.0001" not in csv_text and "0.0005" not in csv_text and "forged_impl" not in csv_text
    assert "1.2" in csv_text
    for name in OUTPUTS + [f"charts/{c.name}" for c in charts(out)]:
        assert "forged_impl" not in (out / name).read_text(), name
    warnings = (out / "warnings.txt").read_text()
    assert f"{entry / 'planted.jsonl'}: not listed in its manifest; not read" in warnings
    assert f"{entry / 'sub' / 'more.jsonl'}: not listed in its manifest; not read" in warnings


def test_a_listed_result_file_edited_after_commit_is_not_read(tmp_path):
    rng = random.Random(4)
    w = suite("seed", (1024,))[0]
    entry = commit(tmp_path / "in", "torch_flash", [measured("torch_flash", w, 1.25, rng)])
    (entry / "results.jsonl").write_text(measured("torch_flash", w, 0.000123, rng).to_line() + "\n")
    out = tmp_path / "out"
    assert run_combine(write_upstreams(tmp_path / "in", {"torch_flash": upstream(entry)}), out).returncode == 0
    assert "0.0001" not in (out / "latency.csv").read_text()
    assert "results.jsonl: differs from its manifest sha256; not read" in (out / "warnings.txt").read_text()
