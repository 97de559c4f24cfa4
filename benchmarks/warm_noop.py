"""Warm no-op: whole-process wall time of `python -m orchestrator run all` when every job and combine are cached,
side by side with uvnote 0.3.1's warm `uvnote build` of the same 12 + 1 trivial cells.

How:
- two dedicated venvs of the base interpreter (under $TMPDIR/orch-bench-venvs): one with the orchestrator's
  dependencies (the code is imported from the checkout, cwd = repo root), one with `uvnote==0.3.1`; each tool is
  started through its venv's own python / console script, never through a pyenv shim;
- a temp tree of 12 trivial impls (`dependencies = []`, gpu = false, each writes results.jsonl) plus the built-in
  combine stage, and one uvnote notebook with 12 cells writing a file each and a combine cell `needs=` all 12;
- one cold run of each (locks, envs, cache), two untimed warm-ups, then `--reps` timed warm runs of each,
  interleaved (orchestrator, uvnote, bare `python -c pass`, import-only) so machine noise hits them alike;
- .pyc files go to a prefix folder (PYTHONPYCACHEPREFIX), since this machine sets PYTHONDONTWRITEBYTECODE=1;
  one extra row keeps that setting, i.e. the checkout's modules compiled from source on every start;
- checks on one extra warm orchestrator run: `-X importtime` (no matplotlib/torch/numpy imported), a fake `uv`
  first on PATH that logs every call, and `strace -f -e execve` where available (nothing executed but python).
Goal: orchestrator / uvnote <= 0.25. The machine may be shared: medians, min and max are all reported.
"""

from __future__ import annotations

import re
import statistics
import shutil
import subprocess
import tempfile
from pathlib import Path

import _speed as c

HEAVY = ("matplotlib", "torch", "numpy", "pandas", "jax")


def import_check(py, cmd, cwd, env) -> dict:
    res = subprocess.run([py, "-X", "importtime", *map(str, cmd[1:])], cwd=cwd, env=env, capture_output=True, text=True)
    mods = []  # (name, self us, cumulative us, depth)
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        if m:
            mods.append((m.group(4), int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2))
    heavy = sorted({n for n, *_ in mods if n.split(".")[0] in HEAVY})
    own = sum(m[1] for m in mods if m[0].split(".")[0] == "orchestrator")
    top = sorted((m for m in mods if m[3] == 0), key=lambda m: -m[2])[:8]  # imported by __main__, by cumulative
    return {"modules": len(mods), "heavy_imported": heavy, "total_us": sum(m[1] for m in mods), "orchestrator_self_us": own,
            "top_level_cumulative_us": [(n, cum) for n, _, cum, _ in top],
            "biggest_self_us": [(n, us) for n, us, *_ in sorted(mods, key=lambda m: -m[1])[:8]], "rc": res.returncode}


def fake_uv_check(py, cmd, root: Path, cwd) -> dict:
    log = root / "uv-calls.log"
    env = c.tool_env(c.uv_bindir(root, py, fake_log=log))
    c.sh(cmd, cwd=cwd, env=env)
    calls = log.read_text().splitlines() if log.exists() else []
    return {"uv_calls": calls}


def strace_check(cmd, root: Path, cwd, env) -> dict:
    if not shutil.which("strace"):
        return {"strace": "not installed"}
    log = root / "strace.log"
    res = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(log), *map(str, cmd)], cwd=cwd,
                         env=env, capture_output=True, text=True)
    if res.returncode != 0:
        return {"strace": f"failed: {res.stderr.strip()[-300:]}"}
    lines = [ln for ln in log.read_text().splitlines() if "execve(" in ln]
    ok = [re.search(r'execve\("([^"]+)"', ln).group(1) for ln in lines if ln.rstrip().endswith("= 0")]
    return {"strace_execs": ok, "execve_attempts": len(lines)}


def all_cached(text: str) -> bool:
    return any(ln.startswith("13 cached in ") for ln in text.splitlines())


