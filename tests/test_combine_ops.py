"""The combine stage over several ops: one report section per op (index at the top), GB/s charts against the
measured copy bandwidth for the memory-bound families, an L2-resident result never drawn as memory throughput,
the CSV's Op / GB/s / % of bandwidth columns and one terminal table per op. Records come from the harness's
own Record and Workload types (combine_data), so the fixture cannot drift from the real format."""

from __future__ import annotations

import csv
import io
import random
import re
import xml.etree.ElementTree as ET

import pytest
from combine_data import Env, Workload, commit, latency, make_run, run_combine, upstream, write_upstreams

from opbench.accuracy import Accuracy
from opbench.record import L2, Record

NS = "{http://www.w3.org/2000/svg}"
COPY = 4205.0
ENV = Env("NVIDIA H200", "9.0", "580", "13.0", "2.11.0+cu130", "3.12.3", {"torch": "2.11.0"}, peak_tflops=790.0,
          copy_gbps=COPY)
RMS = [Workload.make("rms_norm", f"rms_s{s}_d{d}", "bfloat16", batch=1, seq_len=s, hidden=d)
       for d in (4096, 8192) for s in (1024, 2048, 4096)]
SWIGLU = [Workload.make("swiglu", f"swiglu_t{t}", "bfloat16", tokens=t, dim=4096) for t in (128, 256, 512)]
COLD = L2("cold", "calls rotate through 40 input copies (3.1x the 60 MiB L2)", copies=40)
HOT = L2("hot", "inputs reused by the calls of a replay; L2 flushed before each replay")


def gb_record(impl: str, w: Workload, gbps: float, rng, l2: L2 = COLD, tags=None) -> Record:
    p50 = w.bytes / (gbps * 1e9) * 1e3
    lat = latency(p50, rng)
    got = w.bytes / (lat.p50 * 1e-3) / 1e9
    return Record(impl, w, "ok", tags or {"family": impl.split("_")[-1]}, ENV, lat_ms=lat, gbps=got,
                  pct_bandwidth=100 * got / COPY, l2=l2, ok=True, err=Accuracy(0.002, 0.01, 0.01, True, True))


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops")
    rng = random.Random(7)
    doc = {}
    impls = {"rms_norm_torch": (RMS, 2900, {"family": "torch-eager", "backend": "aten"}),
             "rms_norm_triton": (RMS, 3800, {"family": "triton"}),
             "swiglu_torch": (SWIGLU, 1100, {"family": "torch-eager", "backend": "aten"}),
             "swiglu_compile": (SWIGLU, 4300, {"family": "torch-compile"})}
    for name, (ws, rate, tags) in impls.items():
        recs = [gb_record(name, w, rate, rng, tags=tags) for w in ws]
        doc[name] = {**upstream(commit(root / "in", name, recs), tags=tags), "op": ws[0].op}
    hot = [gb_record("rms_norm_hot", w, 9000 if i == 0 else 3000, rng, HOT) for i, w in enumerate(RMS)]
    doc["rms_norm_hot"] = {**upstream(commit(root / "in", "rms_norm_hot", hot)), "op": "rms_norm"}
    doc["rms_norm_quack"] = {**upstream(None, "skipped", "quack needs SM90"), "op": "rms_norm"}
    attn = make_run(root / "attn", impls=["torch_flash", "torch_math"])
    import json
    doc.update(json.loads(attn.read_text()))
    res = run_combine(write_upstreams(root / "in", doc), root / "out")
    assert res.returncode == 0, res.stderr
    return root / "out"


def test_one_section_per_op_in_the_registry_order_with_an_index(out):
    html = (out / "report.html").read_text()
    sections = re.findall(r'<section class="op" id="op-([a-z_]+)"', html)
    assert sections == ["attention", "rms_norm", "swiglu"]
    index = html[html.index('<nav class="index"'):html.index("</nav>")]
    assert all(f'href="#op-{op}"' in index for op in sections)
    assert "RMSNorm" in index and "GB/s" in index and "TFLOP/s" in index


def test_memory_bound_throughput_is_gbps_against_the_measured_copy(out):
    charts = sorted(p.name for p in (out / "charts").glob("rms_norm*throughput.svg"))
    assert charts == ["rms_norm-throughput.svg"]  # one line per impl over every shape, ordered by bytes moved
    text = (out / "charts" / charts[0]).read_text()
    assert "measured copy bandwidth 4205 GB/s" in text and "GB/s" in text and "TFLOP/s" not in text
    root = ET.parse(out / "charts" / charts[0]).getroot()
    labels = ["".join(t.itertext()) for t in root.iter(f"{NS}text") if " MB" in "".join(t.itertext())]
    sizes = [float(label.split(" · ")[-1].split()[0]) for label in labels]
    assert len(sizes) == len(RMS) and sizes == sorted(sizes)
    assert "measured peak" in (out / "charts" / "attention-throughput.svg").read_text()


def test_an_l2_resident_result_is_flagged_and_not_drawn_as_throughput(out):
    rows = [r for r in csv.DictReader(io.StringIO((out / "latency.csv").read_text())) if r["Impl ID"] == "rms_norm_hot"]
    first = next(r for r in rows if r["Workload"] == RMS[0].name)
    assert first["L2-resident"] == "True" and first["% of bandwidth"] == "" and float(first["GB/s"]) > COPY
    assert all(r["L2-resident"] == "False" and r["% of bandwidth"] for r in rows if r is not first)
    chart = out / "charts" / "rms_norm-throughput.svg"
    pts = [u for g in ET.parse(chart).iter(f"{NS}g") if g.get("id") == "points--rms_norm_hot"
           for u in g.iter(f"{NS}use")]
    assert len(pts) == len(RMS) - 1  # the resident one is not a memory throughput
    assert "L2-resident" in (out / "summary.txt").read_text() or "   L2" in (out / "summary.txt").read_text()


def test_the_csv_names_the_op_and_the_bandwidth(out):
    rows = list(csv.DictReader(io.StringIO((out / "latency.csv").read_text())))
    ops = {r["Impl ID"]: r["Op"] for r in rows}
    assert ops["rms_norm_triton"] == "rms_norm" and ops["swiglu_torch"] == "swiglu" and ops["torch_flash"] == "attention"
    assert ops["rms_norm_quack"] == "rms_norm"
    tri = next(r for r in rows if r["Impl ID"] == "rms_norm_triton")
    assert tri["Hidden"] in ("4096", "8192") and tri["Heads"] == "" and abs(float(tri["% of bandwidth"]) - 90.4) < 5
    assert tri["L2"] == "cold" and tri["TFLOP/s"] == ""


def test_the_terminal_summary_has_one_table_per_op_with_its_metric(out):
    text = (out / "summary.txt").read_text()
    heads = [line for line in text.splitlines() if line.startswith("== ")]
    assert [h.split(" (")[1].split(")")[0] for h in heads] == ["attention", "rms_norm", "swiglu"]
    rms = text[text.index("== RMSNorm"):text.index("== SwiGLU")]
    assert "GB/s" in rms and "rms_norm_triton" in rms and "torch_flash" not in rms
    assert "rms_norm_quack (rms_norm): skipped: quack needs SM90" in text


def test_a_family_is_compared_with_its_torch_eager_impl(out):
    text = (out / "charts" / "swiglu-speedup.svg").read_text()
    assert "speedup over swiglu_torch" in text
    html = (out / "report.html").read_text()
    assert "vs swiglu_torch, same workloads" in html
