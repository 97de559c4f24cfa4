"""The end of a run: counts, each failure with its log tail, where the combined results are, and the exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.model.context import Context
from orchestrator.run.jobrun import Result
from orchestrator.run.stage import STAGE


def exit_code(results: dict[str, Result]) -> int:
    """0 when every job is ok or skipped, 1 when any failed."""
    return 1 if any(r.status == "failed" for r in results.values()) else 0


def print_summary(ctx: Context, results: dict[str, Result], elapsed: float, latest: Path | None = None,
                  stream=None) -> int:
    """Print the run's outcome (and the combined table when `latest` points at it); return the exit code."""
    out = stream or sys.stdout
    counts: dict[str, int] = {}
    for r in results.values():
        label = "cached" if r.cached else r.status
        counts[label] = counts.get(label, 0) + 1
    print(f"\n{', '.join(f'{n} {k}' for k, n in sorted(counts.items()))} in {elapsed:.1f} s", file=out)
    for r in results.values():
        if r.status == "skipped":
            print(f"  skipped {r.name}: {r.reason}", file=out)
    empty = [r.name for r in results.values() if r.status == "ok" and r.name != STAGE and not r.has_records]
    if empty:
        print(f"  ok but wrote no result records: {', '.join(empty)}", file=out)
    for r in results.values():
        if r.status == "failed":
            print(f"\nFAILED {r.name}: {r.reason}", file=out)
            if r.log_tail:
                print("  " + r.log_tail.replace("\n", "\n  "), file=out)
            failed_dir = ctx.store.root / ".failed" / r.name
            if failed_dir.is_dir():
                print(f"  logs: {failed_dir / 'logs'}", file=out)
    stage = results.get(STAGE)
    if stage is not None and stage.entry is not None and latest is not None:
        table = stage.entry / "summary.txt"
        if table.is_file():
            print("\n" + table.read_text(encoding="utf-8", errors="replace").rstrip(), file=out)
        print(f"\ncombined results: {latest}/ (= {stage.entry}); open {latest}/report.html", file=out)
    return exit_code(results)
