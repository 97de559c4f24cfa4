"""The device's measured ceilings: the bf16 matrix rate (TFLOP/s, the denominator of `pct_peak`) and the copy
bandwidth (GB/s, the denominator of `pct_bandwidth` for memory-bound ops).

Each is measured once per device name — an 8192³ bf16 matmul on random data; a device-to-device copy of a buffer
many times the L2 — and cached in a small JSON file under the user cache dir ($OPBENCH_CACHE_DIR, else
$XDG_CACHE_HOME/opbench, else ~/.cache/opbench), so every impl, whatever its framework, divides by the same number.
A datasheet number is not a measurement: neither ceiling is ever looked up.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

N = 8192
BATCHES = 3
CALLS = 20


COPY_BYTES = 1 << 30  # one copy reads and writes 1 GiB: ~20x an H200's L2, so it streams from HBM
COPY_CALLS = 10


def cache_file(name: str = "peak_bf16_tflops.json") -> Path:
    base = os.environ.get("OPBENCH_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "opbench")
    return Path(base) / name


def cached(device: str, path: Path | None = None, unit: str = "tflops") -> float | None:
    path = path or cache_file()
    try:
        entry = json.loads(path.read_text()).get(device)
    except (OSError, ValueError, AttributeError):
        return None
    return float(entry[unit]) if isinstance(entry, dict) and unit in entry else None


def store(device: str, tflops: float, how: str, path: Path | None = None, unit: str = "tflops") -> None:
    """Add one device's rate to the cache file (atomic replace; a failure to write only loses the cache)."""
    path = path or cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        data[device] = {unit: round(tflops, 1), "how": how, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def peak_tflops(device: str, measure) -> float:
    """The cached rate for `device`, else `measure()` (TFLOP/s), cached for next time."""
    value = cached(device)
    if value is None:
        value = measure()
        store(device, value, f"{N}^3 bf16 matmul, best of {BATCHES} batches of {CALLS}")
    return value


def copy_gbps(device: str, measure) -> float:
    """The cached copy bandwidth for `device`, else `measure()` (GB/s), cached for next time."""
    path = cache_file("copy_gbps.json")
    value = cached(device, path, "gbps")
    if value is None:
        value = measure()
        store(device, value, f"device-to-device copy of {COPY_BYTES >> 20} MiB (read + write counted), "
              f"best of {BATCHES} batches of {COPY_CALLS}", path, "gbps")
    return value


def measure_copy_torch(device) -> float:
    """GB/s of `dst.copy_(src)` over COPY_BYTES, bytes read plus bytes written, CUDA events, best batch."""
    import torch

    src = torch.empty(COPY_BYTES, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    best = float("inf")
    for _ in range(BATCHES):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(COPY_CALLS):
            dst.copy_(src)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / COPY_CALLS)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * COPY_BYTES / (best * 1e-3) / 1e9


def measure_torch(device) -> float:
    """bf16 N³ matmul rate with CUDA events around batches of back-to-back calls; the best batch wins."""
    import torch

    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(N, N, device=device, dtype=torch.bfloat16, generator=gen)
    b = torch.randn(N, N, device=device, dtype=torch.bfloat16, generator=gen)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(BATCHES):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(CALLS):
            a @ b
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / CALLS)
    return 2 * N**3 / (best * 1e-3) / 1e12


def measure_jax(device) -> float:
    """Same measurement through JAX: host clock around batches of dispatched calls, blocked on the last."""
    import jax
    import jax.numpy as jnp

    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.device_put(jax.random.normal(ka, (N, N), dtype=jnp.bfloat16), device)
    b = jax.device_put(jax.random.normal(kb, (N, N), dtype=jnp.bfloat16), device)
    mm = jax.jit(jnp.matmul)
    for _ in range(3):
        mm(a, b).block_until_ready()
    best = float("inf")
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(CALLS):
            out = mm(a, b)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - t0) * 1e3 / CALLS)
    return 2 * N**3 / (best * 1e-3) / 1e12
