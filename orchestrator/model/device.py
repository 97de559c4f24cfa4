"""Which device results were measured on, read from /proc (no torch import, no subprocess when avoidable)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from orchestrator.frozen import dataclass

NVIDIA_PROC = Path("/proc/driver/nvidia")


@dataclass(frozen=True)
class Device:
    """The machine's accelerators and CPU; `fingerprint` is the part that goes into cache keys."""

    gpus: tuple[str, ...]  # model name per GPU index
    driver: str | None
    cpu: str

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def fingerprint(self) -> str:
        if self.gpus:
            return f"cuda|{'+'.join(sorted(set(self.gpus)))}|driver {self.driver}"
        return f"cpu|{self.cpu}|{os.uname().machine}"

    def to_json(self) -> dict:
        return {"gpus": list(self.gpus), "driver": self.driver, "cpu": self.cpu, "fingerprint": self.fingerprint}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def _from_proc() -> tuple[tuple[str, ...], str | None]:
    gpus_dir = NVIDIA_PROC / "gpus"
    if not gpus_dir.is_dir():
        return (), None
    models = []
    for info in sorted(gpus_dir.glob("*/information")):
        for line in info.read_text().splitlines():
            if line.startswith("Model:"):
                models.append(line.split(":", 1)[1].strip())
    driver = None
    try:
        words = (NVIDIA_PROC / "version").read_text().split()
        driver = next((w for w in words if w[:1].isdigit() and w.count(".") >= 1), None)
    except OSError:
        pass
    return tuple(models), driver


def _from_nvidia_smi() -> tuple[tuple[str, ...], str | None]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return (), None
    from orchestrator.errors import BuildError
    from orchestrator.run.proc import run_tool

    try:
        out = run_tool([exe, "--query-gpu=name,driver_version", "--format=csv,noheader"], timeout=30)
    except BuildError:
        return (), None
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    return tuple(r[0] for r in rows), (rows[0][1] if rows else None)


def detect_device() -> Device:
    """GPUs from /proc/driver/nvidia (nvidia-smi only where /proc lacks them), else the CPU model."""
    if os.environ.get("ORCH_FORCE_CPU") == "1":
        return Device(gpus=(), driver=None, cpu=_cpu_model())
    gpus, driver = _from_proc()
    if not gpus:
        gpus, driver = _from_nvidia_smi()
    return Device(gpus=gpus, driver=driver, cpu=_cpu_model())
