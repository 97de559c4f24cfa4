"""scripts/gpu_timeline.py reads manifests, catches two jobs that held one GPU at the same moment, and says how much
of the GPUs' time was timed work (from the manifests' phases)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from conftest import REPO, orch


def manifest(root, name, gpu, start, end, node="n1", phases=None):
    entry = root / name / f"key{name}"
    entry.mkdir(parents=True)
    (entry / "manifest.json").write_text(json.dumps({
        "name": name, "started": start, "finished": end, "inputs": {"workloads": {"name": "seed"}},
        "runner": {"executor": "local", "gpus": [gpu], "host": node}, **({"phases": phases} if phases else {})}))


def timeline(artifacts):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_timeline.py"), str(artifacts)],
                          capture_output=True, text=True)


def test_side_by_side_gpus_pass_and_a_shared_gpu_fails(tmp_path):
    manifest(tmp_path, "a", "0", 0.0, 10.0)
    manifest(tmp_path, "b", "1", 2.0, 8.0)
    manifest(tmp_path, "c", "0", 10.0, 12.0)
    ok = timeline(tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 GPU jobs on 2 GPU(s); side by side for 6.0 s" in ok.stdout
    manifest(tmp_path, "d", "1", 7.0, 9.0)  # starts while b still holds GPU 1
    bad = timeline(tmp_path)
    assert bad.returncode == 1 and "OVERLAP" in bad.stdout and "b and d" in bad.stdout, bad.stdout


def test_busy_is_the_timed_steps_of_the_gpu_time_from_the_first_env_to_the_last_end(tmp_path):
    steps = {"first_call_s": 1.0, "warmup_s": 0.5, "settle_s": 0.5, "reps_s": 2.0, "cold_s": 1.0, "inputs_s": 3.0}
    manifest(tmp_path, "a", "0", 10.0, 20.0, phases={"env_s": 5.0, "wait_s": 0.0, "run_s": 10.0, "start_s": 1.5,
                                                     "harness": {"workloads": {"w": {"fwd": steps}}}})
    manifest(tmp_path, "b", "1", 12.0, 18.0)  # made before phases were recorded
    out = timeline(tmp_path)
    assert out.returncode == 0 and "side by side for 6.0 s of 10.0 s" in out.stdout, out.stdout
    assert ("GPU time 30.0 s (15.0 s x 2 GPU(s)): busy 5.0 s (16.7 %), idle 25.0 s (83.3 %: held outside timed "
            "work 11.0 s, held by no job 14.0 s)") in out.stdout, out.stdout
    assert "without the harness's phases, their time counted idle: b" in out.stdout


def test_same_gpu_index_on_two_ray_nodes_is_two_gpus(tmp_path):
    manifest(tmp_path, "a", "0", 0.0, 10.0, node="n1")
    manifest(tmp_path, "b", "0", 0.0, 10.0, node="n2")
    out = timeline(tmp_path)
    assert out.returncode == 0 and "on 2 GPU(s)" in out.stdout, out.stdout


def test_a_real_cpu_run_says_how_much_of_the_timing_slot_was_timed_work(torch_base, tmp_path):
    """Two real harness impls on a GPU-less machine: their manifests carry the harness's phases per workload and
    mode, and the timeline prints from them what share of the timing slot's time was timed work."""
    sys.path.insert(0, str(REPO / "shared"))
    from opbench.reps import PHASE_KEYS
    from opbench.suite import load_suite

    names = ("torch_math", "rms_norm_torch")
    args = ["--workloads", "smoke", "--artifacts", tmp_path / "artifacts", "--envs-dir", tmp_path / "envs",
            "--python", torch_base, "--offline", "--mode", "fwd,bwd"]
    t0 = time.time()
    out = orch("run", *names, "--no-combine", *args, env={"ORCH_FORCE_CPU": "1"})
    wall = time.time() - t0
    assert out.returncode == 0, out.stdout + out.stderr
    for name, op in zip(names, ("attention", "rms_norm")):
        (entry,) = (tmp_path / "artifacts" / name).iterdir()
        m = json.loads((entry / "manifest.json").read_text())
        ph = m["phases"]
        assert ph["lock"] == "host" and 0 < ph["start_s"] <= ph["run_s"], ph
        # gated (run/gate.py): its wait for the slot is part of its process's run, after its start
        assert ph["env_s"] >= 0 and 0 <= ph["wait_s"] <= ph["run_s"] - ph["start_s"], ph
        assert ph["env_s"] + ph["run_s"] <= wall, (ph, wall)
        wanted = {wl.name for wl in load_suite("smoke", op).workloads}
        assert set(ph["harness"]["workloads"]) == wanted, ph["harness"]
        for modes in ph["harness"]["workloads"].values():
            assert sorted(modes) == ["bwd", "fwd"] and all(sorted(s) == sorted(PHASE_KEYS) for s in modes.values())
        assert json.loads((entry / "phases.json").read_text()) == ph["harness"]
        lines = (entry / "results.jsonl").read_text().splitlines()
        assert len(lines) == 2 * len(wanted)  # the records are what they were: phases.json is no result file
    # pipelined: both started at once; each took the timing slot when its harness asked, one after the other
    ms = [json.loads(next((tmp_path / "artifacts" / n).iterdir()).joinpath("manifest.json").read_text()) for n in names]
    holds = sorted(m["phases"]["held"] for m in ms)
    assert all(m["phases"]["gated"] for m in ms) and holds[0][1] <= holds[1][0], holds
    assert max(m["started"] for m in ms) < holds[0][1], (holds, [m["started"] for m in ms])
    later = max(ms, key=lambda m: m["phases"]["held"][0])
    assert later["phases"]["wait_s"] > 0 and later["phases"]["harness"]["gate_wait_s"] > 0, later["phases"]
    shown = orch("show", "torch_math", *args, env={"ORCH_FORCE_CPU": "1"})
    assert shown.returncode == 0 and '"harness": {' in shown.stdout and '"reps_s":' in shown.stdout, shown.stdout
    tl = timeline(tmp_path / "artifacts")
    assert tl.returncode == 0, tl.stdout + tl.stderr
    assert "2 GPU jobs on 1 GPU(s) (and 2 stored-reference set(s))" in tl.stdout, tl.stdout  # a set per suite
    assert "without the harness's phases" not in tl.stdout, tl.stdout
    busy = re.search(r"GPU time ([\d.]+) s .*: busy ([\d.]+) s \(([\d.]+) %\), idle ([\d.]+) s", tl.stdout)
    assert busy and 0 < float(busy[2]) < float(busy[1]) and 0 < float(busy[3]) < 100, tl.stdout
    assert abs(float(busy[2]) + float(busy[4]) - float(busy[1])) < 0.2, tl.stdout
