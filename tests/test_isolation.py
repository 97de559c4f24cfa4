"""The suite keeps to itself: its own caches and device-lock namespace, whatever else runs on the machine."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from filelock import FileLock

from conftest import orch


def test_a_run_with_packages_writes_nothing_under_home(tree, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    res = orch("run", "all", *tree.args(), env={"HOME": str(home)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert list(home.iterdir()) == [], sorted(str(p) for p in home.rglob("*"))[:10]


def test_another_orchestrator_timing_on_this_machine_does_not_slow_the_suite(tree):
    tree.add_impl("timed", "pass\n", settings="gpu = true")  # takes this machine's timing slot
    default_lock = Path(tempfile.gettempdir()) / "orchestrator-locks" / "device-host.lock"
    default_lock.parent.mkdir(exist_ok=True)
    with FileLock(str(default_lock), timeout=5):  # what a real run elsewhere holds while it times
        started = time.monotonic()
        res = orch("run", "timed", *tree.args("--no-combine"), timeout=90)  # raises if it waits
        took = time.monotonic() - started
    assert res.returncode == 0 and res.ran() == {"timed"}, res.stdout + res.stderr
    assert took < 60, took  # without its own namespace it waits for the other run's lock forever
