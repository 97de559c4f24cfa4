"""Per-rep timers for torch: CUDA events around a graph of back-to-back calls or around one eager call,
L2 flushed before each rep; host clock on CPU.

Graph mode captures N calls of the impl into one CUDA graph (N chosen so a replay lasts about
GRAPH_TARGET_MS) and times each replay with CUDA events; a rep is the replay's time divided by N. The calls
run back to back with no launch gaps, as in `triton.testing.do_bench_cudagraph`, so the number is the
kernel's own steady-state time. The L2 flush (a memset of a buffer twice the L2 size) is an ordinary kernel
enqueued before the start event: it is never inside the measured interval, it keeps the GPU busy while the
host enqueues the replay, and it makes each rep's first call read its inputs from HBM (one call in N, so a
bias below 0.5 % for kernels of tens of µs). The single-call graph is kept too: `cold` times one call per
replay after a flush (cold L2, one graph launch included), which is what an isolated call costs.

Memory-bound ops rotate: the calls of a replay cycle through `copies` copies of the tensor arguments, together
several times the L2, and each call's output is kept (its own buffer), so every call reads and writes memory, not
L2 — a few-MB kernel is otherwise timed from L2 for all but the first call of a replay.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opbench.errors import one_line

MIN_FLUSH_BYTES = 16 << 20
GRAPH_TARGET_MS = 2.0  # one replay of the many-call graph lasts about this long
MAX_CALLS_PER_GRAPH = 200


@dataclass
class RepTimer:
    """Times `n` reps and returns their latencies in ms. mode: graph | events | host."""

    mode: str
    run: Callable[[int], list[float]]
    calls: int = 1  # impl calls per rep (the rep's time is already divided by it)
    cold: Callable[[int], list[float]] | None = None  # graph mode: one call per replay, cold L2
    graph_out: Any = None  # the graph's static output (graph mode), checked against the reference too
    note: str | None = None  # why graph mode was not used, when it was asked for
    keep: Any = None  # objects (graphs, buffers) that must live as long as the timer


def flush_buffer(torch, device):
    """A byte buffer at least twice the device's L2 cache; writing it evicts whatever the last rep left in L2."""
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or (50 << 20)
    return torch.empty(max(2 * l2, MIN_FLUSH_BYTES), dtype=torch.uint8, device=device)


def event_runner(torch, call: Callable[[], Any], flush, calls: int = 1) -> Callable[[int], list[float]]:
    """A function that times n reps of `call` with CUDA events (÷ calls), flushing L2 outside each interval."""

    def run(n: int) -> list[float]:
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        for start, end in zip(starts, ends):
            flush.zero_()
            start.record()
            call()
            end.record()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) / calls for s, e in zip(starts, ends)]

    return run


def copy_args(torch, args: tuple, copies: int) -> list[tuple]:
    """`copies` argument sets: the given one, then clones of its tensors (other arguments shared)."""
    clone = lambda a: a.clone() if isinstance(a, torch.Tensor) else a  # noqa: E731
    return [args] + [tuple(clone(a) for a in args) for _ in range(copies - 1)]


def capture_graph(torch, fn: Callable, sets: list[tuple], calls: int = 1, stream=None):
    """Capture `calls` back-to-back calls of fn in one CUDA graph, call i on sets[i % len(sets)]; returns
    (graph, last output, kept outputs). With several sets every call's output is kept, so none reuses another's.
    stream: warm up and capture on it (a backward must be captured on the stream its forward ran on: autograd runs
    each backward op on its forward op's stream); None: a fresh side stream, then the default capture stream."""
    side = stream if stream is not None else torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # capture needs the impl warmed on a side stream (lazy init, workspaces)
        for _ in range(2):
            fn(*sets[0])
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    kept: list = []
    with torch.cuda.graph(graph) if stream is None else torch.cuda.graph(graph, stream=stream):
        for i in range(calls):
            out = fn(*sets[i % len(sets)])
            if len(sets) > 1:
                kept.append(out)
    graph.replay()
    torch.cuda.synchronize()
    return graph, out, kept


def calls_per_graph(single_call_ms: float) -> int:
    """How many calls one replay holds so that it lasts about GRAPH_TARGET_MS (1 for calls that long)."""
    if single_call_ms <= 0:
        return MAX_CALLS_PER_GRAPH
    return max(1, min(MAX_CALLS_PER_GRAPH, math.ceil(GRAPH_TARGET_MS / single_call_ms)))


def graph_timer(torch, fn: Callable, sets: list[tuple], flush, stream=None) -> RepTimer:
    """Graph mode: the single-call graph sizes the many-call one and stays as the cold timer."""
    single, out, _ = capture_graph(torch, fn, sets[:1], 1, stream)
    cold = event_runner(torch, single.replay, flush)
    calls = calls_per_graph(statistics.median(cold(5)))
    if calls == 1:  # the reps themselves are cold single calls: no second graph, no extra cold reps
        return RepTimer("graph", cold, calls=1, cold=None, graph_out=out, keep=(single, flush, sets))
    graph, out, kept = capture_graph(torch, fn, sets, calls, stream)
    return RepTimer("graph", event_runner(torch, graph.replay, flush, calls), calls=calls, cold=cold,
                    graph_out=out, keep=(single, graph, flush, sets, kept))


def cuda_timer(torch, fn: Callable, args: tuple, graph_safe: bool, device, copies: int = 1) -> RepTimer:
    """Graph mode where the impl is graph-safe and capture works; otherwise events around each eager call.
    copies > 1: the calls rotate through that many copies of the tensor arguments."""
    flush = flush_buffer(torch, device)
    return timer_over(torch, fn, copy_args(torch, args, copies), graph_safe, flush)


def sets_timer(torch, fn: Callable, sets: list[tuple], graph_safe: bool, device, stream=None) -> RepTimer:
    """cuda_timer over argument sets made by the caller (the backward modes: each set holds its own forward's
    outputs); the calls rotate through them. stream: where graph capture happens (see capture_graph)."""
    return timer_over(torch, fn, sets, graph_safe, flush_buffer(torch, device), stream)


def timer_over(torch, fn: Callable, sets: list[tuple], graph_safe: bool, flush, stream=None) -> RepTimer:
    note = None
    if graph_safe:
        try:
            return graph_timer(torch, fn, sets, flush, stream)
        except Exception as exc:  # any capture failure falls back to events; the reason goes into the log
            note = f"graph capture failed, timed with events: {one_line(exc)}"
            try:
                torch.cuda.synchronize()
            except Exception:
                pass
    turn = iter(range(1 << 62))
    return RepTimer("events", event_runner(torch, lambda: fn(*sets[next(turn) % len(sets)]), flush), note=note,
                    keep=(flush, sets))


def host_timer(fn: Callable, args: tuple) -> RepTimer:
    """CPU: time.perf_counter around each call (the work is synchronous on the CPU)."""

    def run(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn(*args)
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    return RepTimer("host", run)
