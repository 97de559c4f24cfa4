"""Ray executor overhead: what one trivial job costs through Ray versus the local executor.

How:
- a temp tree of trivial impls (`dependencies = []`, gpu = false, each writes one results line); every run is
  `python -m orchestrator run <jobs> --no-combine --force`, so every job really runs, with envs already built;
- both executors run the jobs one at a time: local with `-j 1`, Ray on a one-node cluster with `--num-cpus 1`
  (started here with tests/ray_cluster.py, or the cluster at $RAY_ADDRESS if set - then not one at a time);
- per-job cost, from the N-job runs' manifests: the cycle (time between consecutive jobs' process starts, one job
  at a time) minus the job's own process time = what the executor adds per job (env check, spawn, transfer, commit);
- the fixed cost of a run: whole-process wall time of a run of 1 job, which for Ray includes connecting to the
  cluster (ray.init, runtime_env upload); medians of --reps interleaved runs;
- one untimed warm-up run of each first (env builds on the node, runtime_env package upload, worker start).
Machine noise hits both alike (interleaved); min and max are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

IMPL = """# /// script
# requires-python = ">=3.10"
# dependencies = []
#
# [tool.orchestrator]
# gpu = false
# ///
import json, os, pathlib
rec = {{"impl": "{name}", "status": "ok", "wl": {{"name": "x"}}, "lat_ms": {{"mean": 1.0}}}}
pathlib.Path(os.environ["ORCH_OUT"], "results.jsonl").write_text(json.dumps(rec) + "\\n")
"""


def make_tree(root: Path, n: int) -> list[str]:
    names = [f"t{i:02d}" for i in range(n)]
    for name in names:
        (root / "impls" / name).mkdir(parents=True)
        (root / "impls" / name / "bench.py").write_text(IMPL.format(name=name))
    (root / "suite.toml").write_text('[[workload]]\nname = "x"\nbatch = 1\nseq_len = 8\nheads = 1\nhead_dim = 4\ndtype = "float32"\n')
    return names


def cycle(root: Path, names: list[str]) -> tuple[float, float]:
    """(seconds from one job's process start to the next's, median job process time) of the last run."""
    runs = []
    for name in names:
        folder = root / "artifacts" / name
        m = json.loads(max(folder.glob("*/manifest.json"), key=lambda f: f.stat().st_mtime).read_text())
        runs.append((m["started"], m["finished"]))
    runs.sort()
    return (runs[-1][0] - runs[0][0]) / (len(runs) - 1), statistics.median(f - s for s, f in runs)


def timed_run(root: Path, names: list[str], extra: list[str], env: dict) -> float:
    cmd = [sys.executable, "-m", "orchestrator", "run", *names, "--no-combine", "--force", "--impls-dir", root / "impls",
           "--artifacts", root / "artifacts", "--envs-dir", root / "envs", "--workloads", root / "suite.toml", *extra]
    t0 = time.perf_counter()
    res = subprocess.run(list(map(str, cmd)), cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(extra)}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=17, help="N, the larger run's job count (default 17)")
    p.add_argument("--reps", type=int, default=5, help="timed runs of each kind (default 5)")
    p.add_argument("--out", type=Path, default=None, help="write the raw numbers here as JSON")
    args = p.parse_args()

    root = Path(tempfile.mkdtemp(prefix="orch-ray-bench-"))
    names = make_tree(root, args.jobs)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(REPO)
    cluster = None
    if not os.environ.get("RAY_ADDRESS"):
        from ray_cluster import start_cluster

        cluster = start_cluster(nodes=1, gpus=0, cpus=1)  # one CPU: Ray runs the jobs one at a time, like -j 1
        env["RAY_ADDRESS"] = cluster.address
    kinds = {"local": ["--executor", "local", "-j", "1"], "ray": ["--executor", "ray"]}
    try:
        for extra in kinds.values():  # warm-up: envs, the node's env cache, runtime_env upload
            timed_run(root, names, extra, env)
        times: dict[str, dict[str, list[float]]] = {k: {"t1": [], "tN": [], "cycle": [], "job": []} for k in kinds}
        for _ in range(args.reps):
            for kind, extra in kinds.items():
                times[kind]["t1"].append(timed_run(root, names[:1], extra, env))
                times[kind]["tN"].append(timed_run(root, names, extra, env))
                c, j = cycle(root, names)
                times[kind]["cycle"].append(c)
                times[kind]["job"].append(j)
    finally:
        if cluster is not None:
            from ray_cluster import stop_cluster

            stop_cluster(cluster)
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.jobs} trivial jobs, {args.reps} reps, cluster: {'1 node, 1 CPU (local)' if cluster else env['RAY_ADDRESS']}")
    cols = {"t1": "run of 1 job", "tN": f"run of {args.jobs} jobs", "cycle": "cycle per job", "job": "job process"}
    print(f"{'executor':<8}" + "".join(f"  {text + ' (s)':>24}" for text in cols.values()) + f"  {'added per job (s)':>18}")
    summary = {}
    for kind in kinds:
        med = {c: statistics.median(times[kind][c]) for c in cols}
        med["added"] = med["cycle"] - med["job"]
        summary[kind] = med
        cells = "".join(f"  {med[c]:>7.3f} [{min(times[kind][c]):.3f}-{max(times[kind][c]):.3f}]" for c in cols)
        print(f"{kind:<8}{cells}  {med['added']:>18.3f}")
    print(f"Ray vs local: {summary['ray']['added'] - summary['local']['added']:+.3f} s per job, "
          f"{summary['ray']['t1'] - summary['local']['t1']:+.2f} s per run (connect + first task)")
    if args.out:
        args.out.write_text(json.dumps({"raw": times, "summary": summary, "jobs": args.jobs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
