"""The combine stage over forward and backward records of the same impls and workloads: a chart group, a chart and
a table per mode, every title saying its mode, no line joining a forward and a backward point, the CSV's Mode column,
an impl without a backward named with its reason. Records are the harness's own (combine_data)."""

from __future__ import annotations

import csv
import io
import json
import random
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from combine_data import WORKLOADS, Record, commit, env, measured, run_combine, upstream, wl, write_upstreams

NS = "{http://www.w3.org/2000/svg}"
NO_BACKWARD = "no backward: SageAttention's sageattn is a forward-only (inference) kernel: no autograd backward"
RATES = {"torch_flash": 340.0, "torch_math": 2.4, "sage_attention": 640.0}
PRESKIP = "requires CUDA; no NVIDIA GPU on this machine"


def backward(rec: Record, rng) -> Record:
    """The bwd record of the same impl and workload: 2.5x the work at a rate a little lower, its gradients checked."""
    w = rec.wl
    p50 = 2.5 * w.flops / (0.8 * rec.tflops * 1e12) * 1e3
    fresh = measured(rec.impl, w, p50, rng, rec.tags)
    return replace(fresh, mode="bwd", tflops=2.5 * w.flops / (fresh.lat_ms.p50 * 1e-3) / 1e12,
                   grad_err={"dq": 0.004, "dk": 0.005, "dv": 0.003})


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    rng = random.Random(3)
    doc = {}
    for name, rate in RATES.items():
        tags = {"family": "torch-sdpa" if name.startswith("torch") else "sageattention", "backend": name}
        recs = []
        for n, s in WORKLOADS:
            w = wl(n, s)
            fwd = measured(name, w, w.flops / (rate * 1e12) * 1e3, rng, tags)
            bwd = Record(name, w, "skipped", tags, env(name), reason=NO_BACKWARD, mode="bwd") \
                if name == "sage_attention" else backward(fwd, rng)
            recs += [fwd, bwd]
        doc[name] = upstream(commit(root / "in", name, recs), tags=tags)
    preskip = {"schema": 2, "op": "attention", "impl": "flash_attn4", "status": "skipped", "reason": PRESKIP,
               "tags": {}}  # what the orchestrator writes for a job it never starts (run/jobrun.commit_preskip)
    doc["flash_attn4"] = upstream(commit(root / "in", "flash_attn4", lines=[json.dumps(preskip)], status="skipped",
                                         reason=PRESKIP), "skipped", PRESKIP)
    res = run_combine(write_upstreams(root / "in", doc), root / "out")
    assert res.returncode == 0, res.stderr
    return root / "out"


def tips(svg) -> list[str]:
    return [u.get("data-tip") for u in ET.parse(svg).iter(f"{NS}use") if u.get("class") == "pt"]


def titles(svg) -> list[str]:
    return ["".join(t.itertext()) for t in ET.parse(svg).iter(f"{NS}text")]


def test_each_mode_has_its_own_charts_and_no_line_crosses_modes(out):
    names = sorted(p.name for p in (out / "charts").glob("attention*latency.svg") if "detail" not in p.name)
    assert names == ["attention-bwd-latency.svg", "attention-latency.svg"], names  # a forward keeps its old name
    for mode in ("fwd", "bwd"):
        for kind in ("latency", "throughput", "speedup"):
            svg = out / "charts" / f"attention{'' if mode == 'fwd' else '-' + mode}-{kind}.svg"
            assert any(f"bfloat16 {mode}" in t for t in titles(svg)), (svg.name, titles(svg)[:3])
            points = tips(svg)
            assert points, svg.name
            first_lines = [t.splitlines()[1] for t in points]  # impl, then the workload id
            assert all(("[bwd]" in x) == (mode == "bwd") for x in first_lines), (svg.name, first_lines)
    bwd = (out / "charts" / "attention-bwd-latency.svg").read_text()
    assert 'id="series--sage_attention"' not in bwd and 'id="series--torch_flash"' in bwd  # same id in each mode
    assert 'id="series--torch_flash"' in (out / "charts" / "attention-latency.svg").read_text()


def test_each_mode_is_a_section_ranked_on_its_own(out):
    html = (out / "report.html").read_text()
    assert 'id="op-attention" data-op="attention" data-mode="fwd"' in html
    assert 'id="op-attention-bwd" data-op="attention" data-mode="bwd"' in html
    assert html.index('id="op-attention"') < html.index('id="op-attention-bwd"')
    text = (out / "summary.txt").read_text()
    fwd, bwd = text.split("== Attention, backward (attention bwd)")
    assert "== Attention (attention)" in fwd and "[bwd]" not in fwd
    assert "over the 6 workloads every ranked impl measured (flux_L128 [bwd]," in bwd  # its own geomean
    assert "sage_attention " not in bwd.split("not measured:")[0]


def test_the_summary_and_page_tables_name_the_mode(out):
    text = (out / "summary.txt").read_text()
    assert "B=1 H=24 D=128 non-causal bfloat16 fwd" in text and "B=1 H=24 D=128 non-causal bfloat16 bwd" in text
    assert "flux_L128 [bwd]" in text
    assert f"sage_attention (attention bwd): skipped: {NO_BACKWARD}" in text  # nothing measured in that mode
    assert text.count(f"flash_attn4 (attention): skipped: {PRESKIP}") == 1  # never run: once, for every mode
    html = (out / "report.html").read_text()
    assert "<caption>B=1 H=24 D=128 non-causal bfloat16 bwd</caption>" in html
    assert "<caption>B=1 H=24 D=128 non-causal bfloat16 fwd</caption>" in html
    assert html.count('class="missing-entry" data-impl="flash_attn4"') == 2  # named under each mode's charts



def test_the_csv_has_one_row_per_mode_with_its_mode(out):
    rows = list(csv.DictReader(io.StringIO((out / "latency.csv").read_text())))
    assert len(rows) == 2 * len(WORKLOADS) * len(RATES) + 1  # and the never-run impl's row
    assert {r["Mode"] for r in rows} == {"fwd", "bwd"} and all("[" not in r["Workload"] for r in rows)
    sage = [r for r in rows if r["Impl ID"] == "sage_attention" and r["Mode"] == "bwd"]
    assert sage and all(r["status"] == "skipped" and r["reason"] == NO_BACKWARD for r in sage)
    flash = {(r["Workload"], r["Mode"]): float(r["TFLOP/s"]) for r in rows if r["Impl ID"] == "torch_flash"}
    assert flash[("flux_L512", "bwd")] == pytest.approx(0.8 * flash[("flux_L512", "fwd")], rel=0.1)
