"""Workload suites: TOML files of attention shapes, validated into frozen `Workload`s.

A suite file has an optional `[suite]` table (description), an optional `[defaults]` table whose fields
apply to every workload, and one or more `[[workload]]` tables. Fields: name, batch, seq_len, heads,
kv_heads (default: heads), head_dim, dtype (float32 | float16 | bfloat16), causal (default: false).
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import SuiteError  # relative: the orchestrator loads this module without the package

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SUITES_DIR = Path(__file__).resolve().parent / "workloads"
DTYPES = ("float32", "float16", "bfloat16")
NAME = re.compile(r"^[A-Za-z0-9_]+$")
INT_FIELDS = ("batch", "seq_len", "heads", "kv_heads", "head_dim")
FIELDS = ("name", *INT_FIELDS, "dtype", "causal")


@dataclass(frozen=True)
class Workload:
    """One attention shape. Canonical tensor layout is (batch, seq_len, heads, head_dim)."""

    name: str
    batch: int
    seq_len: int
    heads: int
    kv_heads: int
    head_dim: int
    dtype: str
    causal: bool

    @property
    def flops(self) -> float:
        """Forward work, 4·B·H·S²·D, halved when causal."""
        work = 4.0 * self.batch * self.heads * self.seq_len**2 * self.head_dim
        return work / 2 if self.causal else work

    @property
    def gqa(self) -> bool:
        return self.kv_heads != self.heads

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Workload":
        return cls(**{f: data[f] for f in FIELDS})


@dataclass(frozen=True)
class Suite:
    """A loaded suite: its name (the file's stem), where it came from, and its workloads in file order."""

    name: str
    path: Path
    workloads: tuple[Workload, ...]


def resolve_path(spec: str) -> Path:
    """An absolute or relative path to a .toml file, or a bare suite name looked up in SUITES_DIR."""
    if spec.endswith(".toml") or "/" in spec or "\\" in spec:
        return Path(spec).expanduser().resolve()
    return SUITES_DIR / f"{spec}.toml"


def available() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(spec: str) -> Suite:
    """Load and validate a suite by name or path; any problem is a one-line SuiteError naming file and field."""
    path = resolve_path(spec)
    if not path.is_file():
        known = ", ".join(available()) or "none"
        raise SuiteError(f"{path}: workload suite not found (ORCH_WORKLOADS={spec}; known suites: {known})")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SuiteError(f"{path}: invalid TOML: {exc}") from None
    return Suite(name=path.stem, path=path, workloads=parse_suite(doc, str(path)))


def parse_suite(doc: dict, where: str) -> tuple[Workload, ...]:
    """Validate a parsed suite document; `where` (the file) prefixes every error."""
    unknown = set(doc) - {"suite", "defaults", "workload"}
    if unknown:
        first = sorted(unknown)[0]
        raise SuiteError(f"{where}: unknown top-level table {first!r} (allowed: suite, defaults, workload)")
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
        wl = _workload({**defaults, **row}, f"{where}: workload[{i}]")
        if wl.name in seen:
            raise SuiteError(f"{where}: workload[{i}].name: duplicate name {wl.name!r}")
        seen.add(wl.name)
        out.append(wl)
    return tuple(out)


def _workload(row: dict, where: str) -> Workload:
    unknown = set(row) - set(FIELDS)
    if unknown:
        raise SuiteError(f"{where}: unknown field {sorted(unknown)[0]!r} (allowed: {', '.join(FIELDS)})")
    name = row.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise SuiteError(f"{where}.name: expected a name matching [A-Za-z0-9_]+, got {name!r}")
    where = f"{where} ({name})"
    row = {"kv_heads": row.get("heads"), "causal": False, **row}
    for field in INT_FIELDS:
        value = row.get(field)
        if value is None:
            raise SuiteError(f"{where}.{field}: missing (set it in the workload or in [defaults])")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SuiteError(f"{where}.{field}: expected a positive integer, got {value!r}")
    if row["heads"] % row["kv_heads"]:
        raise SuiteError(f"{where}.kv_heads: heads ({row['heads']}) must be a multiple of kv_heads ({row['kv_heads']})")
    if row.get("dtype") not in DTYPES:
        raise SuiteError(f"{where}.dtype: expected one of {', '.join(DTYPES)}, got {row.get('dtype')!r}")
    if not isinstance(row["causal"], bool):
        raise SuiteError(f"{where}.causal: expected true or false, got {row['causal']!r}")
    return Workload(**{f: row[f] for f in FIELDS})
