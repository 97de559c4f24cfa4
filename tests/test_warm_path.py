"""The warm path (a fully cached `run all`) stays cheap and stays right: it imports none of the modules that only
cold paths need, and the metadata it reuses by content (artifacts/.parsed.json) never hides a change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, Outcome, repo_pythonpath

# Made lazy for the warm path (imported where a job runs, an env or lock is built, a suite or block is parsed for the
# first time, or another command needs them), and the heavy packages no orchestrator process should import.
COLD = (
    "dataclasses", "inspect", "ast", "dis", "tokenize", "typing", "tomllib", "tomli", "tempfile", "random", "hashlib",
    "_hashlib", "base64", "subprocess", "concurrent.futures", "queue", "filelock", "packaging", "difflib", "shlex",
    "traceback", "csv", "uuid", "platform", "_orch_suite_schema.suite", "orchestrator.env.host",
    "orchestrator.executors.ray", "orchestrator.report", "ray", "numpy", "torch", "matplotlib", "jax",
)
PROBE = (
    "import sys\n"
    "before = set(sys.modules)\n"
    "from orchestrator.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "import json\n"
    "print('MODULES ' + json.dumps(sorted(set(sys.modules) - before)))\n"
    "sys.exit(rc)\n"
)


def run_probe(tree, *extra, site: bool = True) -> tuple[Outcome, set[str]]:
    """`run all` in a fresh interpreter, as `python -m orchestrator` would, plus the modules the run imported.

    site=False starts it with -S: no site-packages and none of their .pth files, which may import modules at start-up
    (this machine's import typing and tempfile), so the check also covers those."""
    env = dict(os.environ, PYTHONPATH=repo_pythonpath())
    flags = [] if site else ["-S"]
    res = subprocess.run([sys.executable, *flags, "-c", PROBE, "run", "all", *map(str, tree.args(*extra))], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    out, _, mods = res.stdout.rpartition("MODULES ")
    return Outcome(res.returncode, out, res.stderr), set(json.loads(mods or "[]"))


def test_a_warm_run_imports_none_of_the_cold_modules(tree):
    first = tree.run()
    assert first.returncode == 0, first.stdout + first.stderr
    cold, cold_mods = run_probe(tree, "--force")  # runs every job again, in this very process: the cold modules load
    assert cold.returncode == 0 and cold.ran(), cold.stdout + cold.stderr
    assert {"concurrent.futures", "queue", "filelock"} <= cold_mods  # the probe sees what a run imports
    warm, mods = run_probe(tree, site=False)  # also says that a warm run needs no installed package
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert warm.ran() == set() and "combine" in warm.states(), warm.stdout
    loaded = sorted(m for m in mods if m in COLD or m.split(".")[0] in COLD)
    assert loaded == [], loaded


# -- artifacts/.parsed.json --------------------------------------------------------------------------------------

def parsed_file(tree) -> Path:
    return tree.artifacts / ".parsed.json"


def set_settings(script: Path, old: str, new: str) -> None:
    text = script.read_text()
    assert old in text
    script.write_text(text.replace(old, new))


def test_an_edited_block_is_read_again(tree):
    assert tree.run().returncode == 0
    assert json.loads(parsed_file(tree).read_text())["entries"]
    script = tree.impls / "plain" / "bench.py"
    original = script.read_text()
    set_settings(script, "# gpu = false", "# gpu = \"no\"")
    bad = tree.run()
    assert bad.returncode == 2 and "[tool.orchestrator] gpu: must be true or false" in bad.stderr, bad.stderr
    script.write_text(original.replace("# gpu = false", "# gpu = false\n# env = [\"ORCH_TEST_WARM\"]"))
    res = tree.run()  # a declared variable enters its key: it runs again, and so does the stage
    assert res.returncode == 0 and res.ran() == {"plain", "combine"}, res.stdout + res.stderr


def test_a_damaged_entry_is_not_used(tree):
    assert tree.run().returncode == 0
    doc = json.loads(parsed_file(tree).read_text())
    lie = json.dumps({"dependencies": [], "tool": {"orchestrator": {"gpu": "yes"}}})
    doc["entries"] = {k: [lie, check] for k, (_, check) in doc["entries"].items()}
    parsed_file(tree).write_text(json.dumps(doc))
    again = tree.run()
    assert again.returncode == 0 and again.ran() == set(), again.stdout + again.stderr
    parsed_file(tree).write_text("{not json")
    assert tree.run().returncode == 0


def copy_harness(tree) -> Path:
    """The harness's suite validator beside the tree's impls (it is then the one the tree's runs load)."""
    harness = tree.root / "shared" / "opbench"
    shutil.copytree(REPO / "shared" / "opbench", harness, ignore=shutil.ignore_patterns("__pycache__"))
    return harness


def test_an_edited_validator_judges_the_suite_again(tree):
    harness = copy_harness(tree)
    assert tree.run().returncode == 0
    assert tree.run().returncode == 0  # accepted from the cache now
    validator = harness / "errors.py"  # the module the validator imports: it counts as much as suite.py
    validator.write_text(validator.read_text() + "\nraise ImportError('edited validator was loaded')\n")
    res = tree.run()
    assert res.returncode != 0 and "edited validator was loaded" in res.stderr, res.stdout + res.stderr


def test_an_edited_suite_is_validated_again(tree):
    assert tree.run().returncode == 0
    suite = tree.root / "suite.toml"
    suite.write_text(suite.read_text().replace("heads = 1", "heads = 0"))
    res = tree.run()
    assert res.returncode == 2 and "heads: expected a positive integer" in res.stderr, res.stderr


# -- the cache object itself ---------------------------------------------------------------------------------------

DOCS = ['a = 1\nb = 1.0\nc = true\nd = "x"\n[t]\nl = [1, [2.5, "s"]]\n', "x = nan\ny = inf\n", "", 'k = "\\u00e9"\n']


@pytest.mark.parametrize("text", DOCS)
def test_toml_is_tomllib_and_comes_back_the_same(tmp_path, text):
    import tomllib

    from orchestrator.cache.parsed import Parsed

    first = Parsed(tmp_path / "p.json")
    want = tomllib.loads(text)
    got = first.toml(text)
    assert repr(got) == repr(want)
    first.save()
    again = Parsed(tmp_path / "p.json")
    found = again.toml(text)
    assert repr(found) == repr(want) and not again._new  # a hit: nothing new to write
    assert found is not again.toml(text)  # each caller gets its own copy, as from tomllib


def test_dates_are_parsed_every_time_and_errors_never_kept(tmp_path):
    from orchestrator.cache.parsed import Parsed

    p = Parsed(tmp_path / "p.json")
    assert str(p.toml("d = 1979-05-27\n")["d"]) == "1979-05-27"
    with pytest.raises(ValueError):
        p.toml("a = \n")
    p.save()
    assert not (tmp_path / "p.json").exists()  # nothing worth keeping


def test_saving_merges_with_other_runs_keeps_the_newest_and_survives_a_read_only_folder(tmp_path, monkeypatch):
    from orchestrator.cache import parsed

    path = tmp_path / "p.json"
    a, b = parsed.Parsed(path), parsed.Parsed(path)
    a.toml("a = 1\n")
    b.toml("b = 2\n")
    a.save()
    b.save()
    assert len(json.loads(path.read_text())["entries"]) == 2
    monkeypatch.setattr(parsed, "MAX_ENTRIES", 3)
    c = parsed.Parsed(path)
    for i in range(5):
        c.toml(f"n = {i}\n")
    c.save()
    d = parsed.Parsed(path)
    assert len(json.loads(path.read_text())["entries"]) == 3
    d.toml("n = 4\n")
    assert not d._new
    assert parsed.Parsed(tmp_path / "missing" / "p.json").toml("a = 1\n") == {"a": 1}
    parsed.Parsed(tmp_path / "missing" / "p.json").save()  # no artifacts folder: nothing written, no error
    assert not (tmp_path / "missing").exists()
    if os.geteuid() != 0:  # root writes anyway
        tmp_path.chmod(0o500)
        try:
            e = parsed.Parsed(path)
            e.toml("z = 1\n")
            e.save()
        finally:
            tmp_path.chmod(0o700)
