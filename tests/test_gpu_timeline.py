"""scripts/gpu_timeline.py reads manifests and catches two jobs that held one GPU at the same moment."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def manifest(root, name, gpu, start, end, node="n1"):
    entry = root / name / f"key{name}"
    entry.mkdir(parents=True)
    (entry / "manifest.json").write_text(json.dumps({
        "name": name, "started": start, "finished": end, "inputs": {"workloads": {"name": "seed"}},
        "runner": {"executor": "local", "gpus": [gpu], "host": node}}))


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


def test_same_gpu_index_on_two_ray_nodes_is_two_gpus(tmp_path):
    manifest(tmp_path, "a", "0", 0.0, 10.0, node="n1")
    manifest(tmp_path, "b", "0", 0.0, 10.0, node="n2")
    out = timeline(tmp_path)
    assert out.returncode == 0 and "on 2 GPU(s)" in out.stdout, out.stdout
