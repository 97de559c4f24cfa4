"""Workload suites: a name (a TOML file in the harness's suite folder) or a path to a TOML file."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from orchestrator.cache.hashing import sha256_bytes
from orchestrator.cache.parsed import Parsed, loads_toml
from orchestrator.errors import UserError
from orchestrator.frozen import dataclass

SUITE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
HARNESS_SCHEMA = "_orch_suite_schema"  # private package name under which the harness's suite module is loaded


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


def harness_suite_module(harness: Path):
    """The harness's own suite validator (stdlib only), loaded from its file: one validator for both sides.

    It is imported under a private package name so that the orchestrator never imports the harness itself.
    """
    import importlib
    import importlib.machinery
    import importlib.util

    if HARNESS_SCHEMA not in sys.modules:
        spec = importlib.machinery.ModuleSpec(HARNESS_SCHEMA, None, is_package=True)
        pkg = importlib.util.module_from_spec(spec)
        pkg.__path__ = [str(harness)]
        sys.modules[HARNESS_SCHEMA] = pkg
    return importlib.import_module(f"{HARNESS_SCHEMA}.suite")


def resolve_suite(spec: str, suites_dir: Path, harness: Path, parsed: Parsed | None = None) -> Suite:
    """Find and validate the suite with the harness's validator; bad input is one line naming the file and field.

    `parsed` may know that the validator, as it is now, accepted these very bytes before.
    """
    if spec.endswith(".toml") or "/" in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise UserError(f"--workloads {spec}: file not found")
    else:
        path = (suites_dir / f"{spec}.toml").resolve()
        if not SUITE_NAME.match(spec) or not path.is_file():
            raise UserError(f"--workloads {spec}: unknown suite (known: {', '.join(available(suites_dir)) or 'none'})")
    data = path.read_bytes()
    if parsed is None or not parsed.suite_accepted(data, harness):
        try:
            doc = loads_toml(data.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError, tomllib.TOMLDecodeError
            raise UserError(f"{path}: invalid TOML: {exc}") from None
        schema = harness_suite_module(harness)
        try:
            schema.parse_suite(doc, str(path))
        except schema.SuiteError as exc:
            raise UserError(str(exc)) from None
        files = schema_files()
        # This process may hold another harness's validator (loaded once per process): then nothing is noted.
        if parsed is not None and files and all(Path(f).parent == harness for f in files):
            parsed.note_suite_accepted(data, harness, files)
    return Suite(name=path.stem, path=path, sha256=sha256_bytes(data))


def schema_files() -> list[str]:
    """Every file the harness's validator was loaded from (its modules under the private package name)."""
    prefix = HARNESS_SCHEMA + "."
    files = (getattr(m, "__file__", None) for n, m in list(sys.modules.items()) if n.startswith(prefix))
    return [f for f in files if f]
