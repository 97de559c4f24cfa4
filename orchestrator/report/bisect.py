"""The judging half of `bisect`: which version to try next, whether a version is slower than GOOD (the very test
`compare` uses: ratio of medians beyond the threshold with Mann-Whitney p < alpha), and the table of what was tried.

A version is slower when any workload (in any mode) it shares with GOOD is, the rule by which `compare` exits 1;
`--workload` narrows that to one workload. Standard library only; running the versions is the command's part.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.report.compare import Row, Sample, judge

SLOWER = "SLOWER"


def verdicts(good: dict, other: dict, threshold: float, alpha: float, workload: str | None = None) -> list[Row]:
    """One row per (impl, workload, mode) both measured (only `workload`'s where given)."""
    keys = sorted(k for k in good.keys() & other.keys() if workload is None or k[1] == workload)
    return [judge(good[k], other[k], threshold, alpha) for k in keys]


def is_slower(rows: list[Row]) -> bool:
    return any(r.verdict == SLOWER for r in rows)


def next_probe(lo: int, hi: int, untestable: set[int]) -> int | None:
    """The index to try between a known-good `lo` and a known-slow `hi`: the middle of those not yet found
    untestable, or None when none is left (then `hi` is the first slow version that could be tested)."""
    left = [i for i in range(lo + 1, hi) if i not in untestable]
    return left[(len(left) - 1) // 2] if left else None


def search(count: int, probe: Callable[[int], bool | None]) -> tuple[int, int, set[int]]:
    """Binary search over versions 0..count-1, 0 known good and count-1 known slow. probe(i): True slow, False
    not, None untestable (skipped or failed: another version is tried). Returns (last good, first slow, untestable)."""
    lo, hi, untestable = 0, count - 1, set[int]()
    while (i := next_probe(lo, hi, untestable)) is not None:
        slow = probe(i)
        if slow is None:
            untestable.add(i)
        elif slow:
            hi = i
        else:
            lo = i
    return lo, hi, untestable


def table(tried: list[tuple[str, str, list[Row], dict]]) -> str:
    """(version, role, rows against GOOD, GOOD's samples) per version tried, oldest first: each workload's median, its
    ratio to GOOD's, the p-value and the verdict (GOOD's own rows are its medians)."""
    head = ("version", "role", "workload", "mode", "p50 ms", "vs good", "p", "verdict")
    body: list[tuple[str, ...]] = []
    for version, role, rows, good in tried:
        if role == "good":
            body += [(version, role, s.workload, s.mode, _ms(s), "1.000", "-", "good") for s in _ordered(good)]
            continue
        if not rows:
            body.append((version, role, "-", "-", "-", "-", "-", "not measured"))
        for r in rows:
            body.append((version, role, r.workload, r.mode, "-" if r.b is None else f"{r.b:.4f}",
                         "-" if r.ratio is None else f"{r.ratio:.3f}", "-" if r.p is None else f"{r.p:.1e}", r.verdict))
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    right = {4, 5, 6}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(x, widths))).rstrip()
             for x in [head, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _ordered(samples: dict) -> list[Sample]:
    return [samples[k] for k in sorted(samples)]


def _ms(s: Sample) -> str:
    return "-" if s.p50 is None else f"{s.p50:.4f}"
