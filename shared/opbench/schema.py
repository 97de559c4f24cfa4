"""The record schema's version and the rule that reads it: standard library only, relative imports, so the
orchestrator (`compare`) and the combine stage load this one file rather than keep their own idea of a record.

Version 2 adds `schema`, `op`, `gbps`, `pct_bandwidth`, `l2` and `env.peak_tflops`/`env.copy_gbps`. A line
without `schema` is version 1: an attention record from before ops existed.
"""

from __future__ import annotations

from . import ops

SCHEMA = 2
READS = (1, SCHEMA)
LAT_FIELDS = ("mean", "p10", "p50", "p90", "min", "max", "std")


def record_op(data: dict) -> str:
    """The op of a record's JSON object; ValueError (naming the field) for a schema or op this harness cannot read."""
    schema = data.get("schema", 1)
    if isinstance(schema, bool) or schema not in READS:
        raise ValueError(f"schema: unknown record schema {schema!r} (this harness reads {', '.join(map(str, READS))})")
    if schema == 1:
        return ops.DEFAULT
    op = data.get("op")
    if op not in ops.NAMES:
        raise ValueError(f"op: unknown op {op!r} (known: {', '.join(ops.NAMES)})")
    return op


def shape_fields(op: str) -> tuple[str, ...]:
    """A workload's fields in a record's `wl` table, for `op`: name, the op's own fields, dtype."""
    return ("name", *ops.get(op).field_names, "dtype")
