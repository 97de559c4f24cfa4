"""Machine-wide locks, one per GPU (or the host's timing slot), so timed jobs of different runs never overlap.

Taken by the scheduler for the jobs on this machine's GPU slots, and by an executor's worker on another node for
the GPU that node gave a job; not to be confused with dependency pins (env/pins.py) or the cache's per-entry
file locks (cache/store.py).
"""

from __future__ import annotations

import os
from pathlib import Path

HOST_SLOT = "host"  # the single timing slot of a machine without GPUs


def device_lock_path(slot: str) -> Path:
    """The lock file of one GPU id or HOST_SLOT.

    ORCH_LOCK_DIR moves the namespace (the test suite uses its own, so a real run elsewhere never waits on it).
    """
    import tempfile

    d = Path(os.environ.get("ORCH_LOCK_DIR") or Path(tempfile.gettempdir()) / "orchestrator-locks")
    d.mkdir(exist_ok=True)
    return d / f"device-{slot}.lock"
