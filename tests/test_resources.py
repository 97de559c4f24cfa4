"""Bounded memory whatever a job prints or writes: log tails are read from the end and cut, records are read in
bounded lines. (The peak RSS figures themselves: benchmarks/peak_rss.py.)"""

from __future__ import annotations

MAX_PRINTED_LINE = 600  # a log line as shown in the summary (the orchestrator cuts them at 500 characters)
RECORD_LIMIT_MIB = 8  # the longest result line the orchestrator accepts
CHUNK = "CHUNK = b'x' * (64 * 1024)\n"


def test_a_huge_log_line_is_cut_in_the_tail(tree):
    tree.add_impl("shouts", (
        "import sys\n" + CHUNK + "sys.stderr.buffer.write(b'start ')\n"
        "for _ in range(20 * 16):\n    sys.stderr.buffer.write(CHUNK)\n"
        "sys.stderr.buffer.write(b' the end\\n')\nsys.exit(3)\n"
    ))
    out = tree.run("shouts", extra=["--no-combine"])
    assert out.returncode == 1 and "exit status 3" in out.stdout, out.stdout[-2000:]
    longest = max(len(line) for line in out.stdout.splitlines())
    assert longest <= MAX_PRINTED_LINE, longest
    assert "(line cut)" in out.stdout


def test_the_tail_is_the_end_of_a_long_log(tree):
    tree.add_impl("chatty", (
        "import sys\nfor i in range(200000):\n    print(f'line {i}')\nprint('last words', file=sys.stderr)\n"
        "print('the very end')\nsys.exit(1)\n"
    ))
    out = tree.run("chatty", extra=["--no-combine"])
    assert out.returncode == 1 and "last words" in out.stdout, out.stdout[-2000:]


def test_a_record_line_longer_than_the_limit_is_refused_in_one_line(tree):
    size = (RECORD_LIMIT_MIB + 4) << 20
    tree.add_impl("bloated", (
        "import os\n" + CHUNK + "with open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'wb') as f:\n"
        "    f.write(b'{\"impl\": \"bloated\", \"pad\": \"')\n"
        f"    for _ in range({size} // len(CHUNK)):\n        f.write(CHUNK)\n"
        "    f.write(b'\"}\\n')\n"
    ))
    out = tree.run("bloated", extra=["--no-combine"])
    assert out.returncode == 1, out.stdout[-2000:]
    assert f"results.jsonl:1: line longer than {RECORD_LIMIT_MIB} MiB" in out.stdout, out.stdout[-2000:]
    assert not (tree.artifacts / "bloated").exists()


# -- disk trouble ---------------------------------------------------------------------------------------------
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FILLER = (
    "import os\n"
    "try:\n"
    "    with open(os.path.join(os.environ['ORCH_OUT'], 'fill.bin'), 'wb', buffering=0) as f:\n"
    "        while True:\n            f.write(b'x' * 1024)\n"
    "except OSError:\n    pass  # the disk is full now: the orchestrator's own writes come next\n"
    "open(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').close()\n"
)


def _tmpfs(path: Path, options: str):
    path.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {res.stderr.strip()}")


@pytest.fixture
def mounts():
    made: list[Path] = []

    def mount(path: Path, options: str) -> Path:
        _tmpfs(path, options)
        made.append(path)
        return path

    yield mount
    for path in made:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_artifacts_folder_is_one_line_before_anything_runs(tree, tmp_path, mounts):
    tree.artifacts = mounts(tmp_path / "ro", "size=64k,ro")
    out = tree.run("plain", extra=["--no-combine"])
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.strip() == f"error: artifacts folder {tree.artifacts} is not writable: Read-only file system", out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_full_disk_while_committing_is_one_line_and_leaves_no_staging(tree, tmp_path, mounts):
    tree.artifacts = mounts(tmp_path / "full", "size=64k")
    tree.add_impl("filler", FILLER)
    out = tree.run("filler", extra=["--no-combine"])
    assert out.returncode == 1, (out.stdout, out.stderr)
    failed = [line for line in out.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and f"cannot write {tree.artifacts}/" in failed[0], out.stdout
    assert failed[0].endswith(": No space left on device"), failed
    assert "Traceback" not in out.stdout + out.stderr, out.stdout
    assert not (tree.artifacts / "filler").exists()
    assert not any((tree.artifacts / ".staging").iterdir())
