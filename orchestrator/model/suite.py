"""Workload suites: a name (a TOML file in each op's folder of the harness's suites, `workloads/<op>/<name>.toml`)
or a path to one TOML file (whose `[suite] op` says which op's impls it is for)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from orchestrator.cache.hashing import sha256_bytes
from orchestrator.cache.parsed import Parsed, loads_toml
from orchestrator.errors import UserError
from orchestrator.frozen import dataclass, replace

SUITE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
OP_DIR = re.compile(r"^[a-z][a-z0-9_]*$")
HARNESS_SCHEMA = "_orch_suite_schema"  # private package name under which the harness's suite module is loaded


@dataclass(frozen=True)
class Suite:
    """A resolved suite: its name, the file jobs read (ORCH_WORKLOADS) and the hash that enters cache keys."""

    name: str
    path: Path
    sha256: str
    op: str = "attention"

    def key_input(self) -> dict:
        return {"name": self.name, "sha256": self.sha256}


@dataclass(frozen=True)
class Suites:
    """The run's suites, one per op that has one: `--workloads seed` is every op's own `seed`."""

    name: str
    by_op: tuple[tuple[str, Suite], ...]
    ops: tuple[str, ...] = ()  # every op the harness defines

    def get(self, op: str) -> Suite | None:
        return dict(self.by_op).get(op)

    def key_input(self) -> dict:
        """What a stage's key holds: every op's suite."""
        return {op: s.key_input() for op, s in self.by_op}

    def missing_reason(self, op: str) -> str:
        return f"no suite {self.name!r} for op {op} (it has: {', '.join(self.known.get(op, [])) or 'none'})"

    @property
    def known(self) -> dict[str, list[str]]:
        return {op: available(s.path.parent) for op, s in self.by_op}

    @classmethod
    def single(cls, suite: Suite) -> Suites:
        return cls(name=suite.name, by_op=((suite.op, suite),), ops=(suite.op,))


def available(suites_dir: Path) -> list[str]:
    return sorted(p.stem for p in suites_dir.glob("*.toml")) if suites_dir.is_dir() else []


def harness_suite_module(harness: Path, module: str = "suite"):
    """The harness's own suite validator (or its record `schema`; both stdlib only), loaded from its file: one
    definition for both sides. It is imported under a private package name so that the orchestrator never imports
    the harness itself."""
    import importlib
    import importlib.machinery
    import importlib.util

    if HARNESS_SCHEMA not in sys.modules:
        spec = importlib.machinery.ModuleSpec(HARNESS_SCHEMA, None, is_package=True)
        pkg = importlib.util.module_from_spec(spec)
        pkg.__path__ = [str(harness)]
        sys.modules[HARNESS_SCHEMA] = pkg
    return importlib.import_module(f"{HARNESS_SCHEMA}.{module}")


def _validated(path: Path, harness: Path, expect: str | None, parsed: Parsed | None) -> Suite:
    """One suite file checked by the harness's validator — or known to have been accepted, as these very bytes
    under this `expect`, by the validator's files as they are now (`parsed`)."""
    data = path.read_bytes()
    op = parsed.suite_accepted(data, harness, expect) if parsed is not None else None
    if op is None:
        try:
            doc = loads_toml(data.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError, tomllib.TOMLDecodeError
            raise UserError(f"{path}: invalid TOML: {exc}") from None
        schema = harness_suite_module(harness)
        try:
            op, _ = schema.parse_suite(doc, str(path), expect)
        except schema.SuiteError as exc:
            raise UserError(str(exc)) from None
        files = schema_files()
        # This process may hold another harness's validator (loaded once per process): then nothing is noted.
        if parsed is not None and files and all(harness in Path(f).parents for f in files):
            parsed.note_suite_accepted(data, harness, expect, files, op)
    return Suite(name=path.stem, path=path, sha256=sha256_bytes(data), op=op)


def op_names(suites_dir: Path) -> tuple[str, ...]:
    """The ops, as the suites folder has them (every op has its folder, with `smoke` and `seed` at least)."""
    if not suites_dir.is_dir():
        return ()
    return tuple(sorted(d.name for d in suites_dir.iterdir() if d.is_dir() and OP_DIR.match(d.name)))


def resolve_suites(spec: str, suites_dir: Path, harness: Path, parsed: Parsed | None = None) -> Suites:
    """Find and validate the suites with the harness's validator; bad input is one line naming the file and field.

    A name is looked up in every op's folder (`suites_dir/<op>/<name>.toml`): ops without that suite run nothing
    this time (their impls are skipped, saying so). A path is one suite, for the op it names."""
    ops = op_names(suites_dir)
    if spec.endswith(".toml") or "/" in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise UserError(f"--workloads {spec}: file not found")
        return replace(Suites.single(_validated(path, harness, None, parsed)), ops=ops)
    if not SUITE_NAME.match(spec):
        raise UserError(f"--workloads {spec}: not a suite name ([A-Za-z0-9_-]+) or a .toml path")
    found = [(op, _validated((suites_dir / op / f"{spec}.toml").resolve(), harness, op, parsed)) for op in ops
             if (suites_dir / op / f"{spec}.toml").is_file()]
    if not found:
        known = sorted({n for op in ops for n in available(suites_dir / op)})
        raise UserError(f"--workloads {spec}: unknown suite (known: {', '.join(known) or 'none'})")
    return Suites(name=spec, by_op=tuple(found), ops=ops)


def schema_files() -> list[str]:
    """Every file the harness's validator was loaded from (its modules under the private package name)."""
    prefix = HARNESS_SCHEMA + "."
    files = (getattr(m, "__file__", None) for n, m in list(sys.modules.items()) if n.startswith(prefix))
    return [f for f in files if f]
