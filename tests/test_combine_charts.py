"""The combine stage's charts (matplotlib SVG under charts/) and page: one series group per impl with data, legend
ties, flags for wrong results, failed and skipped impls named, axes, baseline and ceiling lines, nothing fetched
from outside."""

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


def chart(out, name: str):
    return out / "charts" / f"attention-{name}.svg"


def groups(svg_path, cls):
    tree = ET.parse(svg_path)  # also proves the file is well-formed XML
    return [g for g in tree.iter(f"{NS}g") if cls in (g.get("class") or "").split()]


@pytest.mark.parametrize("name", ["latency", "throughput"])
def test_each_impl_with_data_is_one_series_group_tied_to_its_legend_entry(out, name):
    series = groups(chart(out, name), "series")
    assert sorted(g.get("id") for g in series) == sorted(f"series--{n}" for n in MEASURED)
    legend = groups(chart(out, name), "legend-entry")
    assert sorted(g.get("data-series") for g in legend) == sorted(g.get("data-series") for g in series)
    flash = next(g for g in series if g.get("data-series") == "torch_flash")
    assert "FLASH_ATTENTION" in flash.get("data-tip") and "torch 2.8.0+cu128" in flash.get("data-tip")


def test_every_point_is_a_hoverable_marker_with_its_numbers(out):
    pts = {g.get("data-series"): [u for u in g.iter(f"{NS}use") if u.get("class") == "pt"]
           for g in groups(chart(out, "latency"), "points")}
    assert len(pts["torch_math"]) == 6 and len(pts["torch_compiled_max_autotune"]) == 5  # one workload errored
    tip = pts["torch_math"][0].get("data-tip")
    assert tip.splitlines()[:2] == ["torch_math", "flux_L128"] and "p50" in tip and "correct" in tip


def test_failed_and_skipped_impls_are_named_with_their_reasons_once_per_op(out):
    html = (out / "report.html").read_text()
    first = html.index('id="attention-latency"')
    caption = html[first:html.index("</figure>", first)]
    for name in NOT_MEASURED:
        assert f'class="missing-entry" data-impl="{name}"' in caption
        assert html.count(f'class="missing-entry" data-impl="{name}"') == 1
    assert "compute capability 10.0" in caption


def test_wrong_results_are_drawn_apart_and_flagged_in_the_legend(out):
    svg = chart(out, "latency")
    wrong = [g for g in groups(svg, "points") if g.get("id") == f"points--{WRONG}--wrong"]
    assert len(wrong) == 1 and len([u for u in wrong[0].iter(f"{NS}use")]) == 6
    assert not any(g.get("id") == f"points--{WRONG}" for g in groups(svg, "points"))
    entry = next(g for g in groups(svg, "legend-entry") if g.get("data-series") == WRONG)
    assert "✗ wrong" in "".join(entry.itertext())
    others = [g for g in groups(svg, "legend-entry") if g.get("data-series") != WRONG]
    assert not any("wrong" in "".join(g.itertext()) for g in others)


def test_latency_uses_a_log_axis_across_decades_and_throughput_shows_the_peak(out):
    assert "10^{-1}" in chart(out, "latency").read_text() or "0.1" in chart(out, "latency").read_text()
    assert "measured peak 752 TFLOP/s" in chart(out, "throughput").read_text()


def test_speedup_is_relative_to_the_baseline_or_says_it_has_none(tmp_path, out):
    text = chart(out, "speedup").read_text()
    assert "speedup over torch_math" in text and 'id="series--torch_math"' not in text
    assert len(groups(chart(out, "speedup"), "series")) == len(MEASURED) - 1
    res = run_combine(make_run(tmp_path / "in", impls=["xformers", "torch_flash", "torch_cudnn"]), tmp_path / "o2",
                      baseline="xformers")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "o2" / "charts" / "attention-speedup.svg").read_text()
    assert "no baseline impl among this op" in text
    assert groups(tmp_path / "o2" / "charts" / "attention-speedup.svg", "series") == []


def test_a_narrow_range_gets_a_linear_axis(tmp_path):
    up = make_run(tmp_path / "in", impls=["torch_flash", "flash_attn2", "torch_cudnn"])
    assert run_combine(up, tmp_path / "out").returncode == 0
    svg = tmp_path / "out" / "charts" / "attention-latency.svg"
    assert "10^{" not in svg.read_text() and len(groups(svg, "series")) == 3


def test_long_workload_names_are_cut_on_the_axis_and_kept_whole_in_the_tables(tmp_path):
    import random
    rng = random.Random(0)
    names = [f"d128_b16_h16_s{1024 * (i + 1)}_causal_gqa_variant_{i}" for i in range(12)]
    recs = [measured("x", Workload.attention(n, 16, 1024 * (i + 1), 16, 4, 128, "bfloat16", True), 1 + i, rng)
            for i, n in enumerate(names)]
    up = write_upstreams(tmp_path / "in", {"x": upstream(commit(tmp_path / "in", "x", recs))})
    assert run_combine(up, tmp_path / "out").returncode == 0
    svg = tmp_path / "out" / "charts" / "attention-latency.svg"
    labels = ["".join(t.itertext()) for t in ET.parse(svg).iter(f"{NS}text")]
    assert svg.read_text().count("rotate(-30") >= len(names)
    assert any("… · S=" in t for t in labels) and not any(names[-1] in t for t in labels)
    tips = [u.get("data-tip") for g in groups(svg, "points") for u in g.iter(f"{NS}use")]
    assert any(names[-1] in t for t in tips)
    assert names[-1] in (tmp_path / "out" / "report.html").read_text()


def test_the_page_is_self_contained_and_shows_every_impl(out):
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "http://" not in re.sub(r'xmlns(:\w+)?="http://[^"]+"', "", html)
    assert html.count("<svg") >= 3 and 'id="tooltip"' in html
    for name in MEASURED + NOT_MEASURED:
        assert name in html
    assert "ImportError: libcudnn.so.9" in html and "<code>out=" in html


def test_a_variant_legend_keeps_the_version_that_tells_its_series_apart(tmp_path):
    """A version matrix's series differ only at the end of their labels: a long label is cut in its middle."""
    import random
    rng = random.Random(0)
    wl = Workload.attention("flux_L128", 1, 1152, 24, 24, 128, "bfloat16", False)
    doc = {}
    for i, v in enumerate(("1.0.4", "1.0.5")):
        name = f"a_rather_long_impl_name@a-long-package-name={v}"
        doc[name] = {**upstream(commit(tmp_path / "in", name, [measured(name, wl, 1 + i, rng)])),
                     "label": f"a_rather_long_impl_name @ a-long-package-name {v}"}
    up = write_upstreams(tmp_path / "in", doc)
    assert run_combine(up, tmp_path / "out").returncode == 0
    svg = tmp_path / "out" / "charts" / "attention-latency.svg"
    legend = ["".join(t.itertext()) for g in groups(svg, "legend-entry") for t in g.iter(f"{NS}text")]
    texts = [t for t in ET.parse(svg).iter(f"{NS}text")]
    shown = sorted("".join(t.itertext()) for t in texts if "…" in "".join(t.itertext()))
    assert len(shown) == 2 and shown[0].endswith("1.0.4") and shown[1].endswith("1.0.5"), (shown, legend)
