"""Workload suites: TOML files of one op's shapes, validated into frozen `Workload`s.

Suites live in `workloads/<op>/<name>.toml` (every op has `smoke`, for CPUs, and `seed`, the GPU default); a suite
given by path names its op in `[suite] op = "..."` (default: attention). A file has an optional `[suite]` table
(description, op), an optional `[defaults]` table whose fields apply to every workload, and one or more
`[[workload]]` tables: `name`, `dtype` (float32 | float16 | bfloat16) and the op's own fields (`ops/<op>.py`).
This module is the one validator: the orchestrator loads it (and `ops/`) from this folder to check a suite
before any job runs.
"""

from __future__ import annotations

import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ops  # relative: the orchestrator loads this module without the package's __init__
from .errors import SuiteError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SUITES_DIR = Path(__file__).resolve().parent / "workloads"
DTYPES = ("float32", "float16", "bfloat16")
NAME = re.compile(r"^[A-Za-z0-9_]+$")
BASE_SEED = 20240611
SUITE_KEYS = ("description", "op")


@dataclass(frozen=True)
class Workload:
    """One shape of one op: its name, dtype and the op's fields (read as attributes: `wl.seq_len`)."""

    op: str
    name: str
    dtype: str
    params: tuple[tuple[str, Any], ...]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        for k, v in object.__getattribute__(self, "params"):
            if k == key:
                return v
        raise AttributeError(f"workload of op {self.op!r} has no field {key!r}")

    @property
    def spec(self) -> ops.Op:
        return ops.get(self.op)

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def flops(self) -> float:
        return self.spec.flops(self)

    @property
    def bytes(self) -> float:
        return self.spec.bytes(self)

    @property
    def seed(self) -> int:
        """A stable seed per shape, so one workload's inputs don't depend on which others ran before."""
        spec = self.spec
        key = spec.seed_key(self) if spec.seed_key else self.op + ":" + "x".join(str(v) for _, v in self.params)
        return BASE_SEED ^ zlib.crc32(key.encode())

    def to_json(self) -> dict:
        return {"name": self.name, **dict(self.params), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict, op: str = ops.DEFAULT) -> Workload:
        """A record's `wl` table; KeyError naming the missing field."""
        spec = ops.get(op)
        return cls(op=op, name=data["name"], dtype=data["dtype"], params=tuple((f, data[f]) for f in spec.field_names))

    @classmethod
    def attention(cls, name: str, batch: int, seq_len: int, heads: int, kv_heads: int, head_dim: int, dtype: str,
                  causal: bool = False) -> Workload:
        """An attention workload in the order its fields have always had, unvalidated (tests build hostile ones)."""
        return cls(op="attention", name=name, dtype=dtype, params=(
            ("batch", batch), ("seq_len", seq_len), ("heads", heads), ("kv_heads", kv_heads), ("head_dim", head_dim),
            ("causal", causal)))

    @classmethod
    def make(cls, op: str, name: str, dtype: str, **fields: Any) -> Workload:
        """A workload built in code (tests, tools), validated like a suite's row."""
        return _workload(op, {"name": name, "dtype": dtype, **fields}, f"Workload.make({op})")


@dataclass(frozen=True)
class Suite:
    """A loaded suite: its name (the file's stem), op, where it came from, and its workloads in file order."""

    name: str
    op: str
    path: Path
    workloads: tuple[Workload, ...]


def suite_dir(op: str) -> Path:
    return SUITES_DIR / op


def resolve_path(spec: str, op: str = ops.DEFAULT) -> Path:
    """An absolute or relative path to a .toml file, or a bare suite name looked up in the op's folder."""
    if spec.endswith(".toml") or "/" in spec or "\\" in spec:
        return Path(spec).expanduser().resolve()
    return suite_dir(op) / f"{spec}.toml"


def available(op: str = ops.DEFAULT) -> list[str]:
    return sorted(p.stem for p in suite_dir(op).glob("*.toml"))


