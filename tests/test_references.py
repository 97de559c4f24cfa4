"""Stored references (orchestrator/run/references.py, opbench.refstore, opbench.refjob): a suite's fp32 references
made once per run and handed to every job with its GPU; never believed once anything changed them. End to end over real
harness impls on the CPU torch base, and the harness's reader in-process on sets written by its own writer."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HARNESS_BLOCK, REPO, SDPA_MATH, Tree, entry_of, harness_checkout

sys.path.insert(0, str(REPO / "shared"))

# Before the harness starts, it takes the GPU (and with it the set) and rewrites the set so that a wrong (all-zero)
# output would pass: the reference file zeroed, and the manifest's digest of it made to match.
POISON = (
    "import hashlib, json, os, pathlib\n"
    "from opbench import gate\n"
    "gate.acquire()\n"  # the set comes with the GPU
    "folder = pathlib.Path(os.environ['OPBENCH_REFERENCES'].rpartition('#')[0])\n"
    "ref = folder / 'tiny.fwd.f32'\n"
    "ref.write_bytes(bytes(ref.stat().st_size))\n"
    "m = json.loads((folder / 'manifest.json').read_text())\n"
    "m['files']['tiny.fwd.f32'] = hashlib.sha256(ref.read_bytes()).hexdigest()\n"
    "(folder / 'manifest.json').write_text(json.dumps(m))\n"
    "gate.release()\n"
    "import opbench\n\n"
    "if __name__ == '__main__':\n"
    "    raise SystemExit(opbench.run(lambda q, k, v, causal: q * 0, requires_cuda=False))\n"
)
CPU = {"ORCH_FORCE_CPU": "1"}


@pytest.fixture
def refs_tree(tmp_path, envs_dir) -> Tree:
    return harness_checkout(tmp_path, envs_dir, {"attn_a": SDPA_MATH, "attn_b": SDPA_MATH})


def host(torch_base) -> list:
    return ["--python", torch_base, "--offline", "--wheelhouse", os.environ["UV_FIND_LINKS"], "--no-combine"]


def sets(tree: Tree) -> list:
    folder = tree.artifacts / ".references"
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def outcome(tree: Tree, name: str) -> tuple[bool, list]:
    """(whether the job was handed the stored references, each record's (workload, mode, ok, err, grad_err))."""
    entry = entry_of(tree.artifacts, name)
    manifest = json.loads((entry / "manifest.json").read_text())
    records = [json.loads(line) for line in (entry / "results.jsonl").read_text().splitlines()]
    return manifest["phases"]["references"], [(r["wl"]["name"], r["mode"], r["ok"], r["err"], r["grad_err"]) for r in records]


def test_a_suites_references_are_made_once_and_read_as_each_job_would_compute_them(refs_tree, torch_base):
    first = refs_tree.run(extra=["--mode", "fwd,bwd", *host(torch_base)], env=CPU)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    (made,) = sets(refs_tree)
    index = json.loads((made / "index.json").read_text())
    assert sorted(index["entries"]) == ["tiny.fwd", "tiny.grad", "tiny_causal.fwd", "tiny_causal.grad"]
    assert index["made_by"]["torch"].startswith("2.") and index["modes"] == ["fwd", "bwd"]
    before = {n: outcome(refs_tree, n) for n in ("attn_a", "attn_b")}
    assert all(handed for handed, _ in before.values())  # every job, those started beside the set's making too
    phases = json.loads((made / "manifest.json").read_text())["phases"]
    assert phases["gated"] is True and phases["held"][0] < phases["held"][1]  # it held the device only when it asked
    again = refs_tree.run(extra=["--mode", "fwd,bwd", "--force", *host(torch_base)], env=CPU)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert sets(refs_tree) == [made]  # found and vouched for, not made again
    for name, (_, records) in before.items():
        handed, now = outcome(refs_tree, name)
        assert handed is True, name
        assert now == records, name
    # the job reproduced on its own (no gate, no set: it computes every reference) gives every error exactly so
    line = refs_tree.cli("reproduce", "attn_a", "--mode", "fwd,bwd", *host(torch_base)[:-1], env=CPU)
    assert line.returncode == 0, line.stdout + line.stderr
    shell = subprocess.run(["bash", "-c", line.stdout.strip().splitlines()[-1]], capture_output=True, text=True,
                           cwd="/", env={**os.environ, **CPU}, timeout=600)
    assert shell.returncode == 0, shell.stderr[-3000:]
    alone = Path(shell.stdout.strip().splitlines()[-1].removeprefix("reproduced into "))
    assert "stored references" not in shell.stderr and "OPBENCH_REFERENCES" not in line.stdout
    computed = [json.loads(x) for x in (alone / "results.jsonl").read_text().splitlines()]
    assert [(r["wl"]["name"], r["mode"], r["ok"], r["err"], r["grad_err"]) for r in computed] == before["attn_a"][1]
    cleaned = refs_tree.cli("clean")
    assert cleaned.returncode == 0 and sets(refs_tree) == [], cleaned.stdout + cleaned.stderr


def test_a_set_changed_between_runs_is_remade(refs_tree, torch_base):
    assert refs_tree.run("attn_a", extra=host(torch_base), env=CPU).returncode == 0
    (made,) = sets(refs_tree)
    good = (made / "tiny.fwd.f32").read_bytes()
    (made / "tiny.fwd.f32").write_bytes(bytes(len(good)))
    stray = {**CPU, "OPBENCH_REFERENCES": f"{made}#{'0' * 64}"}  # in the caller's environment: never inherited
    out = refs_tree.run("attn_a", extra=["--force", *host(torch_base)], env=stray)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (made / "tiny.fwd.f32").read_bytes() == good  # remade from scratch, the same bytes
    handed, records = outcome(refs_tree, "attn_a")
    assert handed is True and all(ok for _, _, ok, _, _ in records)
    log = (entry_of(refs_tree.artifacts, "attn_a") / "_logs" / "stderr.log").read_text()
    assert "stored references" not in log, log  # handed the remade set at GO, nothing refused


def test_a_job_that_rewrites_the_set_is_never_believed_fails_and_the_set_is_remade(refs_tree, torch_base):
    (refs_tree.impls / "attn_poison").mkdir()
    (refs_tree.impls / "attn_poison" / "bench.py").write_text(HARNESS_BLOCK.format(backend="zeros") + POISON)
    assert refs_tree.run("attn_a", extra=host(torch_base), env=CPU).returncode == 0
    (made,) = sets(refs_tree)
    good = (made / "tiny.fwd.f32").read_bytes()
    out = refs_tree.run("attn_poison", extra=host(torch_base), env=CPU)
    assert out.returncode == 1 and out.states() == {"attn_poison": "failed"}, out.stdout + out.stderr
    assert "stored references" in out.stdout and "changed while this job ran" in out.stdout, out.stdout
    assert not (refs_tree.artifacts / "attn_poison").exists() or not any((refs_tree.artifacts / "attn_poison").iterdir())
    failed = sorted((refs_tree.artifacts / ".failed").rglob("stderr.log"))
    log = "\n".join(p.read_text() for p in failed)
    assert "is not the one the orchestrator vouched for" in log  # the harness itself refused the rewritten set
    assert '"ok": false' in "\n".join(p.read_text() for p in (refs_tree.artifacts / ".failed").rglob("results.jsonl"))
    assert sets(refs_tree) == []  # removed; the next job makes it again
    assert refs_tree.run("attn_a", extra=["--force", *host(torch_base)], env=CPU).returncode == 0
    assert (made / "tiny.fwd.f32").read_bytes() == good


# -- the harness's reader, in-process ------------------------------------------------------------------------------

np = pytest.importorskip("numpy")


@pytest.fixture
def stored(tmp_path, monkeypatch):
    """A set written by the harness's own writer for two workloads, with the manifest the orchestrator commits."""
    from opbench import refstore
    from opbench.suite import Workload

    wls = [Workload.make("rms_norm", f"w{i}", "float32", batch=1, seq_len=4, hidden=8) for i in range(2)]
    writer = refstore.Writer(tmp_path, {"op": "rms_norm", "suite": "t", "modes": ["fwd"], "made_by": {}})
    for i, wl in enumerate(wls):
        writer.add(wl, "fwd", np.full((4, 8), float(i + 1), dtype=np.float32))
    writer.add(wls[0], "grad", {"dx": np.ones((4, 8), np.float32), "dw": np.zeros(8, np.float32)})
    writer.close()

    def vouch() -> str:
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir() if p.name != "manifest.json"}
        raw = json.dumps({"files": files}).encode()
        (tmp_path / "manifest.json").write_bytes(raw)
        return f"{tmp_path}#{hashlib.sha256(raw).hexdigest()}"

    monkeypatch.setattr(refstore, "_OPENED", {})
    monkeypatch.setenv(refstore.VARIABLE, vouch())
    return refstore, wls, tmp_path, vouch


