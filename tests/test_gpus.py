"""`run --gpus 0,1` on one host: GPU jobs spread over the listed devices, never two timed jobs on one at a time.

`--gpus` is checked against the machine's real GPUs, so this runs only on a host with two or more (issue
"Several GPUs"); elsewhere the same scheduling is covered through Ray's declared GPUs (test_ray.py). The jobs
need no CUDA: each reports the CUDA_VISIBLE_DEVICES it was given and when it ran.
"""

from __future__ import annotations

import json

import pytest

from conftest import GPU_SPAN
from orchestrator.model.device import detect_device
from conftest import entry_of

pytestmark = pytest.mark.skipif(len(detect_device().gpus) < 2, reason="needs a machine with 2 or more NVIDIA GPUs")

def test_gpu_jobs_run_side_by_side_on_different_gpus_and_alone_on_each(tree):
    names = [f"g{i}" for i in range(6)]
    for name in names:
        tree.add_impl(name, GPU_SPAN, settings="gpu = true")
    out = tree.run(*names, extra=["--gpus", "0,1", "-j", "4", "--no-combine"])
    assert out.returncode == 0, out.stdout + out.stderr
    spans = {name: json.loads((entry_of(tree.artifacts, name) / "span.json").read_text()) for name in names}
    by_gpu: dict[str, list[tuple[float, float]]] = {}
    for name, s in spans.items():
        assert s["cvd"] in ("0", "1"), s
        by_gpu.setdefault(s["cvd"], []).append((s["start"], s["end"]))
    assert set(by_gpu) == {"0", "1"}, by_gpu  # both GPUs were used
    for gpu, times in by_gpu.items():
        times.sort()
        assert all(a[1] <= b[0] for a, b in zip(times, times[1:])), (gpu, times)  # one job at a time per GPU
    overlap = any(a[0] < b[1] and b[0] < a[1] for a in by_gpu["0"] for b in by_gpu["1"])
    assert overlap, by_gpu  # and the two GPUs worked at the same time
