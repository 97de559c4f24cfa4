"""Peak RSS of the orchestrator process itself while a job floods it: 1 GiB of stdout, one 200 MB log line,
a 300 MB one-line JSONL result. Goal: <= 200 MB in every case.

How: each case is one impl (`dependencies = []`, gpu = false) in a temp tree, run through the real CLI
(`run NAME --no-combine`) by a wrapper process that *is* the orchestrator: it calls `orchestrator.cli.main` and
then reports `getrusage(RUSAGE_SELF).ru_maxrss` (this process and its threads; the job is a child and is not
counted). The job writes in 64 KiB chunks, so its own memory stays small; its peak is printed beside for
reference (RUSAGE_CHILDREN). The two log cases exit 1, so the orchestrator reads their log tails; the JSONL case
exits 0, so the orchestrator checks its records.

    python benchmarks/peak_rss.py [--code DIR] [--json FILE]

--code: the orchestrator checkout to measure (default: this one), e.g. a worktree of an older commit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MB = 1 << 20
CHUNK = "CHUNK = b'x' * (64 * 1024)\n"
CASES = {
    "stdout_1GiB": (
        "import sys\n" + CHUNK + "line = (b'y' * 99 + b'\\n') * 655\n"
        "for _ in range((1 << 30) // len(line)):\n    sys.stdout.buffer.write(line)\n"
        "sys.stdout.flush()\nsys.exit(1)\n"
    ),
    "stderr_one_200MB_line": (
        "import sys\n" + CHUNK + "for _ in range(200 * 16):\n    sys.stderr.buffer.write(CHUNK)\n"
        "sys.stderr.buffer.write(b'\\n')\nsys.exit(1)\n"
    ),
    "jsonl_one_300MB_line": (
        "import os\n" + CHUNK + "with open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'wb') as f:\n"
        "    f.write(b'{\"impl\": \"big\", \"pad\": \"')\n"
        "    for _ in range(300 * 16):\n        f.write(CHUNK)\n"
        "    f.write(b'\"}\\n')\n"
    ),
}
WRAPPER = (
    "import json, resource, sys\n"
    "from orchestrator.cli import main\n"
    "rc = main(sys.argv[2:])\n"
    "me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "json.dump({'rc': rc, 'orchestrator_kib': me.ru_maxrss, 'largest_child_kib': kids.ru_maxrss}, open(sys.argv[1], 'w'))\n"
)
SUITE = '[[workload]]\nname = "tiny"\nbatch = 1\nseq_len = 8\nheads = 1\nhead_dim = 4\ndtype = "float32"\n'


def run_case(name: str, body: str, code: Path, root: Path) -> dict:
    tree = root / name
    impl = tree / "impls" / name.lower()
    impl.mkdir(parents=True)
    (impl / "bench.py").write_text("# /// script\n# dependencies = []\n#\n# [tool.orchestrator]\n# gpu = false\n# ///\n" + body)
    (tree / "suite.toml").write_text(SUITE)
    report = tree / "rss.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHONPATH=str(code), UV_CACHE_DIR=str(root / "uv-cache"), ORCH_FORCE_CPU="1")
    args = ["run", name.lower(), "--no-combine", "--impls-dir", tree / "impls", "--artifacts", tree / "artifacts",
            "--envs-dir", root / "envs", "--workloads", tree / "suite.toml"]
    res = subprocess.run([sys.executable, "-c", WRAPPER, report, *map(str, args)], cwd=code, env=env,
                         capture_output=True, text=True)
    if not report.exists():
        return {"case": name, "error": (res.stderr or res.stdout)[-2000:]}
    got = json.loads(report.read_text())
    failed = [line for line in res.stdout.splitlines() if line.startswith("FAILED")]
    shown = max((len(line) for line in res.stdout.splitlines()), default=0)
    shutil.rmtree(tree, ignore_errors=True)  # GBs of logs
    return {"case": name, "rc": got["rc"], "orchestrator_peak_MB": round(got["orchestrator_kib"] / 1024, 1),
            "largest_child_peak_MB": round(got["largest_child_kib"] / 1024, 1), "reason": failed[0] if failed else "",
            "longest_printed_line": shown}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=REPO)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="orch-peak-rss-") as tmp:
        for name in args.cases:
            rows.append(run_case(name, CASES[name], args.code.resolve(), Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'case':<24} {'orchestrator peak RSS':>22} {'job peak':>10}  longest line printed")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:<24} error: {r['error']}")
        else:
            print(f"{r['case']:<24} {r['orchestrator_peak_MB']:>19.1f} MB {r['largest_child_peak_MB']:>7.1f} MB  {r['longest_printed_line']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    worst = max((r.get("orchestrator_peak_MB", 1e9) for r in rows), default=0)
    return 0 if worst <= 200 else 1


if __name__ == "__main__":
    sys.exit(main())