def test_the_reader_gives_back_what_the_writer_stored(stored):
    refstore, wls, _, _ = stored
    s = refstore.opened()
    assert s is not None
    assert (s.get(wls[1], "fwd") == 2.0).all() and s.get(wls[1], "fwd").shape == (4, 8)
    grads = s.get(wls[0], "grad")
    assert sorted(grads) == ["dw", "dx"] and grads["dw"].shape == (8,)
    assert s.get(wls[1], "grad") is None  # not in the set: computed by the job, nothing said


def test_a_changed_file_or_another_workload_is_refused_in_one_line(stored, capsys):
    from opbench.suite import Workload

    refstore, wls, folder, _ = stored
    s = refstore.opened()
    (folder / "w0.fwd.f32").write_bytes(bytes(4 * 32))  # same size, other bytes
    assert s.get(wls[0], "fwd") is None
    assert s.get(wls[0], "fwd") is None
    err = capsys.readouterr().err.splitlines()
    assert err == ["stored references: w0.fwd.f32 differs from its manifest sha256; computing it here"]
    other = Workload.make("rms_norm", "w1", "float32", batch=1, seq_len=4, hidden=16)  # the name of a stored one, other fields
    assert s.get(other, "fwd") is None and "was made for another workload" in capsys.readouterr().err


