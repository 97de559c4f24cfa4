"""Workload suites: a name (a TOML file in the harness's suite folder) or a path to a TOML file."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError
from orchestrator.hashing import sha256_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUITE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
WORKLOAD_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Suite:
    """A resolved suite: its name, the file jobs read (ORCH_WORKLOADS) and the hash that enters cache keys."""

    name: str
    path: Path
    sha256: str

    def key_input(self) -> dict:
        return {"name": self.name, "sha256": self.sha256}


def available(suites_dir: Path) -> list[str]:
    return sorted(p.stem for p in suites_dir.glob("*.toml")) if suites_dir.is_dir() else []


def resolve_suite(spec: str, suites_dir: Path) -> Suite:
    """Find and structurally validate the suite; bad input is one line naming the file and field."""
    if spec.endswith(".toml") or "/" in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise UserError(f"--workloads {spec}: file not found")
    else:
        path = (suites_dir / f"{spec}.toml").resolve()
        if not SUITE_NAME.match(spec) or not path.is_file():
            raise UserError(f"--workloads {spec}: unknown suite (known: {', '.join(available(suites_dir)) or 'none'})")
    data = path.read_bytes()
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    rows = doc.get("workload")
    if not isinstance(rows, list) or not rows:
        raise UserError(f"{path}: workload: expected one or more [[workload]] tables")
    seen: set[str] = set()
    for i, row in enumerate(rows):
        name = row.get("name") if isinstance(row, dict) else None
        if not isinstance(name, str) or not WORKLOAD_NAME.match(name):
            raise UserError(f"{path}: workload[{i}].name: missing or not matching [A-Za-z0-9_.-]+")
        if name in seen:
            raise UserError(f"{path}: workload[{i}].name: duplicate name {name!r}")
        seen.add(name)
    return Suite(name=path.stem, path=path, sha256=sha256_bytes(data))
