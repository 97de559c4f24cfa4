"""The store never serves a forged or malformed entry, and `clean` never deletes what another checkout uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import copy_tree, orch

PLANT_VIA_VARIABLE = (
    "import json, os\n"
    "up = os.environ['ORCH_ARTIFACTS_UP']\n"
    "rec = {'impl': 'up', 'wl': {'name': 'tiny'}, 'lat_ms': {'p50': 0.001}, 'status': 'ok', 'ok': True}\n"
    "open(os.path.join(up, 'forged.jsonl'), 'w').write(json.dumps(rec) + '\\n')\n"
    "open(os.path.join(os.environ['ORCH_OUT'], 'mine.txt'), 'w').write('x')\n"
)
# No variable used: the artifacts root is found from the job's own staging folder.
PLANT_VIA_PATH = (
    "import glob, os\n"
    "root = os.path.join(os.environ['ORCH_OUT'], '..', '..', '..')\n"
    "for entry in glob.glob(os.path.join(root, 'up', '*')):\n"
    "    open(os.path.join(entry, 'extra.jsonl'), 'w').write('{}\\n')\n"
)


def run(tree, uv_cache, *names, extra=()):
    return tree.run(*names, extra=["--no-combine", *extra], env={"UV_CACHE_DIR": str(uv_cache)})


def verify(tree):
    return orch("verify", "--artifacts", tree.artifacts)


def only_entry(artifacts: Path, name: str) -> Path:
    found = [p for p in (artifacts / name).iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("body,planted", [(PLANT_VIA_VARIABLE, "forged.jsonl"), (PLANT_VIA_PATH, "extra.jsonl")], ids=["variable", "path"])
def test_a_file_planted_in_an_upstream_entry_fails_the_job_and_the_upstream_reruns(tree, uv_cache, body, planted):
    tree.add_impl("planter", body, settings='gpu = false\nneeds = ["up"]')
    out = run(tree, uv_cache, "planter")
    assert out.returncode == 1, out.stdout + out.stderr  # before: exit 0, the forged file served from then on
    assert out.states() == {"up": "ok", "planter": "failed"}, out.stdout
    assert "upstream up" in out.stdout and planted in out.stdout
    assert not (tree.artifacts / "planter").exists()

    checked = verify(tree)
    assert checked.returncode == 1 and f"unlisted file {planted}" in checked.stdout, checked.stdout

    again = run(tree, uv_cache, "up")
    assert again.returncode == 0 and again.ran() == {"up"}, again.stdout  # the damaged entry is not served
    assert not (only_entry(tree.artifacts, "up") / planted).exists()
    assert verify(tree).returncode == 0


def test_an_extra_file_in_an_entry_is_damage(tree, uv_cache):
    assert run(tree, uv_cache, "plain").returncode == 0
    entry = only_entry(tree.artifacts, "plain")
    (entry / "_logs" / "note.txt").write_text("added later")
    checked = verify(tree)
    assert checked.returncode == 1 and "unlisted file _logs/note.txt" in checked.stdout, checked.stdout
    assert run(tree, uv_cache, "plain").ran() == {"plain"}


MALFORMED = {
    "files_a_list": lambda m: {**m, "files": list(m["files"])},
    "files_values_not_strings": lambda m: {**m, "files": {k: 1 for k in m["files"]}},
    "files_escape_the_entry": lambda m: {**m, "files": {**m["files"], "../../x": "0" * 64}},
    "finished_a_string": lambda m: {**m, "finished": "yesterday"},
    "started_a_bool": lambda m: {**m, "started": True},
    "inputs_null": lambda m: {**m, "inputs": None},
    "packages_a_dict": lambda m: {**m, "packages": {}},
    "runner_a_list": lambda m: {**m, "runner": []},
    "variables_a_string": lambda m: {**m, "variables": "x"},
    "status_missing": lambda m: {k: v for k, v in m.items() if k != "status"},
    "files_missing": lambda m: {k: v for k, v in m.items() if k != "files"},
    "a_json_array": lambda m: [m],
    "a_json_string": lambda m: "manifest",
    "null": lambda m: None,
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_a_malformed_manifest_is_a_damaged_entry_never_a_traceback(tree, uv_cache, shape):
    assert run(tree, uv_cache, "plain").returncode == 0
    path = only_entry(tree.artifacts, "plain") / "manifest.json"
    path.write_text(json.dumps(MALFORMED[shape](json.loads(path.read_text()))))
    for command, extra in (("list", ()), ("show", ("plain",)), ("verify", ())):
        out = verify(tree) if command == "verify" else tree.cli(command, *extra)
        assert "Traceback" not in out.stderr and out.returncode in (0, 1), (command, out.stdout, out.stderr)
        if command == "verify":
            assert out.returncode == 1 and "damaged" in out.stdout, out.stdout
    again = run(tree, uv_cache, "plain")
    assert again.returncode == 0 and again.ran() == {"plain"}, again.stdout + again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    assert verify(tree).returncode == 0


def test_clean_keeps_entries_another_checkout_sharing_the_artifacts_uses(tree, uv_cache, tmp_path):
    other = copy_tree("tree", tmp_path / "checkout_b", tree.artifacts, tree.envs)
    script = other.impls / "plain" / "bench.py"
    script.write_text(script.read_text() + "# checkout b's own edit\n")
    assert run(tree, uv_cache, "plain").returncode == 0
    assert run(other, uv_cache, "plain").returncode == 0
    assert len(list((tree.artifacts / "plain").iterdir())) == 2

    cleaned = tree.cli("clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert len(list((tree.artifacts / "plain").iterdir())) == 2  # before: checkout b's entry was deleted
    assert run(other, uv_cache, "plain").ran() == set()
    assert run(tree, uv_cache, "plain").ran() == set()

    shutil.rmtree(other.root)  # a checkout that is gone keeps nothing
    assert tree.cli("clean").returncode == 0
    assert len(list((tree.artifacts / "plain").iterdir())) == 1
    assert run(tree, uv_cache, "plain").ran() == set()


def test_clean_drops_an_entry_its_own_checkout_no_longer_uses(tree, uv_cache):
    assert run(tree, uv_cache, "plain").returncode == 0
    script = tree.impls / "plain" / "bench.py"
    script.write_text(script.read_text() + "# edited\n")
    assert run(tree, uv_cache, "plain").ran() == {"plain"}
    assert tree.cli("clean").returncode == 0
    assert len(list((tree.artifacts / "plain").iterdir())) == 1
    assert run(tree, uv_cache, "plain").ran() == set()


def _walk_unlisted(folder: Path, listed: set[str]) -> list[str]:
    """The os.walk reading of 'unlisted' that Store.unlisted_files must keep giving."""
    import os

    extra = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))):
            rel = os.path.relpath(os.path.join(dirpath, name), folder)
            if rel != "manifest.json" and rel not in listed:
                extra.append(rel)
    return sorted(extra)


def test_unlisted_files_reads_an_entry_as_os_walk_does(tmp_path):
    import os

    from orchestrator.cache.store import Manifest, Store

    e = tmp_path / "entry"
    (e / "a" / "b" / "c").mkdir(parents=True)
    (e / "empty").mkdir()
    for rel in ("manifest.json", "r.jsonl", "a/x.txt", "a/b/y.txt", "a/b/c/z.txt", ".hidden", "a/.h"):
        (e / rel).write_text(rel)
    os.symlink("a", e / "dirlink")  # a link to a folder: listed itself, never walked
    os.symlink("r.jsonl", e / "a" / "filelink")
    os.symlink("missing", e / "dangling")
    os.mkfifo(e / "a" / "fifo")
    listed = {"r.jsonl", "a/x.txt", "a/b/c/z.txt"}
    m = Manifest(name="n", key="k", inputs={}, status="ok", reason="", started=0, finished=0, returncode=0,
                 files=dict.fromkeys(listed, ""), packages=[], device={}, reproduce="")
    want = _walk_unlisted(e, listed)
    assert want == [".hidden", "a/.h", "a/b/y.txt", "a/fifo", "a/filelink", "dangling", "dirlink"]
    assert Store.unlisted_files(e, m) == want
    assert Store.unlisted_files(tmp_path / "gone", m) == _walk_unlisted(tmp_path / "gone", listed) == []


@pytest.mark.parametrize("case", ["none", "empty", "nested", "linked_file", "linked_dir", "dir_named_jsonl", "hidden"])
def test_has_records_reads_an_entry_as_rglob_does(tmp_path, case):
    import os

    from orchestrator.cache.outputs import has_records

    e = tmp_path / "entry"
    (e / "a" / "b").mkdir(parents=True)
    (e / "other.txt").write_text("x")
    (e / "r.jsonl").write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.jsonl").write_text("{}\n")
    if case == "empty":
        (e / "a" / "e.jsonl").write_text("")
    elif case == "nested":
        (e / "a" / "b" / "n.jsonl").write_text("{}\n")
    elif case == "linked_file":
        os.symlink(outside / "o.jsonl", e / "a" / "l.jsonl")
    elif case == "linked_dir":
        os.symlink(outside, e / "a" / "linked")  # never walked
    elif case == "dir_named_jsonl":
        (e / "d.jsonl").mkdir()
        (e / "d.jsonl" / "x.txt").write_text("x")
    elif case == "hidden":
        (e / ".h.jsonl").write_text("{}\n")
    want = any(f.stat().st_size > 0 for f in e.rglob("*.jsonl") if f.is_file())
    assert has_records(e) == want
    assert want == (case in ("nested", "linked_file", "hidden"))
