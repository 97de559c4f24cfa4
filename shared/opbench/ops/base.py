"""What an operation is, as data: its workload fields, work counts, inputs, reference and how it is drawn.

An op module (one per op, `opbench/ops/<name>.py`) defines `OP = Op(...)`. Importing it loads only the standard
library (the orchestrator's suite validator reads the fields); its functions import numpy/torch when called, from
the impl's own environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()  # a Field without a default: every workload (or the suite's [defaults]) must give it

METRICS = ("tflops", "gbps")
MODES = ("fwd", "bwd", "fwd_bwd")  # what a call times: the forward, the backward alone, both (opbench.schema reads it)
UPSTREAM_INDEX = 100  # the seeded upstream gradient of output i is tensor UPSTREAM_INDEX + i of the workload's draw


@dataclass(frozen=True)
class Field:
    """One workload field. kind: int (positive) or bool. default: a value, REQUIRED, or the name of another
    field whose value it copies (`kv_heads` defaults to `heads`)."""

    name: str
    kind: type
    default: Any = REQUIRED
    same_as: str | None = None
    label: str = ""  # column header in the CSV and tables ("Seq Length")


@dataclass(frozen=True)
class Op:
    """An operation. `metric` is the headline number: "tflops" (compute-bound, against the matmul peak) or
    "gbps" (memory-bound, against the measured copy bandwidth; its timing is L2-cold by rotating inputs).

    flops(wl) and bytes(wl) are the work counts: bytes is the minimum an impl must move (each input read once,
    each output written once). inputs(wl) gives seeded float32 numpy arrays; args(inputs, wl) the default call
    of an impl's function; reference[framework](inputs, wl) the fp32 result (a tensor, or a tuple of them).
    check(wl) raises ValueError for cross-field rules (heads a multiple of kv_heads).

    The backward: grads names each input's gradient (None: not differentiable, as rotary's cos and sin); outputs(wl)
    the output shapes (the seeded upstream gradient has them); bwd_flops and bwd_bytes its work counts (bytes: what a
    backward must read and write at least); grad_reference[framework](inputs, dys, wl) the fp32 gradients
    {name: tensor} for upstream gradients dys. An op without `grads` has no backward modes.
    """

    name: str
    title: str
    fields: tuple[Field, ...]
    metric: str
    x: str  # the field on a chart's x axis; the other fields group workloads into charts
    flops: Callable[[Any], float]
    bytes: Callable[[Any], float]
    inputs: Callable[[Any], tuple]
    args: Callable[[tuple, Any], tuple]
    reference: Mapping[str, Callable[[tuple, Any], Any]]
    layout: str  # the canonical output layout, for error messages ("(B, S, H, D)")
    tolerance: Mapping[str, float] = field(default_factory=lambda: {"float32": 1e-3, "float16": 5e-3, "bfloat16": 1e-2})
    check: Callable[[Mapping[str, Any]], None] | None = None
    seed_key: Callable[[Any], str] | None = None  # today's attention seeds, kept so its inputs do not change
    grads: tuple[str | None, ...] = ()
    outputs: Callable[[Any], tuple[tuple[int, ...], ...]] | None = None
    bwd_flops: Callable[[Any], float] | None = None
    bwd_bytes: Callable[[Any], float] | None = None
    grad_reference: Mapping[str, Callable[[tuple, tuple, Any], dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"op {self.name}: metric must be one of {METRICS}")
        if self.x not in {f.name for f in self.fields}:
            raise ValueError(f"op {self.name}: x axis {self.x!r} is not one of its fields")

    @property
    def memory_bound(self) -> bool:
        return self.metric == "gbps"

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def grad_names(self) -> tuple[str, ...]:
        return tuple(g for g in self.grads if g)

    def work(self, wl, mode: str = "fwd") -> tuple[float, float]:
        """(FLOPs, minimal bytes) of one timed call in `mode`: the forward's, the backward's, or their sum."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        fwd = (self.flops(wl), self.bytes(wl))
        if mode == "fwd":
            return fwd
        if self.bwd_flops is None or self.bwd_bytes is None:
            raise ValueError(f"op {self.name} defines no backward")
        bwd = (self.bwd_flops(wl), self.bwd_bytes(wl))
        return bwd if mode == "bwd" else (fwd[0] + bwd[0], fwd[1] + bwd[1])

    def upstream(self, wl) -> tuple:
        """The seeded float32 upstream gradient of each output (never zeros; distinct from the inputs' draws)."""
        if self.outputs is None:
            raise ValueError(f"op {self.name} defines no backward")
        return tuple(normal(wl.seed, UPSTREAM_INDEX + i, shape) for i, shape in enumerate(self.outputs(wl)))


def elt_bytes(dtype: str) -> int:
    return {"float32": 4, "float16": 2, "bfloat16": 2}[dtype]


CHUNK = 1 << 22  # elements per independently seeded block of a drawn tensor (fixed: the values never depend on threads)


def normal(seed: int, index: int, shape: tuple[int, ...], scale: float = 1.0, shift: float = 0.0):
    """A seeded standard-normal float32 numpy array (times scale, plus shift), drawn in fixed-size blocks on all
    cores: a 537M-element input takes a fraction of a second instead of ten. Block b of tensor `index` comes from
    SeedSequence([seed, index, b]), so the values are the same on every machine and thread count."""
    import math
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    out = np.empty(math.prod(shape), dtype=np.float32)

    def fill(b: int) -> None:
        view = out[b * CHUNK : (b + 1) * CHUNK]
        np.random.default_rng(np.random.SeedSequence([seed, index, b])).standard_normal(dtype=np.float32, out=view)
        if scale != 1.0:
            view *= np.float32(scale)
        if shift:
            view += np.float32(shift)

    blocks = -(-out.size // CHUNK)
    if blocks <= 1:
        fill(0)
    else:
        with ThreadPoolExecutor(max_workers=min(blocks, os.cpu_count() or 1)) as pool:
            list(pool.map(fill, range(blocks)))  # numpy's generators release the GIL while they fill
    return out.reshape(shape)


def torch_autograd_reference(formula: Callable) -> Callable[[tuple, tuple, Any], dict]:
    """A grad_reference from an fp32 formula(tensors, wl): autograd over it on fp32 copies of the inputs, with the
    upstream gradients in fp32 (the rounded values the impl gets). Returns {gradient name: fp32 tensor}."""

    def grads(tensors: tuple, dys: tuple, wl) -> dict:
        import torch

        names = wl.spec.grads
        leaves = tuple(t.detach().float().requires_grad_(bool(n)) for t, n in zip(tensors, names))
        with torch.enable_grad():
            out = formula(leaves, wl)
            outs = out if isinstance(out, tuple) else (out,)
            wanted = [leaf for leaf, n in zip(leaves, names) if n]
            got = torch.autograd.grad(outs, wanted, tuple(d.detach().float() for d in dys))
        return dict(zip((n for n in names if n), (g.detach() for g in got)))

    return grads
