"""Cold run: whole-process wall time of `python -m orchestrator run all` on 12 trivial impls + combine with no
environment built and no result cached (locks already written), next to uvnote 0.3.1's cold `uvnote build` of
the same 12 + 1 cells with its cache cleared.

How:
- the same venvs, impl tree and notebook as warm_noop.py (see benchmarks/_speed.py); each tool started through
  its venv's own python / console script; .pyc files go to a prefix folder (PYTHONPYCACHEPREFIX);
- one untimed first run of each writes the locks (and warms the OS and uv caches);
- each of `--reps` reps, interleaved: the orchestrator with a fresh --envs-dir and a fresh --artifacts (so the
  one shared empty env is created by `uv venv` and all 13 jobs run); the orchestrator with a fresh --artifacts
  but the envs kept (jobs only); uvnote after deleting its cache, i.e. the notebook folder's `.uvnote/`
  (cache/, cells/, index.db) and `site/`. uvnote cells without `deps=` have no environment to build: each is
  one `uv run cell.py` in a temp dir, one after another. uv's own cache (~/.cache/uv) is left alone for both.
The machine may be shared with other work: medians, min and max are all reported, with CPU times.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import _speed as c


def ok_run(text: str) -> bool:
    return any(ln.startswith("13 ok in ") for ln in text.splitlines())


def main() -> None:
    args = c.parse_args(__doc__, reps=(5, "timed cold runs of each"), jobs=(0, "-j for the orchestrator (0: its default)"))
    orch_py, note_py = c.orch_venv(args.fresh_venvs), c.uvnote_venv(args.fresh_venvs)
    root = Path(tempfile.mkdtemp(prefix="orch-bench-cold-"))
    impls, suite = c.write_impls(root)
    note = c.write_notebook(root / "notebook")
    env = c.tool_env(c.uv_bindir(root, orch_py))
    jobs = ["-j", str(args.jobs)] if args.jobs else []
    nb, ncwd = c.uvnote_cmd(note_py), note.parent

    def orch(tag: str, envs: Path) -> list:
        return c.orch_cmd(orch_py, impls, root / f"artifacts-{tag}", envs, suite, *jobs)

    def fresh(*paths: Path) -> None:
        for p in paths:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    first = c.timed(orch("first", root / "envs-kept"), cwd=c.REPO, env=env)  # writes the locks, builds one env
    c.sh(nb, cwd=ncwd, env=env)
    locks = sorted(p.name for p in impls.glob("*/bench.lock.txt"))
    ORCH, JOBS, NOTE = "orchestrator run all, cold (env + 13 jobs)", "orchestrator run all, envs kept (13 jobs)", "uvnote build, cold (13 cells)"
    t = {k: c.Series() for k in (ORCH, JOBS, NOTE)}
    for i in range(args.reps):
        fresh(root / "envs-cold", root / "artifacts-cold")
        out = t[ORCH].add(c.timed(orch("cold", root / "envs-cold"), cwd=c.REPO, env=env))
        fresh(root / "artifacts-jobs")
        out2 = t[JOBS].add(c.timed(orch("jobs", root / "envs-kept"), cwd=c.REPO, env=env))
        if not (ok_run(out) and ok_run(out2)):
            raise SystemExit(f"a cold orchestrator run did not run all 13 jobs:\n{out}\n{out2}")
        fresh(ncwd / ".uvnote", ncwd / "site")
        if t[NOTE].add(c.timed(nb, cwd=ncwd, env=env)).count("cache=miss") != 13:
            raise SystemExit("uvnote cold build did not run all 13 cells")
    s = {k: v.stats() for k, v in t.items()}
    ratio = s[ORCH]["median"] / s[NOTE]["median"]
    envs_built = [p.name for p in (root / "envs-cold").iterdir() if not p.name.startswith(".")]
    lines = [c.table(list(s.items())), "",
             f"ratio orchestrator cold / uvnote cold, wall medians: {ratio:.3f}; cpu medians: "
             f"{s[ORCH]['cpu_median'] / s[NOTE]['cpu_median']:.3f}",
             f"untimed first run (locks written, env built): {first[0]:.2f} s; locks present: {len(locks)} + combine's own",
             f"envs built per cold orchestrator run: {len(envs_built)} (13 jobs share one empty env)"]
    c.report(args.out, "cold_run", "\n".join(lines), {"stats": s, "ratio_wall": ratio, "first_run_s": first[0],
                                                      "envs_built": envs_built, "tree": str(root)})


if __name__ == "__main__":
    main()
