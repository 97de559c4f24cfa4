"""Env rebuild: time to rebuild a deleted torch environment whose wheels are already in uv's cache
(goal <= 1 s), measured in-process around `orchestrator.env.isolated.ensure_env`, and cross-checked through the CLI.

How:
- runs itself inside the orchestrator's benchmark venv (see _speed.py), so envs are made from the same
  interpreter as `python -m orchestrator` would use; uv is that venv's uv binary; UV_FIND_LINKS=/opt/wheels;
- a trivial impl `torch_cpu` (requires-python >=3.11, dependencies = ["torch==2.13.0+cpu"], gpu = false) whose
  bench.lock.txt is written here: pins from the orchestrator's own `compile_pins` (`uv pip compile --universal
  --generate-hashes ... --find-links /opt/wheels`), checked to pin the local +cpu wheel by its sha256 and no
  nvidia-*/triton package (else it stops: PyPI's torch is a multi-GB CUDA build and is never downloaded), then
  written by `orchestrator.env.pins.write_lock` (its header, `# inputs-sha256:` = inputs_hash(job)) and checked
  `lock_state == "ok"`;
- a private uv cache (UV_CACHE_DIR) in the temp tree, on the same filesystem as the envs folder (as
  ~/.cache/uv and ~/.cache/orchestrator/envs are); envs copy their files out of it (`--link-mode copy`, so no job
  can change the cache through an env), and the build also stores the env's stat snapshot; deleted at the end;
- one cold build (wheels into uv's cache), then `--reps` times: delete the env folder (then sync), time `ensure_env(...)`,
  with each uv call it makes timed separately (venv, pip sync, pip freeze);
- for reference, `cp -al` of the built env (the same ~15k files as hardlinks, what uv did before envs were
  copied), 3 times;
- `--cli-reps` times: delete the env folder, time `python -m orchestrator run torch_cpu --force --no-combine`
  (whole process) and subtract the job's own run time (manifest finished - started: python importing torch);
  its progress lines also give the 'building env' phase alone.
The machine may be shared with other work: medians, min and max are all reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _speed as c

WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")
SCRIPT = """# /// script
# requires-python = ">=3.11"
# dependencies = ["torch==2.13.0+cpu"]
#
# [tool.orchestrator]
# gpu = false
# ///
import json, os, pathlib
import torch
rec = {"impl": "torch_cpu", "status": "ok", "torch": torch.__version__, "cuda": torch.version.cuda}
pathlib.Path(os.environ["ORCH_OUT"], "results.jsonl").write_text(json.dumps(rec) + "\\n")
"""


def make_lock(job, uv_exe: str) -> str:
    from orchestrator.env import pins as locks
    from orchestrator.env.uv import Uv

    pins = locks.compile_pins(job, Uv(exe=uv_exe, wheelhouses=(WHEEL.parent,)))
    digest = hashlib.sha256(WHEEL.read_bytes()).hexdigest()
    names = [ln.split("==")[0].strip() for ln in pins.splitlines() if "==" in ln and not ln.startswith(" ")]
    bad = [n for n in names if n.startswith("nvidia-") or n == "triton"]
    if "torch==2.13.0+cpu" not in pins or digest not in pins or bad:
        raise SystemExit(f"uv did not pin the local CPU wheel (CUDA packages: {bad}); stopping, nothing installed.\n{pins}")
    real_compile = locks.compile_pins
    locks.compile_pins = lambda job, uv: pins  # write_lock: the orchestrator's own header and checks, these pins
    try:
        locks.write_lock(job, Uv(exe=uv_exe))
    finally:
        locks.compile_pins = real_compile
    assert locks.lock_state(job) == "ok", "the written lock is not considered current"
    return job.lock.read_text()


def drop(env_root: Path) -> None:
    """Delete the env, and let the filesystem settle (15k unlinks) so their deferred work is not timed as the build."""
    shutil.rmtree(env_root)
    os.sync()
    time.sleep(0.5)


def main() -> None:
    orch_py = c.orch_venv("--fresh-venvs" in sys.argv)
    if Path(sys.prefix).resolve() != orch_py.parent.parent.resolve():  # go on inside the orchestrator venv
        argv = [a for a in sys.argv[1:] if a != "--fresh-venvs"]
        os.execv(orch_py, [str(orch_py), str(Path(__file__).resolve()), *argv])
    sys.path.insert(0, str(c.REPO))
    from orchestrator.env import isolated as E
    from orchestrator.model.job import load_job
    from orchestrator.env.isolated import Interpreter, ensure_env, env_for, pins_of
    from orchestrator.env.uv import Uv

    args = c.parse_args(__doc__, reps=(5, "timed in-process rebuilds"), cli_reps=(3, "timed CLI rebuilds"),
                        keep=(0, "1: keep the temp tree (envs, uv cache)"))
    root = Path(tempfile.mkdtemp(prefix="orch-bench-envs-"))
    bindir = c.uv_bindir(root, orch_py)
    env = {**c.tool_env(bindir), "UV_FIND_LINKS": str(WHEEL.parent), "UV_CACHE_DIR": str(root / "uv-cache")}
    os.environ.update({k: env[k] for k in ("PATH", "UV_FIND_LINKS", "UV_CACHE_DIR")})
    impls = root / "impls"
    (impls / "torch_cpu").mkdir(parents=True)
    (impls / "torch_cpu" / "bench.py").write_text(SCRIPT)
    suite = root / "suite.toml"
    suite.write_text('[[workload]]\nname = "x"\nbatch = 1\nseq_len = 8\nheads = 1\nhead_dim = 4\ndtype = "float32"\n')
    uv_exe = str(bindir / "uv")
    job = load_job(impls / "torch_cpu" / "bench.py", "torch_cpu")

    t0 = time.perf_counter()
    lock_text = make_lock(job, uv_exe)
    t_lock = time.perf_counter() - t0
    pins, interp, envs_dir, uv = pins_of(lock_text), Interpreter.current(), root / "envs", Uv(exe=uv_exe)
    uv_calls: list = []
    real_run_tool = E.run_tool

    def timed_tool(cmd, **kw):
        t = time.perf_counter()
        try:
            return real_run_tool(cmd, **kw)
        finally:
            uv_calls.append((" ".join(Path(cmd[0]).name if i == 0 else cmd[i] for i in range(3)), time.perf_counter() - t))

    E.run_tool = timed_tool
    t0 = time.perf_counter()
    built = ensure_env(pins, interp, envs_dir, uv)
    t_cold = time.perf_counter() - t0
    cold_calls, rebuild_calls = list(uv_calls), []
    rebuild = c.Series()
    for _ in range(args.reps):
        drop(built.root)
        uv_calls.clear()
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        assert ensure_env(pins, interp, envs_dir, uv).root == built.root
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        rebuild.add((wall, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, ""))
        rebuild_calls.append(list(uv_calls))
    E.run_tool = real_run_tool
    floor = c.Series()  # the filesystem's share: hardlink the same tree (15k files) with cp -al
    for _ in range(3):
        floor.add(c.timed(["cp", "-al", built.root, root / "cp-al"]))
        drop(root / "cp-al")
    probe = c.sh([built.python, "-c", "import torch; print(torch.__version__, torch.version.cuda)"]).stdout.strip()
    so = next(built.root.glob("lib/python*/site-packages/torch/lib/libtorch_cpu.so"))
    size_mb = sum(f.stat().st_size for f in built.root.rglob("*") if f.is_file()) / 1e6

    cli, job_run, cli_build = c.Series(), [], []
    cmd = [orch_py, "-m", "orchestrator", "run", "torch_cpu", "--force", "--no-combine", "--impls-dir", impls,
           "--artifacts", root / "artifacts", "--envs-dir", envs_dir, "--workloads", suite]
    for _ in range(args.cli_reps):
        drop(built.root)
        seen = {}  # progress lines (one per state change, stdout not a TTY) -> seconds since start
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        with subprocess.Popen([str(x) for x in cmd], cwd=c.REPO, env=env, stdout=subprocess.PIPE, text=True) as p:
            for line in p.stdout:
                seen.setdefault(line.split("torch_cpu")[-1].split()[0] if "torch_cpu" in line else line, time.perf_counter() - t0)
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        assert p.returncode == 0, seen
        cli.add((wall, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, ""))
        cli_build.append(seen["waiting"] - seen["building"])
        m = json.loads(next((root / "artifacts" / "torch_cpu").glob("*/manifest.json")).read_text())
        job_run.append(m["finished"] - m["started"])
    cli_minus = [w - j for w, j in zip(cli.wall, job_run)]

    s = {"ensure_env rebuild (in-process)": rebuild.stats(), "cp -al of the built env (reference)": floor.stats(),
         "CLI run --force, whole process": cli.stats()}
    per_call = {}
    for calls in rebuild_calls:
        for name, d in calls:
            per_call.setdefault(name, []).append(d)
    med = statistics.median
    lines = [c.table(list(s.items())), "",
             f"ensure_env rebuild median {rebuild.stats()['median']:.3f} s  (goal <= 1 s: "
             f"{'met' if rebuild.stats()['median'] <= 1 else 'NOT met'}); per uv call, medians: "
             + ", ".join(f"{n} {med(v) * 1e3:.0f} ms" for n, v in per_call.items()),
             f"CLI: whole process minus the job's own run: median {med(cli_minus):.3f} s "
             f"(min {min(cli_minus):.3f}, max {max(cli_minus):.3f}); job run (imports torch) median {med(job_run):.2f} s; "
             f"its 'building env' phase (progress lines) median {med(cli_build):.3f} s",
             f"lock compile {t_lock:.2f} s; first build (uv cache held only what that compile put in it) {t_cold:.2f} s: "
             + ", ".join(f"{n} {d:.2f} s" for n, d in cold_calls),
             f"env: {len(built.packages())} packages, {size_mb:.0f} MB; torch says: {probe}; "
             f"libtorch_cpu.so link count {so.stat().st_nlink} ({'hardlinked from uv cache' if so.stat().st_nlink > 1 else 'copied'})"]
    c.report(args.out, "env_rebuild", "\n".join(lines),
             {"stats": s, "lock_s": t_lock, "cold_s": t_cold, "cold_uv_calls": cold_calls, "rebuild_uv_calls": rebuild_calls,
              "cli_minus_job_s": cli_minus, "cli_build_phase_s": cli_build, "job_run_s": job_run, "torch": probe, "packages": built.packages(),
              "lock": lock_text, "tree": str(root)})
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
