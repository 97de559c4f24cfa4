"""The combine stage's SVG charts and HTML page: one series group per impl with data, legend ties, flags for wrong
results, failed and skipped impls named, axes, baseline and peak lines, nothing fetched from outside."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from combine_data import (MEASURED, NOT_MEASURED, WRONG, Workload, commit, make_run, measured, run_combine,
                               upstream, write_upstreams)

NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("charts")
    res = run_combine(make_run(root / "in", garbage=True), root / "out")
    assert res.returncode == 0, res.stderr
    return root / "out"


def groups(svg_path, cls):
    tree = ET.parse(svg_path)  # also proves the file is well-formed XML
    return [g for g in tree.iter(f"{NS}g") if cls in (g.get("class") or "").split()]


@pytest.mark.parametrize("name", ["latency", "throughput"])
def test_each_impl_with_data_is_one_series_group_tied_to_its_legend_entry(out, name):
    series = groups(out / f"{name}.svg", "series")
    assert sorted(g.get("id") for g in series) == sorted(f"series--{n}" for n in MEASURED)
    legend = groups(out / f"{name}.svg", "legend-entry")
    assert sorted(g.get("data-series") for g in legend) == sorted(g.get("data-series") for g in series)
    flash = next(g for g in series if g.get("data-series") == "torch_flash")
    assert flash.get("data-backend") == "FLASH_ATTENTION" and "torch 2.8.0+cu128" in flash.get("data-packages")


@pytest.mark.parametrize("name", ["latency", "throughput", "speedup"])
def test_failed_and_skipped_impls_are_named_with_their_reasons(out, name):
    missing = {g.get("data-impl"): g for g in groups(out / f"{name}.svg", "missing-entry")}
    assert set(NOT_MEASURED) <= set(missing)
    assert missing["jax_cudnn"].get("data-status") == "failed"
    assert "compute capability 10.0" in ET.tostring(missing["flash_attn4"], encoding="unicode")


def test_wrong_results_are_hollow_and_flagged_in_the_legend(out):
    svg = out / "latency.svg"
    sage = next(g for g in groups(svg, "points") if g.get("data-series") == WRONG)
    points = [g for g in sage.iter(f"{NS}g") if "pt" in (g.get("class") or "").split()]
    assert len(points) == 6
    assert points and all("wrong" in g.get("class") for g in points)
    assert all(p.get("fill") == "#fff" for g in points for p in g.iter(f"{NS}path") if p.get("class") == "marker")
    entry = next(g for g in groups(svg, "legend-entry") if g.get("data-series") == WRONG)
    assert "✗ wrong" in "".join(entry.itertext())
    others = [g for g in groups(svg, "legend-entry") if g.get("data-series") != WRONG]
    assert not any("wrong" in "".join(g.itertext()) for g in others)


def test_latency_uses_a_log_axis_across_decades_and_throughput_shows_the_peak(out):
    assert "latency p50 (ms) (log scale)" in (out / "latency.svg").read_text()
    assert "measured peak 752 TFLOP/s" in (out / "throughput.svg").read_text()


def test_speedup_is_relative_to_the_baseline_or_says_it_has_none(tmp_path, out):
    text = (out / "speedup.svg").read_text()
    assert "Speedup over torch_math" in text and 'id="series--torch_math"' not in text
    assert len(groups(out / "speedup.svg", "series")) == len(MEASURED) - 1
    res = run_combine(make_run(tmp_path / "in"), tmp_path / "o2", baseline="xformers")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "o2" / "speedup.svg").read_text()
    assert "baseline xformers has no measurements (skipped: no xformers wheel" in text
    assert groups(tmp_path / "o2" / "speedup.svg", "series") == []


def test_a_narrow_range_gets_a_linear_axis(tmp_path):
    up = make_run(tmp_path / "in", impls=["torch_flash", "flash_attn2", "torch_cudnn"])
    assert run_combine(up, tmp_path / "out").returncode == 0
    text = (tmp_path / "out" / "latency.svg").read_text()
    assert "log scale" not in text and text.count('class="series"') == 3


def test_long_workload_names_are_rotated_and_cut_with_the_full_name_kept(tmp_path):
    import random
    rng = random.Random(0)
    names = [f"d128_b16_h16_s{1024 * (i + 1)}_causal_gqa_variant_{i}" for i in range(12)]
    recs = [measured("x", Workload.attention(n, 16, 1024 * (i + 1), 16, 4, 128, "bfloat16", True), 1 + i, rng)
            for i, n in enumerate(names)]
    up = write_upstreams(tmp_path / "in", {"x": upstream(commit(tmp_path / "in", "x", recs))})
    assert run_combine(up, tmp_path / "out").returncode == 0
    text = (tmp_path / "out" / "latency.svg").read_text()
    assert text.count("rotate(-45") == len(names) and "…" in text and f"<title>{names[-1]} (S=12288)</title>" in text


def test_the_page_is_self_contained_and_shows_every_impl(out):
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert html.count("<svg") >= 3 and 'id="tooltip"' in html.replace("'", '"')
    for name in MEASURED + NOT_MEASURED:
        assert name in html
    assert "ImportError: libcudnn.so.9" in html and "<code>out=" in html