def main() -> None:
    args = c.parse_args(__doc__, reps=(7, "timed warm runs of each"), jobs=(0, "-j for the orchestrator (0: its default)"))
    orch_py, note_py = c.orch_venv(args.fresh_venvs), c.uvnote_venv(args.fresh_venvs)
    root = Path(tempfile.mkdtemp(prefix="orch-bench-warm-"))
    impls, suite = c.write_impls(root)
    note = c.write_notebook(root / "notebook")
    bindir = c.uv_bindir(root, orch_py)
    env, env_nopyc = c.tool_env(bindir), c.tool_env(bindir, bytecode=False)
    orch = c.orch_cmd(orch_py, impls, root / "artifacts", root / "envs", suite, *(["-j", str(args.jobs)] if args.jobs else []))
    nb, ncwd = c.uvnote_cmd(note_py), note.parent
    imports = [orch_py, "-c", "import orchestrator.cli, orchestrator.cli.run, orchestrator.run.plan, orchestrator.run.scheduler, orchestrator.run.jobrun, orchestrator.executors.local, orchestrator.run.progress, orchestrator.run.summary"]

    cold = {"orchestrator": c.timed(orch, cwd=c.REPO, env=env)[0], "uvnote": c.timed(nb, cwd=ncwd, env=env)[0]}
    for _ in range(2):  # untimed warm-ups (also fill the .pyc prefix folder)
        c.sh(orch, cwd=c.REPO, env=env), c.sh(nb, cwd=ncwd, env=env)
    ORCH, NOTE = "orchestrator run all (warm)", "uvnote build (warm)"
    rows = [ORCH, NOTE, "uvnote run (warm, no HTML)", "orchestrator, no .pyc (PYTHONDONTWRITEBYTECODE=1)",
            "orch venv: python -c pass", "uvnote venv: python -c pass", "orch venv: import orchestrator modules"]
    t = {k: c.Series() for k in rows}
    redone = 0
    for _ in range(args.reps):
        for attempt in range(4):  # others may edit orchestrator/stages/ meanwhile: combine's key changes, it reruns
            w = c.timed(orch, cwd=c.REPO, env=env)
            if all_cached(w[2]):
                break
            redone += 1
        else:
            raise SystemExit(f"warm run kept running jobs:\n{w[2]}")
        t[ORCH].add(w)
        if t[NOTE].add(c.timed(nb, cwd=ncwd, env=env)).count("cache=hit") != 13:
            raise SystemExit("uvnote warm build was not fully cached")
        t["uvnote run (warm, no HTML)"].add(c.timed(c.uvnote_cmd(note_py, "run"), cwd=ncwd, env=env))
        nopyc = t["orchestrator, no .pyc (PYTHONDONTWRITEBYTECODE=1)"].add(c.timed(orch, cwd=c.REPO, env=env_nopyc))
        redone += not all_cached(nopyc)
        t["orch venv: python -c pass"].add(c.timed([orch_py, "-c", "pass"], env=env))
        t["uvnote venv: python -c pass"].add(c.timed([note_py, "-c", "pass"], env=env))
        t["orch venv: import orchestrator modules"].add(c.timed(imports, cwd=c.REPO, env=env))
    s = {k: v.stats() for k, v in t.items()}
    ratio = s[ORCH]["median"] / s[NOTE]["median"]
    ratio_cpu = s[ORCH]["cpu_median"] / s[NOTE]["cpu_median"]
    paired = statistics.median(o / n for o, n in zip(t[ORCH].wall, t[NOTE].wall))  # runs next to each other

    checks = {"importtime": import_check(orch_py, orch, c.REPO, env), **fake_uv_check(orch_py, orch, root, c.REPO),
              **strace_check(orch, root, c.REPO, env)}
    imp = checks["importtime"]
    lines = [c.table(list(s.items())), "",
             f"cold first runs (locks, env, 13 jobs): orchestrator {cold['orchestrator']:.2f} s, uvnote build {cold['uvnote']:.2f} s",
             f"ratio orchestrator / uvnote build, wall medians: {ratio:.3f}  (goal <= 0.25: {'met' if ratio <= 0.25 else 'NOT met'});"
             f" cpu medians: {ratio_cpu:.3f}; median of per-rep ratios: {paired:.3f}",
             f"warm runs redone because a job reran (orchestrator sources edited meanwhile): {redone}",
             "", "warm orchestrator run, checks:",
             f"  -X importtime: {imp['modules']} modules, {imp['total_us'] / 1e3:.1f} ms self-time in total; "
             f"of which orchestrator.* {imp['orchestrator_self_us'] / 1e3:.1f} ms; "
             f"heavy ({', '.join(HEAVY)}) imported: {imp['heavy_imported'] or 'none'}",
             "  imported by __main__, cumulative: "
             + ", ".join(f"{n} {us / 1e3:.1f}" for n, us in imp["top_level_cumulative_us"]),
             "  biggest self times: " + ", ".join(f"{n} {us / 1e3:.1f}" for n, us in imp["biggest_self_us"]),
             f"  fake uv first on PATH: {len(checks['uv_calls'])} uv calls" + (f": {checks['uv_calls']}" if checks["uv_calls"] else ""),
             "  strace -f execve: " + (str(checks.get("strace_execs")) if "strace_execs" in checks else checks["strace"])]
    c.report(args.out, "warm_noop", "\n".join(lines),
             {"stats": s, "ratio_wall": ratio, "ratio_cpu": ratio_cpu, "ratio_paired": paired, "cold_s": cold,
              "redone": redone, "checks": checks,
              "orch_cmd": [str(x) for x in orch], "uvnote_cmd": [str(x) for x in nb], "tree": str(root)})


if __name__ == "__main__":
    main()
