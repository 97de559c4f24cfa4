"""Host mode's test material: hand-written wheels, a base venv holding some of them, the CLI flags that use it."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = (),
               extras: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel, written by hand so the test needs no network."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Provides-Extra: {e}\n" for e in extras)
            + "".join(f"Requires-Dist: {r}\n" for r in requires))
    entries = {**files, f"{dist}.dist-info/METADATA": meta,
               f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in entries.items():
            data = text.encode()
            zf.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={digest},{len(data)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def make_base(path: Path, wheels: list[Path]) -> Path:
    """A base venv holding exactly the given wheels (installed offline with pip)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    py = path / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--target", str(next(path.glob("lib/python*/")) / "site-packages"), *map(str, wheels)], check=True)
    return py


def host_args(base: Path, house: Path) -> list:
    return ["--python", base, "--wheelhouse", house, "--offline"]


WRITE_VERSIONS = """import os, json, basepkg, extrapkg, hidden_mod
open(os.path.join(os.environ["ORCH_OUT"], "seen.json"), "w").write(json.dumps(
    {"basepkg": basepkg.VERSION, "extrapkg": extrapkg.VERSION, "hidden": hidden_mod.WHERE}))
"""
