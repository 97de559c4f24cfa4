"""Host mode: envs layered over a base interpreter, offline, with wheels from a local wheelhouse."""

from __future__ import annotations

import json
import os
from pathlib import Path

from host_layers import WRITE_VERSIONS, fake_uv, host_args, make_base, make_wheel, uv_calls


def test_layered_impl_runs_offline_and_sees_base_version(host):
    tree, base, house, _ = host
    tree.add_impl("both", WRITE_VERSIONS, deps='["basepkg", "extrapkg", "pthpkg"]')
    out = tree.run("both", extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0, out.stdout + out.stderr
    entry = next((tree.artifacts / "both").iterdir())
    assert json.loads((entry / "seen.json").read_text()) == {"basepkg": "1.0", "extrapkg": "2.0", "hidden": "via .pth"}
    manifest = json.loads((entry / "manifest.json").read_text())
    assert "basepkg==1.0 (base)" in manifest["packages"]
    assert "extrapkg==2.0 (wheelhouse)" in manifest["packages"]
    assert not (tree.impls / "both" / "bench.lock.txt").exists()  # host mode neither needs nor writes a lock


def test_requested_extras_bring_their_dependencies_into_the_layer(host):
    tree, base, house, _ = host
    tree.add_impl("extras", "import os, fastdep\nopen(os.path.join(os.environ['ORCH_OUT'], 'v.txt'), 'w').write(fastdep.VERSION)\n",
                  deps='["extrapkg[fast]==2.0"]')
    out = tree.run("extras", extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert (next((tree.artifacts / "extras").iterdir()) / "v.txt").read_text() == "1.1"


def test_conflicting_pin_is_not_run_and_names_both_versions(host):
    tree, base, house, _ = host
    tree.add_impl("wants_new", "raise SystemExit('must not run')\n", deps='["basepkg>=2"]')
    tree.add_impl("absent", "raise SystemExit('must not run')\n", deps='["nosuchpkg==3.1"]')
    tree.add_impl("fine", "print('ran')\n", deps='["basepkg"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.states() == {"wants_new": "skipped", "absent": "skipped", "fine": "ok"}
    assert "requirement basepkg>=2: base has basepkg 1.0" in out.stdout
    assert "requirement nosuchpkg==3.1: not in the base, and no matching wheel" in out.stdout
    assert "must not run" not in out.stdout


def test_another_base_misses_the_cache(host):
    tree, base, house, tmp_path = host
    tree.add_impl("both", WRITE_VERSIONS, deps='["basepkg", "extrapkg", "pthpkg"]')
    assert tree.run("both", extra=["--no-combine", *host_args(base, house)]).returncode == 0
    assert tree.run("both", extra=["--no-combine", *host_args(base, house)]).ran() == set()
    other_wheels = tmp_path / "other-wheels"
    other_wheels.mkdir()
    other = make_base(tmp_path / "base2", [
        make_wheel(other_wheels, "basepkg", "1.0", {"basepkg/__init__.py": "VERSION = '1.0'\n"}),
        make_wheel(other_wheels, "unrelated", "0.3", {"unrelated.py": ""}),
    ])
    out = tree.run("both", extra=["--no-combine", *host_args(other, house)])
    assert out.returncode == 0 and out.ran() == {"both"}, out.stdout


CHAIN_BODY = """import json, os
seen = {}
for mod in ("a", "b", "c"):
    try:
        seen[mod] = __import__(mod).WHO
    except ImportError:
        seen[mod] = None
open(os.path.join(os.environ["ORCH_OUT"], "seen.json"), "w").write(json.dumps(seen))
"""


def chain_wheels(house: Path) -> None:
    """a -> b[x] -> c (c's wheel is not there yet)."""
    make_wheel(house, "a", "1.0", {"a.py": "WHO = 'a'\n"}, requires=("b[x]>=1", "basepkg"))
    make_wheel(house, "b", "1.0", {"b.py": "WHO = 'b'\n"}, requires=('c>=1; extra == "x"',), extras=("x",))


def seen_of(tree, name: str) -> tuple[dict, dict]:
    entry = next(e for e in (tree.artifacts / name).iterdir() if (e / "seen.json").exists())
    return json.loads((entry / "seen.json").read_text()), json.loads((entry / "manifest.json").read_text())


def test_a_missing_transitive_package_skips_before_running_with_its_chain_and_its_wheel_makes_a_new_layer(host):
    tree, base, house, _ = host
    chain_wheels(house)
    tree.add_impl("needs_c", CHAIN_BODY, deps='["a"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0 and out.states() == {"needs_c": "skipped"}, out.stdout + out.stderr
    assert "c (needed by a -> b[x] -> c): not in the base and no wheel in the wheelhouse (offline)" in out.stdout, out.stdout
    (skipped,) = (tree.artifacts / "needs_c").iterdir()
    assert not (skipped / "seen.json").exists()  # it never ran

    make_wheel(house, "c", "1.0", {"c.py": "WHO = 'c'\n"})
    out = tree.run("needs_c", extra=["--no-combine", *host_args(base, house)])
    assert out.states() == {"needs_c": "ok"}, out.stdout + out.stderr
    seen, manifest = seen_of(tree, "needs_c")
    assert seen == {"a": "a", "b": "b", "c": "c"}
    assert {"a==1.0 (wheelhouse)", "b==1.0 (wheelhouse)", "c==1.0 (wheelhouse)"} <= set(manifest["packages"]), manifest["packages"]


def test_optional_lets_an_impl_run_without_a_package_its_requirements_name(host):
    tree, base, house, _ = host
    chain_wheels(house)
    tree.add_impl("without_c", CHAIN_BODY, settings='gpu = false\noptional = ["c"]', deps='["a"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0 and out.states() == {"without_c": "ok"}, out.stdout + out.stderr
    seen, without = seen_of(tree, "without_c")
    assert seen == {"a": "a", "b": "b", "c": None}
    assert "c (optional, left out)" in without["packages"] and "a==1.0 (wheelhouse)" in without["packages"]
    make_wheel(house, "c", "1.0", {"c.py": "WHO = 'c'\n"})  # the closure with c is another env
    tree.add_impl("with_c", CHAIN_BODY, deps='["a"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.states() == {"without_c": "ok", "with_c": "ok"}, out.stdout + out.stderr
    assert seen_of(tree, "with_c")[0]["c"] == "c"
    assert seen_of(tree, "with_c")[1]["runner"]["env_id"] != without["runner"]["env_id"]


def test_optional_must_be_a_list_of_package_names(host):
    tree, base, house, _ = host
    tree.add_impl("bad", "", settings='gpu = false\noptional = "c"')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 2 and "[tool.orchestrator] optional: must be a list of package names" in out.stderr, out.stderr


def test_a_transitive_conflict_with_the_base_skips_before_running(host):
    tree, base, house, _ = host
    make_wheel(house, "wantsnew", "1.0", {"wantsnew.py": ""}, requires=("basepkg>=2",))
    tree.add_impl("conflicted", "raise SystemExit('must not run')\n", deps='["wantsnew"]')
    out = tree.run(extra=["--no-combine", *host_args(base, house)])
    assert out.returncode == 0 and out.states() == {"conflicted": "skipped"}, out.stdout + out.stderr
    assert "its requirements cannot be met over the base" in out.stdout and "basepkg>=2" in out.stdout, out.stdout
    assert "must not run" not in out.stdout


def test_a_jobs_host_layer_is_worked_out_once_per_run(host, monkeypatch):
    """The phase before planning, planning (its conflict check), locating the env and building it all need the
    layer: one resolution serves them all. Counted by the requirement parses it takes (one per direct requirement)."""
    import packaging.requirements

    from orchestrator.cli import build_parser
    from orchestrator.cli.common import load_jobs, make_context
    from orchestrator.executors.local import LocalExecutor
    from orchestrator.run.jobrun import JobRunner
    from orchestrator.run.plan import plan, prepare_envs

    tree, base, house, _ = host
    tree.add_impl("needs_base", "print('ok')\n", deps='["basepkg>=1", "extrapkg"]')
    args = build_parser().parse_args(["run", "needs_base", *map(str, tree.args(*host_args(base, house)))])
    ctx = make_context(args)
    parses = []
    real = packaging.requirements.Requirement.__init__
    monkeypatch.setattr(packaging.requirements.Requirement, "__init__",
                        lambda self, text: (parses.append(text), real(self, text))[1])
    jobs = load_jobs(ctx)
    prepare_envs(ctx, jobs, ["needs_base"])
    p = plan(ctx, jobs, ["needs_base"])["needs_base"]
    assert p.preskip is None
    runner = JobRunner(ctx, LocalExecutor())
    env = runner.build_env(p)
    assert runner.env_of(p) == env
    assert parses.count("basepkg>=1") == 1 and parses.count("extrapkg") == 1, parses


def test_a_warm_host_mode_run_calls_no_uv(host, tmp_path):
    """A fake `uv` first on PATH logs every call: the cold run resolves and builds, the warm one calls nothing."""
    tree, base, house, _ = host
    chain_wheels(house)
    tree.add_impl("both", WRITE_VERSIONS, deps='["basepkg", "extrapkg", "pthpkg"]')  # a layer resolved and built
    tree.add_impl("needs_c", CHAIN_BODY, deps='["a"]')  # a gap only uv's resolver finds: skipped
    tree.add_impl("fine", "print('ran')\n", deps='["basepkg"]')  # the base provides it all
    log = tmp_path / "uv-calls.log"
    env = {"PATH": f"{fake_uv(tmp_path / 'fakeuv', log)}{os.pathsep}{os.environ['PATH']}"}
    cold = tree.run(extra=host_args(base, house), env=env)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert cold.states() == {"both": "ok", "needs_c": "skipped", "fine": "ok", "combine": "ok"}, cold.stdout
    assert sum("--dry-run" in c for c in uv_calls(log)) == 3, uv_calls(log)  # both, needs_c and combine resolved
    log.unlink()
    warm = tree.run(extra=host_args(base, house), env=env)
    assert warm.returncode == 0 and warm.ran() == set(), warm.stdout + warm.stderr
    assert uv_calls(log) == []


def test_planning_runs_no_uv_the_phase_before_it_resolves(host, tmp_path, monkeypatch):
    """A cold plan() calls no uv: a gap only the resolver finds is unknown to it. `prepare_envs` resolves and
    records; a later plan (a fresh process's) reads that record. Keys never depend on the resolution, and still
    change with what would be installed: a wheel added to the wheelhouse is in the key."""
    from orchestrator.cli import build_parser
    from orchestrator.cli.common import load_jobs, make_context
    from orchestrator.run.plan import plan, prepare_envs

    tree, base, house, _ = host
    chain_wheels(house)
    tree.add_impl("needs_c", CHAIN_BODY, deps='["a"]')
    tree.add_impl("layered", "print('ok')\n", deps='["extrapkg"]')
    names = ["layered", "needs_c"]
    log = tmp_path / "uv-calls.log"
    monkeypatch.setenv("PATH", f"{fake_uv(tmp_path / 'fakeuv', log)}{os.pathsep}{os.environ['PATH']}")
    args = build_parser().parse_args(["run", "all", *map(str, tree.args(*host_args(base, house)))])

    def planned(prepare: bool = False) -> dict:
        ctx = make_context(args)  # a new context: nothing remembered in memory from the last one
        jobs = load_jobs(ctx)
        if prepare:
            prepare_envs(ctx, jobs, names)
        return plan(ctx, jobs, names)

    cold = planned()
    assert uv_calls(log) == [] and cold["needs_c"].preskip is None
    prepared = planned(prepare=True)
    resolved = uv_calls(log)
    assert len(resolved) == 2 and all("--dry-run" in c for c in resolved), resolved
    warm = planned()
    assert uv_calls(log) == resolved
    for p in (prepared, warm):
        assert "c (needed by a -> b[x] -> c): not in the base" in (p["needs_c"].preskip or ""), p["needs_c"]
        assert p["layered"].preskip is None
    assert {n: p.key for n, p in warm.items()} == {n: p.key for n, p in cold.items()}
    make_wheel(house, "c", "1.0", {"c.py": "WHO = 'c'\n"})
    newer = planned()
    assert uv_calls(log) == resolved
    assert all(newer[n].key != warm[n].key for n in names) and newer["needs_c"].preskip is None
