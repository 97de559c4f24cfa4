"""The JAX side of the backward modes, timed the way JAX allows (opbench.jax_backend's batched programs).

- bwd: `jax.vjp` runs the forward outside the timed region and gives the backward as a function of the upstream
  gradient (a pytree holding the forward's residuals); the timed call is that function, jitted, on the workload's
  fixed, seeded upstream gradient. Its input copies each have their own jax.vjp (their own residuals).
- fwd_bwd: the timed call is jax.vjp and its backward in one jitted function: the gradient of sum(fn(x) · dy).
Gradients are with respect to the op's differentiable inputs as fn receives them; an impl with a `prepare`
(a layout of its own) has no backward mode here: the error record says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opbench.torch_timing import RepTimer


class JaxGrad:
    """One workload's backward (or forward+backward) in JAX: first call, timed call, memory, timer, gradients."""

    def __init__(self, backend, fn: Callable, inputs: tuple, dys: tuple, wl, prepare, finish, mode: str):
        if prepare is not None:
            raise NotImplementedError("a JAX impl with prepare has no backward mode in this harness")
        self.jax, self.backend, self.mode, self.dys = backend.jax, backend, mode, tuple(dys)
        self.args = tuple(wl.spec.args(inputs, wl))
        names = wl.spec.grads
        self.names = tuple(n for n in names if n)
        diff = [x for x, n in zip(inputs, names) if n]
        self.slots = tuple(next(i for i, a in enumerate(self.args) if a is x) for x in diff)
        finish = finish or (lambda out: out)

        def forward(*arrays):
            full = list(self.args)
            for i, a in zip(self.slots, arrays):
                full[i] = a
            return finish(fn(*full))

        self.forward = forward
        self.backward = self.jax.jit(lambda vjp, dy: vjp(dy))  # the residuals are arguments, not constants

        def fwd_bwd(*arrays_and_dys):
            arrays, dy = arrays_and_dys[: len(self.slots)], arrays_and_dys[len(self.slots):]
            return self.jax.vjp(forward, *arrays)[1](self._cotangent(dy))

        self.fwd_bwd = self.jax.jit(fwd_bwd)
        self.vjp = None

    def _cotangent(self, dys: tuple):
        return dys[0] if len(dys) == 1 else tuple(dys)

    def _arrays(self) -> tuple:
        return tuple(self.args[i] for i in self.slots)

    def first(self) -> tuple[dict, object, float]:
        """The first, cold call (tracing and compilation: jax.vjp's forward and the jitted backward in bwd):
        (gradients, the forward output in fwd_bwd else None, ms)."""
        jax = self.jax
        t0 = time.perf_counter()
        if self.mode == "fwd_bwd":
            raw = jax.block_until_ready(self.fwd_bwd(*self._arrays(), *self.dys))
        else:
            _, self.vjp = jax.vjp(self.forward, *self._arrays())
            raw = jax.block_until_ready(self.backward(self.vjp, self._cotangent(self.dys)))
        ms = (time.perf_counter() - t0) * 1e3
        out = jax.block_until_ready(self.forward(*self._arrays())) if self.mode == "fwd_bwd" else None
        return self.canonical(raw), out, ms

    def call(self):
        if self.mode == "fwd_bwd":
            return self.fwd_bwd(*self._arrays(), *self.dys)
        return self.backward(self.vjp, self._cotangent(self.dys))

    def canonical(self, raw) -> dict:
        return dict(zip(self.names, raw))

    def peak_bytes(self) -> int | None:
        """Temporary + output bytes of the timed call compiled as one XLA program; None where XLA keeps no account."""
        try:
            if self.mode == "fwd_bwd":
                lowered = self.fwd_bwd.lower(*self._arrays(), *self.dys)
            else:
                lowered = self.backward.lower(self.vjp, self._cotangent(self.dys))
            stats = lowered.compile().memory_analysis()
            return int(stats.temp_size_in_bytes + stats.output_size_in_bytes)
        except Exception:
            return None

    @property
    def moved(self) -> tuple:
        return self._arrays() + self.dys

    def timer(self, graph_safe: bool, copies: int = 1) -> RepTimer:
        """The JAX batch timer over input copies (as many as the forward's timer makes): in bwd each copy has its
        own jax.vjp, so no two calls share residuals."""
        from opbench.jax_backend import FLUSH_BYTES, MAX_COPIES, MIN_CALLS, batch_timer

        jax, jnp = self.jax, self.jax.numpy
        if self.mode == "fwd_bwd":
            return self.backend.timer(self.fwd_bwd, self._arrays() + self.dys, graph_safe)
        nbytes = sum(a.size * a.dtype.itemsize for a in self.moved) or 1
        n = min(MAX_COPIES, max(MIN_CALLS, -(-FLUSH_BYTES // nbytes)))
        sets = [(self.vjp, self._cotangent(self.dys))]
        for _ in range(n - 1):
            _, vjp = jax.vjp(self.forward, *(jnp.copy(a) for a in self._arrays()))
            sets.append((vjp, self._cotangent(tuple(jnp.copy(d) for d in self.dys))))
        return batch_timer(jax, lambda s: s[0](s[1]), sets)
