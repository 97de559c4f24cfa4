"""Seeded, reproducible attention inputs, drawn on the host with numpy so every framework gets the same values."""

from __future__ import annotations

import zlib

from opbench.suite import Workload

BASE_SEED = 20240611


def seed_for(wl: Workload) -> int:
    """A stable seed per workload shape, so one workload's inputs don't depend on which others ran before."""
    key = f"{wl.batch}x{wl.seq_len}x{wl.heads}x{wl.kv_heads}x{wl.head_dim}"
    return BASE_SEED ^ zlib.crc32(key.encode())


def host_qkv(wl: Workload):
    """Standard-normal float32 numpy arrays q (B,S,H,D), k and v (B,S,Hkv,D); never zeros.

    Returned in fp32: each backend casts to the workload dtype on its device, so an impl and the reference
    see bit-identical rounded inputs.
    """
    import numpy as np

    rng = np.random.default_rng(seed_for(wl))
    q_shape = (wl.batch, wl.seq_len, wl.heads, wl.head_dim)
    kv_shape = (wl.batch, wl.seq_len, wl.kv_heads, wl.head_dim)
    return tuple(rng.standard_normal(shape, dtype=np.float32) for shape in (q_shape, kv_shape, kv_shape))
