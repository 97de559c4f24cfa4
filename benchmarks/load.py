"""Load: N trivial impls run cold with -j 2 (nothing lost or doubled), then the warm no-op's wall time.

    python benchmarks/load.py --sizes 50 500 2000 --cold 500

Each generated impl writes one file; the cold run must commit exactly N entries, each once (checked through a
shared append-only log). The warm no-op (everything cached, combine included) is timed as a whole process,
median of --reps runs. Prints a table and writes load.json beside it in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BODY = """# /// script
# requires-python = ">=3.10"
# dependencies = []
#
# [tool.orchestrator]
# gpu = false
# ///
import os
open(os.path.join(os.environ["ORCH_OUT"], "out.txt"), "w").write(os.environ["ORCH_IMPL"])
with open(os.environ["LOAD_LOG"], "a") as f:
    f.write(os.environ["ORCH_IMPL"] + "\\n")
"""


def make_tree(root: Path, n: int) -> None:
    for i in range(n):
        d = root / "impls" / f"job{i:05d}"
        d.mkdir(parents=True)
        (d / "bench.py").write_text(BODY)
    (root / "suite.toml").write_text('[[workload]]\nname = "w"\nbatch = 1\nseq_len = 8\nheads = 1\nhead_dim = 4\ndtype = "float32"\n')


def orch(root: Path, python: str, *extra: str) -> tuple[float, subprocess.CompletedProcess]:
    cmd = [python, "-m", "orchestrator", "run", "all", "--impls-dir", str(root / "impls"), "--artifacts",
           str(root / "artifacts"), "--envs-dir", str(root / "envs"), "--workloads", str(root / "suite.toml"), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO), LOAD_LOG=str(root / "log.txt"))
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000])
    ap.add_argument("--cold", type=int, default=500, help="size whose cold run is checked for lost/doubled jobs")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="orch-load-")))
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        root = args.out / f"n{n}"
        make_tree(root, n)
        cold_s, res = orch(root, args.python, "-j", "2")
        if res.returncode != 0:
            print(res.stdout[-3000:], res.stderr[-3000:])
            return 1
        ran = (root / "log.txt").read_text().split()
        entries = sum(1 for d in (root / "artifacts").iterdir() if d.name.startswith("job") for _ in d.iterdir())
        lost_or_doubled = (len(ran) != n or len(set(ran)) != n or entries != n)
        warm = []
        for _ in range(args.reps):
            t, res = orch(root, args.python)
            assert res.returncode == 0 and "cached" in res.stdout
            warm.append(t)
        assert len((root / "log.txt").read_text().split()) == n, "a warm run ran something"
        row = {"impls": n, "cold_s": cold_s, "ran": len(ran), "unique": len(set(ran)), "entries": entries,
               "lost_or_doubled": lost_or_doubled, "warm_median_s": statistics.median(warm), "warm_min_s": min(warm),
               "warm_ms_per_impl": 1e3 * statistics.median(warm) / n}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'impls':>6} {'cold s':>8} {'ran':>6} {'entries':>8} {'lost/doubled':>13} {'warm p50 s':>11} {'ms/impl':>8}")
    for r in rows:
        print(f"{r['impls']:>6} {r['cold_s']:>8.1f} {r['ran']:>6} {r['entries']:>8} {str(r['lost_or_doubled']):>13} "
              f"{r['warm_median_s']:>11.3f} {r['warm_ms_per_impl']:>8.2f}")
    (args.out / "load.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
