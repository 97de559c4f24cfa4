"""The torch side of the backward modes: what is timed, on which tensors, and the gradients it gives.

The op's differentiable inputs (`Op.grads`) become leaves that require grad; `prepare` runs on them, so what the
impl receives (its layout: SDPA's (B, H, S, D) copies, Liger's split halves) is differentiable in them. Gradients are
taken with respect to those received tensors (`targets`), so prepare's own layout copies are never timed, and are
carried back to the op's canonical layout through prepare's graph for the check, untimed.

- bwd: the forward runs outside the timed region; the timed call is `torch.autograd.grad(outputs, targets, dy,
  retain_graph=True)` over that retained graph, with the op's fixed, seeded upstream gradient dy.
- fwd_bwd: the timed call is the forward and then `torch.autograd.grad(outputs, targets, dy)` (graph freed).

autograd.grad returns fresh gradients and never accumulates into `.grad` (every leaf's `.grad` stays None between
reps): each call pays for its gradients' allocation and writes, as a training step after `zero_grad(set_to_none=True)`.
On CUDA the forwards run on a side stream of their own: autograd runs each backward op on its forward op's stream, and
a graph capture of the backward must happen on that stream (the default stream cannot be captured).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from opbench import torch_timing


def _as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class TorchGrad:
    """One workload's backward (or forward+backward) on torch: first call, timed call, memory, timer, gradients."""

    def __init__(self, backend, fn: Callable, inputs: tuple, dys: tuple, wl, prepare, finish, mode: str,
                 inplace: bool = False):
        torch = self.torch = backend.torch
        self.backend, self.fn, self.wl, self.mode, self.inplace = backend, fn, wl, mode, inplace
        self.finish = finish or (lambda out: out)
        self.dys = dys
        self.stream = torch.cuda.Stream(backend.device) if backend.has_cuda else None
        names = wl.spec.grads
        self.names = tuple(n for n in names if n)
        self.leaves = tuple(x.requires_grad_() for x, n in zip(inputs, names) if n)
        leaves = iter(self.leaves)
        canonical = tuple(next(leaves) if n else x for x, n in zip(inputs, names))
        with torch.enable_grad():
            self.args = tuple(prepare(*canonical, wl)) if prepare else tuple(wl.spec.args(canonical, wl))
        self.slots = tuple(i for i, a in enumerate(self.args) if isinstance(a, torch.Tensor) and a.requires_grad)
        if not self.slots:
            raise ValueError("no argument of the impl's function requires grad (prepare detached its inputs)")
        self.first_set: tuple | None = None

    @contextlib.contextmanager
    def _on_stream(self):
        """The forwards' stream on CUDA (see the module's docstring); nothing on the CPU."""
        if self.stream is None:
            yield
            return
        cuda = self.torch.cuda
        self.stream.wait_stream(cuda.current_stream())
        with cuda.stream(self.stream):
            yield
        cuda.current_stream().wait_stream(self.stream)

    def _targets(self, args: tuple) -> tuple:
        return tuple(args[i] for i in self.slots)

    def _outputs(self, args: tuple) -> tuple:
        """The forward, differentiable, its output in the op's canonical layout (finish applied)."""
        with self.torch.enable_grad():
            outs = _as_tuple(self.finish(self.fn(*args)))
        if not all(isinstance(o, self.torch.Tensor) and o.requires_grad for o in outs):
            raise TypeError("the impl's output carries no autograd graph: it has no backward here (declare "
                            "opbench.run(backward='why'))")
        return outs

    def _set(self, args: tuple, dys: tuple) -> tuple:
        """One argument set of the timed call: bwd, its own forward's outputs (run here, outside the timed region)."""
        if self.mode == "fwd_bwd":
            return (args, dys)
        with self._on_stream():
            return (self._outputs(args), self._targets(args), dys)

    def call_on(self, *timed_set):
        """The timed call on one argument set; returns the gradients with respect to the targets."""
        grad = self.torch.autograd.grad
        if self.mode == "fwd_bwd":
            args, dys = timed_set
            return grad(self._outputs(args), self._targets(args), dys)
        outs, targets, dys = timed_set
        return grad(outs, targets, dys, retain_graph=True)

    def first(self) -> tuple[dict, tuple | None, float]:
        """The first, cold call (the forward's too in bwd: both compile there), host clock with syncs around it:
        (canonical gradients, canonical forward output in fwd_bwd else None, ms)."""
        backend = self.backend
        backend.sync()
        t0 = time.perf_counter()
        self.first_set = self._set(self.args, self.dys)
        out = None
        if self.mode == "fwd_bwd":
            outs = self._outputs(self.args)
            raw = self.torch.autograd.grad(outs, self._targets(self.args), self.dys)
            out = tuple(o.detach() for o in outs)
        else:
            raw = self.call_on(*self.first_set)
        backend.sync()
        ms = (time.perf_counter() - t0) * 1e3
        grads = self.canonical(raw)  # now: an in-place impl rewrites these with its next call
        return grads, (out if out is None or len(out) > 1 else out[0]), ms

    def call(self):
        assert self.first_set is not None, "first() comes before the timed calls"
        return self.call_on(*self.first_set)

    def canonical(self, raw: tuple) -> dict:
        """Gradients with respect to the targets (any copy's: they share shapes), as {name: tensor} in the op's
        canonical layout: carried back through prepare's graph (pure layout), cloned so later calls cannot touch them."""
        torch = self.torch
        targets = self._targets(self.args)
        if len(targets) == len(self.leaves) and all(t is leaf for t, leaf in zip(targets, self.leaves)):
            grads = raw
        else:
            with torch.enable_grad():
                grads = torch.autograd.grad(targets, self.leaves, raw, retain_graph=True, allow_unused=True)
        missing = [n for n, g in zip(self.names, grads) if g is None]
        if missing:
            raise ValueError(f"no gradient reaches {', '.join(missing)}: prepare cut it off")
        return {n: g.detach().clone() for n, g in zip(self.names, grads)}

    def peak_bytes(self) -> int | None:
        """Bytes one timed call allocates beyond what exists (its gradients included): max_memory_allocated delta."""
        if not self.backend.has_cuda:
            return None
        cuda = self.torch.cuda
        device = self.backend.device
        self.backend.sync()
        cuda.reset_peak_memory_stats(device)
        base = cuda.memory_allocated(device)
        grads = self.call()
        self.backend.sync()
        used = cuda.max_memory_allocated(device) - base
        del grads
        return max(0, int(used))

    @property
    def moved(self) -> tuple:
        """The tensors one timed call reads (the L2 plan's size): the impl's tensor arguments and the upstream grads."""
        return tuple(a for a in self.args if isinstance(a, self.torch.Tensor)) + tuple(self.dys)

    def _copy(self) -> tuple:
        """Another argument set of fresh copies (L2-cold rotation), with its own forward in bwd. Targets become leaves
        of their own (an in-place impl gets a non-leaf clone of one: a leaf that requires grad cannot be written)."""
        torch = self.torch

        def clone(i, a):
            if i in self.slots:
                leaf = a.detach().clone().requires_grad_()
                return leaf.clone() if self.inplace else leaf
            return a.clone() if isinstance(a, torch.Tensor) else a

        with torch.enable_grad():
            args = tuple(clone(i, a) for i, a in enumerate(self.args))
        return self._set(args, tuple(d.clone() for d in self.dys))

    def timer(self, graph_safe: bool, copies: int = 1) -> torch_timing.RepTimer:
        """Graph replay of the timed call where capture works (on the forwards' stream), else events; host clock on
        the CPU. copies > 1: the calls rotate through that many argument sets, each with its own forward."""
        assert self.first_set is not None, "first() comes before the timer"
        sets = [self.first_set] + [self._copy() for _ in range(copies - 1)]
        if self.backend.has_cuda:
            return torch_timing.sets_timer(self.torch, self.call_on, sets, graph_safe, self.backend.device, self.stream)
        return torch_timing.host_timer(self.call_on, sets[0])
