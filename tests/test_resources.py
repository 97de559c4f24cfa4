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
