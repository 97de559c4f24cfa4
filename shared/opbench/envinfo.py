"""Provenance stored with every record: package versions, driver, Python (the device part comes from a backend)."""

from __future__ import annotations

import platform
import re
from importlib import metadata
from pathlib import Path

# Distributions whose versions change attention numbers; those not installed are left out.
KNOWN_PACKAGES = (
    "torch", "triton", "numpy", "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin",
    "xformers", "sageattention", "flash-attn", "flash-attn-4", "nvidia-cutlass-dsl", "kernels",
    "huggingface-hub", "nvidia-cudnn-cu12", "nvidia-cudnn-cu13", "opbench-harness",
)


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the known packages plus `extra` (distribution names)."""
    found = {}
    for name in dict.fromkeys((*KNOWN_PACKAGES, *extra)):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def nvidia_driver(proc_file: Path = Path("/proc/driver/nvidia/version")) -> str | None:
    """The NVIDIA kernel driver version, read from /proc (no subprocess); None where there is none."""
    try:
        text = proc_file.read_text()
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]+)", text)
    return match.group(1) if match else None


def python_version() -> str:
    return platform.python_version()


def cpu_name() -> str:
    """A readable CPU description for CPU runs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "cpu: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu: " + (platform.processor() or platform.machine())
