"""Clocks and heat around the timed reps (opbench.clocks): the verdict on H200-shaped NVML readings (a sagging SM
clock, a counting throttle bit, the idle and settings bits ignored, a repeat that clears or persists), the repeat
and the sampler thread of clocked_reps, records on this CPU carrying `clocks: null`, the field's round trip, and a
flagged record marked in the CSV (`Clocks`, the last column), summary.txt (`#`) and the report."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "shared"))

from combine_data import Workload, commit, measured, run_combine, upstream, write_upstreams  # noqa: E402

from opbench import clocks  # noqa: E402
from opbench.clocks import Reading  # noqa: E402
from opbench.record import Clocks, Record  # noqa: E402

MAX = 1980  # an H200's max SM clock (MHz), as nvmlDeviceGetMaxClockInfo gives it; memory 3201 MHz; 700 W cap


def busy(sm: int = MAX, reasons: int = 0, temp: float = 52.0, power: float = 640.0) -> Reading:
    return Reading(sm_mhz=sm, sm_max_mhz=MAX, mem_mhz=3201, temp_c=temp, power_w=power, reasons=reasons)


STEADY = [busy(1980), busy(1965), busy(1980, temp=55.0, power=655.3)]


# -- the verdict: readings in, verdict out ------------------------------------------------------------------------

def test_steady_clocks_are_not_throttled_and_say_what_was_seen():
    assert clocks.throttled(STEADY) is False
    v = clocks.verdict([STEADY])
    assert v == Clocks(sm_mhz_min=1965, sm_mhz_max_seen=1980, sm_mhz_limit=MAX, mem_mhz=3201, temp_c=55.0,
                       power_w=655.3, throttle=[], repeated=False, flagged=False)


def test_an_sm_clock_below_90_percent_of_its_max_is_throttled():
    assert clocks.throttled([busy(1980), busy(1755), busy(1980)]) is True  # 1755 < 0.9 * 1980 = 1782
    assert clocks.throttled([busy(1980), busy(1785)]) is False


@pytest.mark.parametrize("bit, name", [(clocks.SW_POWER_CAP, "sw_power_cap"), (clocks.HW_SLOWDOWN, "hw_slowdown"),
                                       (clocks.SW_THERMAL, "sw_thermal"), (clocks.HW_THERMAL, "hw_thermal"),
                                       (clocks.POWER_BRAKE, "power_brake")])
def test_a_counting_throttle_reason_is_throttled_at_full_clock(bit, name):
    readings = [busy(1980), busy(1980, reasons=bit)]
    assert clocks.throttled(readings) is True
    assert clocks.verdict([readings]).throttle == [name]


def test_idle_and_settings_bits_are_ignored_and_sync_boost_is_only_named():
    idle = Reading(sm_mhz=345, sm_max_mhz=MAX, mem_mhz=405, temp_c=40.0, power_w=75.0, reasons=clocks.IDLE)
    readings = [idle, busy(1980, reasons=clocks.APPLICATIONS_CLOCKS_SETTING | clocks.DISPLAY_CLOCK_SETTING), idle]
    assert clocks.throttled(readings) is False  # an idle GPU's 345 MHz is no sag
    v = clocks.verdict([readings])
    assert v.sm_mhz_min == 1980 and v.mem_mhz == 3201 and v.throttle == [] and not v.flagged
    synced = [busy(1980, reasons=clocks.SYNC_BOOST)]
    assert clocks.throttled(synced) is False and clocks.verdict([synced]).throttle == ["sync_boost"]


def test_a_repeat_that_clears_is_not_flagged_and_one_that_persists_is():
    sagged = [busy(1980), busy(1500, reasons=clocks.SW_THERMAL, temp=88.0)]
    cleared = clocks.verdict([sagged, STEADY])
    assert cleared.repeated is True and cleared.flagged is False and cleared.sm_mhz_min == 1965  # the repeat's
    persists = clocks.verdict([sagged, sagged])
    assert persists.repeated is True and persists.flagged is True
    assert persists.sm_mhz_min == 1500 and persists.temp_c == 88.0 and persists.throttle == ["sw_thermal"]


def test_no_readings_is_no_verdict():
    assert clocks.verdict([]) is None and clocks.verdict([[]]) is None
    assert clocks.throttled([]) is False


def test_the_visible_entry_maps_a_torch_index_to_nvml(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert clocks.visible_entry(1) == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert clocks.visible_entry(0) == "3" and clocks.visible_entry(1) == "5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f6c1a2e-0000-1111-2222-333344445555")
    assert clocks.visible_entry(0).startswith("GPU-")


def test_a_torch_device_maps_to_its_pci_bus_id_and_else_to_its_visible_entry(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    props = SimpleNamespace(pci_domain_id=0, pci_bus_id=0x19, pci_device_id=0)
    fake = SimpleNamespace(cuda=SimpleNamespace(get_device_properties=lambda i: props, current_device=lambda: 1))
    assert clocks.torch_target(fake, SimpleNamespace(index=None)) == clocks.Target("00000000:19:00.0", "3")
    older = SimpleNamespace(cuda=SimpleNamespace(get_device_properties=lambda i: SimpleNamespace()))
    assert clocks.torch_target(older, SimpleNamespace(index=0)) == clocks.Target(None, "2")


# -- clocked_reps: the repeat, the sampler thread ------------------------------------------------------------------

class ScriptedReadings:
    """Stands where an NVML probe stands: hands out the readings given (no NVML, no pynvml)."""

    def __init__(self, *windows: list[Reading]):
        self.left = [r for w in windows for r in w]

    def read(self) -> Reading | None:
        return self.left.pop(0) if len(self.left) > 1 else (self.left[0] if self.left else None)


def test_a_throttled_window_is_timed_once_more_and_the_sampler_stops():
    from opbench.reps import clocked_reps
    from opbench.runner import Options
    from opbench.torch_timing import RepTimer

    opts = Options(settle_s=0.0, time_cap_s=0.01)
    calls = []
    timer = RepTimer("host", lambda n: calls.append(n) or [1.0] * n)
    raw, cold, clk = clocked_reps(timer, opts, False, None)
    assert clk is None and raw and cold is None
    sagged = [busy(1400)] * 3
    calls.clear()
    raw, _, clk = clocked_reps(timer, opts, False, ScriptedReadings(sagged + sagged))
    assert clk is not None and clk.repeated and clk.flagged and clk.sm_mhz_min == 1400
    first = len(calls)
    raw, _, clk = clocked_reps(timer, opts, False, ScriptedReadings(STEADY * 100))
    assert clk is not None and not clk.repeated and not clk.flagged
    assert first > len(calls) - first  # the throttled run timed its reps twice, the steady one once
    assert not [t for t in threading.enumerate() if t.name == "opbench-clocks"]


# -- records: null on this CPU, the field's round trip ------------------------------------------------------------

def test_records_on_the_cpu_carry_null_clocks(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("numpy")
    import opbench
    from opbench import sdpa
    from opbench.torch_backend import TorchBackend

    assert clocks.probe_for(TorchBackend.create()) is None
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("ORCH_OUT", str(out))
    monkeypatch.setenv("ORCH_IMPL", "cpu_math")
    monkeypatch.setenv("ORCH_WORKLOADS", "smoke")
    monkeypatch.setenv("ORCH_MODE", "fwd,bwd")
    monkeypatch.delenv("ORCH_OP", raising=False)
    code = opbench.run(sdpa.backend_attend("MATH"), prepare=sdpa.to_bhsd, requires_cuda=False,
                       tags={"family": "test", "backend": "MATH", "compile": "none"},
                       warmup_s=0.0, time_cap_s=0.02, min_reps=3)
    assert code == 0
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert recs and all(r["status"] == "ok" and "clocks" in r and r["clocks"] is None for r in recs)
    assert all(Record.from_json(r).clocks is None for r in recs)


def test_the_clocks_field_round_trips(tmp_path):
    rec = measured("hot", Workload.attention("a", 1, 1024, 24, 24, 128, "bfloat16", False), 0.06, random.Random(1))
    v = clocks.verdict([[busy(1500, reasons=clocks.SW_POWER_CAP)]] * 2)
    back = Record.from_json(json.loads(dataclasses.replace(rec, clocks=v).to_line()))
    assert back.clocks == v and back.clocks.flagged and back.clocks.throttle == ["sw_power_cap"]
    assert Record.from_json(json.loads(rec.to_line())).clocks is None


# -- the combine stage: a flagged record marked like an unstable one ------------------------------------------------

def test_a_flagged_record_is_marked_in_the_csv_the_table_and_the_report(tmp_path):
    rng = random.Random(7)
    ws = [Workload.attention(f"seed_s{s}", 1, s, 24, 24, 128, "bfloat16", False) for s in (1024, 2048, 4096)]
    sagged = [busy(1500, reasons=clocks.HW_THERMAL, temp=91.0)]
    flagged = clocks.verdict([sagged, sagged])
    cleared = clocks.verdict([sagged, STEADY])
    recs = [dataclasses.replace(measured("hot", ws[0], 1.0, rng), clocks=flagged),
            dataclasses.replace(measured("hot", ws[1], 2.0, rng), clocks=cleared),
            measured("hot", ws[2], 4.0, rng)]  # measured without NVML: clocks null
    entry = commit(tmp_path / "in", "hot", recs)
    out = tmp_path / "out"
    assert run_combine(write_upstreams(tmp_path / "in", {"hot": upstream(entry)}), out).returncode == 0
    text = (out / "latency.csv").read_text()
    header = next(csv.reader(io.StringIO(text)))
    assert header[-3:] == ["status", "reason", "Clocks"]
    rows = {r["Workload"]: r for r in csv.DictReader(io.StringIO(text))}
    assert [rows[w.name]["Clocks"] for w in ws] == ["flagged", "ok", ""]
    line = next(ln for ln in (out / "summary.txt").read_text().splitlines() if ln.startswith("hot"))
    assert line.count("#") == 1
    html = (out / "report.html").read_text()
    assert html.count(" throttled\"") == 1 and "#1 throttled" in html and "throttled clocks: hw_thermal" in html


def test_the_settle_ends_early_on_steady_clocks_and_runs_its_full_time_at_the_power_cap():
    from opbench.reps import SETTLE_MIN_S, settle

    def timed(probe) -> float:
        t0 = time.perf_counter()
        settle(lambda n: time.sleep(0.002 * n) or [1.0] * n, 0.6, probe)
        return time.perf_counter() - t0

    assert SETTLE_MIN_S <= timed(ScriptedReadings(STEADY * 1000)) < 0.3
    capped = dataclasses.replace(STEADY[0], reasons=clocks.SW_POWER_CAP)
    assert timed(ScriptedReadings([capped] * 1000)) >= 0.6
    assert timed(None) >= 0.6  # no NVML: the fixed settle