def load_suite(spec: str, op: str = ops.DEFAULT) -> Suite:
    """Load and validate a suite by name (in `op`'s folder) or path; a problem is a one-line SuiteError."""
    path = resolve_path(spec, op)
    if not path.is_file():
        known = ", ".join(available(op)) or "none"
        raise SuiteError(f"{path}: workload suite not found (ORCH_WORKLOADS={spec}; known {op} suites: {known})")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SuiteError(f"{path}: invalid TOML: {exc}") from None
    expect = None if (spec.endswith(".toml") or "/" in spec) else op
    found, workloads = parse_suite(doc, str(path), expect)
    return Suite(name=path.stem, op=found, path=path, workloads=workloads)


def suite_op(doc: dict, where: str, expect: str | None = None) -> str:
    """The op a parsed suite belongs to: `[suite] op`, else the folder's (`expect`), else attention."""
    meta = doc.get("suite", {})
    if not isinstance(meta, dict):
        raise SuiteError(f"{where}: suite: expected a table")
    unknown = set(meta) - set(SUITE_KEYS)
    if unknown:
        raise SuiteError(f"{where}: suite.{sorted(unknown)[0]}: unknown key (allowed: {', '.join(SUITE_KEYS)})")
    op = meta.get("op", expect or ops.DEFAULT)
    if op not in ops.NAMES:
        raise SuiteError(f"{where}: suite.op: unknown op {op!r} (known: {', '.join(ops.NAMES)})")
    if expect is not None and op != expect:
        raise SuiteError(f"{where}: suite.op: {op!r}, but the file is in the {expect!r} folder")
    return op


def parse_suite(doc: dict, where: str, expect: str | None = None) -> tuple[str, tuple[Workload, ...]]:
    """Validate a parsed suite document; `where` (the file) prefixes every error. Returns (op, workloads)."""
    unknown = set(doc) - {"suite", "defaults", "workload"}
    if unknown:
        first = sorted(unknown)[0]
        raise SuiteError(f"{where}: unknown top-level table {first!r} (allowed: suite, defaults, workload)")
    op = suite_op(doc, where, expect)
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise SuiteError(f"{where}: defaults: expected a table")
    if "name" in defaults:
        raise SuiteError(f"{where}: defaults.name: a name cannot have a default")
    rows = doc.get("workload")
    if not isinstance(rows, list) or not rows:
        raise SuiteError(f"{where}: workload: expected one or more [[workload]] tables")
    out: list[Workload] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SuiteError(f"{where}: workload[{i}]: expected a table")
        wl = _workload(op, {**defaults, **row}, f"{where}: workload[{i}]")
        if wl.name in seen:
            raise SuiteError(f"{where}: workload[{i}].name: duplicate name {wl.name!r}")
        seen.add(wl.name)
        out.append(wl)
    return op, tuple(out)


def _workload(op: str, row: dict, where: str) -> Workload:
    spec = ops.get(op)
    allowed = ("name", *spec.field_names, "dtype")
    unknown = set(row) - set(allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown field {sorted(unknown)[0]!r} for op {op} (allowed: {', '.join(allowed)})")
    name = row.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise SuiteError(f"{where}.name: expected a name matching [A-Za-z0-9_]+, got {name!r}")
    where = f"{where} ({name})"
    values: dict[str, Any] = {}
    for f in spec.fields:
        value = row.get(f.name)
        if value is None:
            value = row.get(f.same_as) if f.same_as else (None if f.default is ops.base.REQUIRED else f.default)
        if value is None:
            raise SuiteError(f"{where}.{f.name}: missing (set it in the workload or in [defaults])")
        if f.kind is bool:
            if not isinstance(value, bool):
                raise SuiteError(f"{where}.{f.name}: expected true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SuiteError(f"{where}.{f.name}: expected a positive integer, got {value!r}")
        values[f.name] = value
    if spec.check is not None:
        try:
            spec.check(values)
        except ValueError as exc:
            raise SuiteError(f"{where}.{exc}") from None
    if row.get("dtype") not in DTYPES:
        raise SuiteError(f"{where}.dtype: expected one of {', '.join(DTYPES)}, got {row.get('dtype')!r}")
    return Workload(op=op, name=name, dtype=row["dtype"], params=tuple(values.items()))