def test_a_set_whose_manifest_is_not_the_vouched_one_is_never_opened(stored, capsys, monkeypatch):
    refstore, wls, folder, vouch = stored
    value = os.environ[refstore.VARIABLE]
    (folder / "w0.fwd.f32").write_bytes(bytes(4 * 32))
    vouch()  # a consistent rewrite: the manifest now matches the zeros, but it is not the one handed to the job
    assert refstore.opened() is None
    assert "is not the one the orchestrator vouched for" in capsys.readouterr().err
    monkeypatch.setattr(refstore, "_OPENED", {})
    monkeypatch.setenv(refstore.VARIABLE, value.rpartition("#")[0] + "#" + "0" * 64)
    assert refstore.opened() is None


def test_a_set_named_in_the_callers_environment_never_reaches_a_job(tree):
    """Only the gate hands a set over: one named in the orchestrator's own environment is not inherited."""
    tree.add_impl("peek", "import os\nopen(os.path.join(os.environ['ORCH_OUT'], 'seen.txt'), 'w')"
                          ".write(os.environ.get('OPBENCH_REFERENCES', '<unset>'))\n")
    out = tree.run("peek", extra=["--no-combine"], env={"OPBENCH_REFERENCES": f"/elsewhere#{'0' * 64}"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert (entry_of(tree.artifacts, "peek") / "seen.txt").read_text() == "<unset>"
