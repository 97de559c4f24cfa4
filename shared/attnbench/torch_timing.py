"""Per-rep timers for torch: CUDA events around one call or one graph replay, L2 flushed before each; host clock on CPU.

Graph mode captures ONE call of the impl into a CUDA graph and times each replay with CUDA events. The L2
flush (a memset of a buffer twice the L2 size) is an ordinary kernel enqueued before the start event, so
it is never inside the measured interval, and because it keeps the GPU busy for tens of microseconds the
host has already enqueued the replay when the start event fires. One call per graph (rather than a graph
of many calls) is what lets every rep start with a cold L2, as the real workload would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from attnbench.errors import one_line

MIN_FLUSH_BYTES = 16 << 20


@dataclass
class RepTimer:
    """Times `n` reps and returns their latencies in ms. mode: graph | events | host."""

    mode: str
    run: Callable[[int], list[float]]
    graph_out: Any = None  # the graph's static output (graph mode), checked against the reference too
    note: str | None = None  # why graph mode was not used, when it was asked for
    keep: Any = None  # objects (graph, buffers) that must live as long as the timer


def flush_buffer(torch, device):
    """A byte buffer at least twice the device's L2 cache; writing it evicts whatever the last rep left in L2."""
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or (50 << 20)
    return torch.empty(max(2 * l2, MIN_FLUSH_BYTES), dtype=torch.uint8, device=device)


def event_runner(torch, call: Callable[[], Any], flush) -> Callable[[int], list[float]]:
    """A function that times n reps of `call` with CUDA events, flushing L2 outside each measured interval."""

    def run(n: int) -> list[float]:
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        for start, end in zip(starts, ends):
            flush.zero_()
            start.record()
            call()
            end.record()
        torch.cuda.synchronize()
        return [s.elapsed_time(e) for s, e in zip(starts, ends)]

    return run


def capture_graph(torch, fn: Callable, args: tuple):
    """Capture one call of fn(*args) in a CUDA graph; returns (graph, static output). Raises if not capturable."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # capture needs the impl warmed on a side stream (lazy init, workspaces)
        for _ in range(2):
            fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(*args)
    graph.replay()
    torch.cuda.synchronize()
    return graph, out


def cuda_timer(torch, fn: Callable, args: tuple, graph_safe: bool, device) -> RepTimer:
    """Graph mode where the impl is graph-safe and capture works; otherwise events around each eager call."""
    flush = flush_buffer(torch, device)
    note = None
    if graph_safe:
        try:
            graph, out = capture_graph(torch, fn, args)
            return RepTimer("graph", event_runner(torch, graph.replay, flush), graph_out=out, keep=(graph, flush))
        except Exception as exc:  # any capture failure falls back to events; the reason goes into the log
            note = f"graph capture failed, timed with events: {one_line(exc)}"
            try:
                torch.cuda.synchronize()
            except Exception:
                pass
    return RepTimer("events", event_runner(torch, lambda: fn(*args), flush), note=note, keep=flush)


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
