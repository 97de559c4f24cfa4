"""`run --mode`: the modes reach every job as $ORCH_MODE, enter its key only when they are not the default (today's
keys stand), a bad one is a one-line usage error, `reproduce` and `show` say them; end to end, real harness impls
over the CPU torch base run fwd and bwd records into one combined report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import HARNESS_BLOCK, REPO, SDPA_MATH, Tree, entry_of, harness_checkout

DUMP_MODE = (
    "import json, os\n"
    "record = {'impl': os.environ['ORCH_IMPL'], 'wl': {'name': 'tiny'}, 'lat_ms': {'p50': 1.0}, 'status': 'ok'}\n"
    "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write(json.dumps(record) + '\\n')\n"
    "open(os.path.join(os.environ['ORCH_OUT'], 'mode.txt'), 'w').write(os.environ.get('ORCH_MODE', '<unset>'))\n"
)


def manifests(tree, name: str) -> list[dict]:
    folder = tree.artifacts / name
    return [json.loads((e / "manifest.json").read_text()) for e in sorted(folder.iterdir()) if e.is_dir()]


def test_the_default_mode_keeps_every_key_and_tells_the_job_nothing(tree):
    tree.add_impl("moded", DUMP_MODE)
    first = tree.run("moded", extra=["--no-combine"])
    assert first.returncode == 0 and first.ran() == {"moded"}, first.stdout + first.stderr
    (m,) = manifests(tree, "moded")
    assert "mode" not in m["inputs"] and m["inputs"]["format"] == 2  # a key exactly as before modes existed
    assert (entry_of(tree.artifacts, "moded") / "mode.txt").read_text() == "<unset>"
    for same in ("fwd", "fwd,fwd", " fwd "):
        again = tree.run("moded", extra=["--no-combine", "--mode", same])
        assert again.returncode == 0 and again.ran() == set(), (same, again.stdout)  # cached: the same key


def test_other_modes_are_their_own_keys_in_one_order(tree):
    tree.add_impl("moded", DUMP_MODE)
    out = tree.run("moded", extra=["--no-combine", "--mode", "bwd,fwd"])
    assert out.returncode == 0 and out.ran() == {"moded"}, out.stdout + out.stderr
    assert "mode fwd,bwd" in out.stdout.splitlines()[0]
    assert tree.run("moded", extra=["--no-combine", "--mode", "fwd,bwd"]).ran() == set()  # the same run
    assert tree.run("moded", extra=["--no-combine", "--mode", "bwd"]).ran() == {"moded"}
    assert tree.run("moded", extra=["--no-combine"]).ran() == {"moded"}
    modes = sorted((m["inputs"].get("mode") or "", "ORCH_MODE=" in m["reproduce"]) for m in manifests(tree, "moded"))
    assert modes == [("", False), ("bwd", True), ("fwd,bwd", True)], modes
    told = {(e / "mode.txt").read_text() for e in (tree.artifacts / "moded").iterdir() if e.is_dir()}
    assert told == {"fwd,bwd", "bwd", "<unset>"}


@pytest.mark.parametrize("value", ["sideways", "fwd,bwdd", "BWD"])
def test_an_unknown_mode_is_one_line_exit_2_and_nothing_runs(tree, value):
    out = tree.run("plain", extra=["--no-combine", "--mode", value])
    lines = out.stderr.strip().splitlines()
    bad = next(p for p in value.split(",") if p not in ("fwd", "bwd", "fwd_bwd"))
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    assert f"--mode {value}" in lines[0] and repr(bad) in lines[0] and "fwd, bwd, fwd_bwd" in lines[0]
    assert out.ran() == set() and not (tree.artifacts / "plain").exists()


def test_reproduce_prints_the_mode_only_when_it_is_set(tree):
    default = tree.cli("reproduce", "plain")
    assert default.returncode == 0 and "ORCH_MODE" not in default.stdout, default.stdout + default.stderr
    moded = tree.cli("reproduce", "plain", "--mode", "fwd_bwd,bwd")
    assert moded.returncode == 0 and "ORCH_MODE=bwd,fwd_bwd " in moded.stdout, moded.stdout + moded.stderr


def test_the_orchestrators_modes_are_the_harnesss():
    sys.path.insert(0, str(REPO / "shared"))
    from opbench import schema

    from orchestrator.model import mode

    assert mode.MODES == schema.MODES and mode.DEFAULT == (schema.DEFAULT_MODE,)


# -- end to end: real harness impls over the CPU torch base -------------------------------------------------------

FORWARD_ONLY = HARNESS_BLOCK.format(backend="fwd-only") + (
    "import opbench\nfrom opbench import sdpa\n\n"
    "if __name__ == '__main__':\n"
    "    raise SystemExit(opbench.run(sdpa.backend_attend('MATH'), prepare=sdpa.to_bhsd, requires_cuda=False,\n"
    "                                 backward='a forward-only kernel'))\n")


@pytest.fixture
def harness_tree(tmp_path, envs_dir) -> Tree:
    """A checkout of two impls on the real harness (shared/ copied beside them) and a tiny attention suite."""
    return harness_checkout(tmp_path, envs_dir, {"attn_math": SDPA_MATH, "attn_fwd_only": FORWARD_ONLY})


def records(artifacts, name: str) -> list[dict]:
    return [json.loads(line) for line in (entry_of(artifacts, name) / "results.jsonl").read_text().splitlines()]


def test_run_mode_fwd_bwd_end_to_end_on_the_real_harness(harness_tree, torch_base):
    host = ["--python", torch_base, "--offline", "--wheelhouse", os.environ["UV_FIND_LINKS"]]
    out = harness_tree.run(extra=["--mode", "fwd,bwd", *host], env={"ORCH_FORCE_CPU": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    math = records(harness_tree.artifacts, "attn_math")
    assert [(r["wl"]["name"], r["mode"]) for r in math] == [("tiny", "fwd"), ("tiny", "bwd"), ("tiny_causal", "fwd"),
                                                           ("tiny_causal", "bwd")]
    assert all(r["status"] == "ok" and r["ok"] for r in math), math
    assert all(sorted(r["grad_err"]) == ["dk", "dq", "dv"] for r in math if r["mode"] == "bwd")
    fwd_only = {r["mode"]: r for r in records(harness_tree.artifacts, "attn_fwd_only")}
    assert fwd_only["fwd"]["status"] == "ok" and fwd_only["fwd"]["ok"] is True
    assert fwd_only["bwd"]["status"] == "skipped" and fwd_only["bwd"]["reason"] == "no backward: a forward-only kernel"
    latest = harness_tree.artifacts / "latest"
    with open(latest / "latency.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {(r["Impl ID"], r["Mode"], r["status"]) for r in rows} == {
        ("attn_math", "fwd", "ok"), ("attn_math", "bwd", "ok"), ("attn_fwd_only", "fwd", "ok"),
        ("attn_fwd_only", "bwd", "skipped")}
    summary = (latest / "summary.txt").read_text()
    assert "== Attention, backward (attention bwd)" in summary and "tiny [bwd]" in summary
    assert "attn_fwd_only (attention bwd): skipped: no backward: a forward-only kernel" in summary
    charts = sorted(c.name for c in (latest / "charts").glob("*-latency.svg"))  # a group per mode and mask
    assert charts == [f"attention-b1-h2-d16-{m}-float32-{d}-latency.svg" for m in ("causal", "non-causal")
                      for d in ("bwd", "fwd")], charts
    shown = harness_tree.cli("show", "attn_math", "--mode", "fwd,bwd", *host, env={"ORCH_FORCE_CPU": "1"})
    assert shown.returncode == 0 and "tiny [bwd]" in shown.stdout and '"mode": "fwd,bwd"' in shown.stdout, shown.stdout
    again = harness_tree.run(extra=["--mode", "bwd,fwd", *host], env={"ORCH_FORCE_CPU": "1"})
    assert again.returncode == 0 and again.ran() == set(), again.stdout  # cached, combine included


def test_nox_passes_the_mode_through(tree):
    env = {**os.environ, "ORCH_IMPLS_DIR": str(tree.impls),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    tree.add_impl("moded", DUMP_MODE)
    res = subprocess.run([sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), "-s", "moded", "--",
                          *map(str, tree.args("--mode", "bwd", "--no-combine"))], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (entry_of(tree.artifacts, "moded") / "mode.txt").read_text() == "bwd"
