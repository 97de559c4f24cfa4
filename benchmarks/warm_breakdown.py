"""Where a warm no-op `python -m orchestrator run all` spends its time (the profile behind warm_noop.py).

How (same venv, tree of 12 trivial impls + combine, and .pyc prefix as warm_noop.py; see _speed.py):
- CPU time (user + sys), minimum over `--reps` fresh processes, of a growing ladder of commands, so each step's
  increment is one part of the warm run: bare interpreter; + the stdlib modules the warm path uses;
  + the stdlib modules only building/running jobs needs (subprocess, concurrent.futures -> logging, queue,
  traceback, socket, shlex, tempfile; dataclasses, typing, tomllib, hashlib only on a first parse or a big file);
  + the orchestrator's own modules (their bodies: frozen classes, regexes);
  the full warm `run all` (adds main() and interpreter exit). Minimums, because the machine may be shared;
- then in one process, after the imports, each phase of cli.main() timed by wrapping its function (minimum and
  median over `--reps` calls): argparse parser, context, discovery, plan (locks, keys, cache look-ups with the
  sha256 check of every file), the scheduler's pass over cached results (stage key), the summary.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _speed as c

# Stdlib the orchestrator imports, split by whether a warm run calls into it (read off the code and a
# sys.setprofile trace of a warm cli.main()) or only building envs and running jobs does.
WARM = ["argparse", "json", "pathlib", "re", "shutil", "signal", "threading", "fcntl", "_sha256"]
RUN_ONLY = ["subprocess", "concurrent.futures.thread", "queue", "traceback", "socket", "shlex", "tempfile",
            "dataclasses", "typing", "tomllib", "hashlib"]  # the last four: first parse of a block, big files, ...
ORCH = "import orchestrator.cli, orchestrator.cli.run, orchestrator.run.plan, orchestrator.run.scheduler, orchestrator.run.jobrun, orchestrator.executors.local, orchestrator.run.progress, orchestrator.run.summary"


def imported(py, argv, env) -> set[str]:
    err = c.sh([py, "-X", "importtime", *argv], cwd=c.REPO, env=env).stderr
    return {ln.rsplit("|", 1)[1].strip() for ln in err.splitlines() if ln.startswith("import time:") and "|" in ln}


def main() -> None:
    orch_py = c.orch_venv("--fresh-venvs" in sys.argv)
    if Path(sys.prefix).resolve() != orch_py.parent.parent.resolve():  # go on inside the orchestrator venv
        os.execv(orch_py, [str(orch_py), str(Path(__file__).resolve()), *[a for a in sys.argv[1:] if a != "--fresh-venvs"]])
    args = c.parse_args(__doc__, reps=(15, "processes per ladder step, and in-process main() calls"))
    root = Path(tempfile.mkdtemp(prefix="orch-bench-breakdown-"))
    impls, suite = c.write_impls(root)
    env = c.tool_env(c.uv_bindir(root, orch_py))
    cmd = c.orch_cmd(orch_py, impls, root / "artifacts", root / "envs", suite)
    for _ in range(3):  # cold run, then fill the .pyc prefix
        out = c.sh(cmd, cwd=c.REPO, env=env).stdout
    if "13 cached in " not in out:
        raise SystemExit(f"not a warm run:\n{out}")
    stdlib = "import " + ", ".join(WARM + RUN_ONLY)
    ladder = [("python -c pass", ["-c", "pass"]),
              ("+ stdlib used on the warm path", ["-c", "import " + ", ".join(WARM)]),
              ("+ stdlib only for building/running", ["-c", stdlib]),
              ("+ orchestrator modules", ["-c", stdlib + "; " + ORCH]),
              ("full warm run all (+ main() + exit)", cmd[1:])]
    extra = sorted(m for m in imported(orch_py, cmd[1:], env) - imported(orch_py, ["-c", stdlib], env)
                   if not m.startswith("orchestrator"))
    cpu = {name: [] for name, _ in ladder}
    for _ in range(args.reps):
        for name, argv in ladder:
            cpu[name].append(c.timed([orch_py, *argv], cwd=c.REPO, env=env)[1])
    lines = [f"{'step (CPU ms, min of ' + str(args.reps) + ')':<44} {'total':>7} {'step':>7}"]
    prev = 0.0
    for name, _ in ladder:
        m = min(cpu[name]) * 1e3
        lines.append(f"{name:<44} {m:7.1f} {m - prev:+7.1f}")
        prev = m
    lines.append(f"  warm-path stdlib: {', '.join(WARM)}; build/run-only: {', '.join(RUN_ONLY)} (and what they import)")
    lines.append(f"  imported by the warm run beyond those two lists (runpy, site, .pth): {', '.join(extra) or 'none'}")

    sys.path.insert(0, str(c.REPO))
    os.environ.update(env)
    from orchestrator import cli
    from orchestrator.cache import store
    from orchestrator.cli import run as commands  # where `run` looks up make_context and load_jobs
    from orchestrator.run import plan, scheduler, summary
    phases: dict[str, list[float]] = {}
    current: dict[str, float] = {}

    def wrap(owner, attr, label):
        f = getattr(owner, attr)

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                current[label] = current.get(label, 0.0) + time.perf_counter() - t
        setattr(owner, attr, timed)

    wraps = [(cli, "build_parser", "argparse parser (the chosen command's arguments)"),
             (commands, "make_context", "make_context (device, suite, store)"),
             (commands, "load_jobs", "discover (12 PEP 723 blocks, parsed before)"),
             (plan, "prepare_envs", "prepare_envs (the provider's records: host layers)"),
             (plan, "plan", "plan (locks, keys, look-ups)"),
             (scheduler.Scheduler, "run", "Scheduler.run (stage key + look-up)"),
             (summary, "print_summary", "print_summary (latest symlink)"),
             (store.Store, "lookup", "Store.lookup, within plan + Scheduler.run (sha256 of every file)")]
    for owner, attr, label in wraps:
        wrap(owner, attr, label)
    argv = [str(a) for a in cmd[3:]]
    for _ in range(args.reps):
        current.clear()
        with contextlib.redirect_stdout(io.StringIO()) as buf:
            t = time.perf_counter()
            cli.main(argv)
            current["cli.main() total"] = time.perf_counter() - t
        if "13 cached in " not in buf.getvalue():
            continue  # combine reran: its sources (orchestrator/stages/) were edited meanwhile
        for k, v in current.items():
            phases.setdefault(k, []).append(v)
    lines += ["", f"{'in-process cli.main() phase (wall ms)':<64} {'min':>6} {'median':>7}"]
    for k in [w[2] for w in wraps] + ["cli.main() total"]:
        lines.append(f"{k:<64} {min(phases[k]) * 1e3:6.2f} {statistics.median(phases[k]) * 1e3:7.2f}")
    c.report(args.out, "warm_breakdown", "\n".join(lines), {"ladder_cpu_s": cpu, "phases_s": phases, "extra_modules": extra, "tree": str(root)})


if __name__ == "__main__":
    main()
