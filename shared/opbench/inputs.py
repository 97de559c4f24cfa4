"""Seeded, reproducible inputs, drawn on the host with numpy so every framework gets the same values."""

from __future__ import annotations

from opbench.suite import Workload


def host_inputs(wl: Workload) -> tuple:
    """The op's float32 numpy inputs for this workload (its own seeded draw: see `Workload.seed`).

    Returned in fp32: each backend casts to the workload dtype on its device, so an impl and the reference
    see bit-identical rounded inputs.
    """
    return tuple(wl.spec.inputs(wl))

