"""The record schema's version and the rules that read it: standard library only, relative imports, so the
orchestrator (`compare`) and the combine stage load this one file rather than keep their own idea of a record.

Version 2 adds `schema`, `op`, `gbps`, `pct_bandwidth`, `l2` and `env.peak_tflops`/`env.copy_gbps`. Version 3 adds
`mode` (what was timed: fwd, bwd or fwd_bwd) and `grad_err` ({gradient: rel_l2} where a backward was checked). A line
without `schema` is version 1: an attention record from before ops existed; version 1 and 2 records are forwards.

Why a new version rather than an optional field: a reader that ignores `mode` would take a backward's latency for a
forward's and draw it in the forward's series; a reader of versions 1-2 refuses a version 3 line instead (warned and
skipped), so a backward is never silently misread.

`clocks` (NVML's SM clock, temperature, power and throttle reasons over the timed reps; `flagged` when the clock
sagged or a counting throttle reason was set, in the first window and in its repeat) is an optional field of
version 3, not a new version: a reader that ignores it misreads no number (it only misses a warning), and a record
without it (older, or measured without NVML) reads as null. `clocks_flagged` is the one rule that reads it.
"""

from __future__ import annotations

from . import ops

SCHEMA = 3
READS = (1, 2, SCHEMA)
LAT_FIELDS = ("mean", "p10", "p50", "p90", "min", "max", "std")
MODES = ops.MODES  # fwd, bwd, fwd_bwd: forward, backward alone, forward then backward (what a record timed)
DEFAULT_MODE = "fwd"


def _schema(data: dict) -> int:
    schema = data.get("schema", 1)
    if isinstance(schema, bool) or schema not in READS:
        raise ValueError(f"schema: unknown record schema {schema!r} (this harness reads {', '.join(map(str, READS))})")
    return schema


def record_op(data: dict) -> str:
    """The op of a record's JSON object; ValueError (naming the field) for a schema or op this harness cannot read."""
    if _schema(data) == 1:
        return ops.DEFAULT
    op = data.get("op")
    if op not in ops.NAMES:
        raise ValueError(f"op: unknown op {op!r} (known: {', '.join(ops.NAMES)})")
    return op


def record_mode(data: dict) -> str:
    """What a record timed: its `mode` (schema 3), fwd for the versions before it; ValueError for an unknown one."""
    if _schema(data) < 3:
        return DEFAULT_MODE
    mode = data.get("mode", DEFAULT_MODE)
    if mode not in MODES:
        raise ValueError(f"mode: unknown mode {mode!r} (known: {', '.join(MODES)})")
    return mode


def clocks_flagged(data: dict) -> bool | None:
    """Whether a record's timed reps ran on throttled clocks: its `clocks.flagged`; None without a clocks reading
    (no NVML, or a record from before the field)."""
    clocks = data.get("clocks")
    if not isinstance(clocks, dict) or not isinstance(clocks.get("flagged"), bool):
        return None
    return clocks["flagged"]


def shape_fields(op: str) -> tuple[str, ...]:
    """A workload's fields in a record's `wl` table, for `op`: name, the op's own fields, dtype."""
    return ("name", *ops.get(op).field_names, "dtype")


def l2_resident(gbps: float | None, copy_gbps: float | None, l2: dict | None) -> bool:
    """Whether a memory-bound result was (at least partly) served from L2: it implies more than the measured copy
    bandwidth while its inputs could sit in L2 (hot policy, or no L2 control). A cold result — inputs rotated
    through 3x the L2, or one call alone moving that much — cannot be: above the copy it is read-heavy traffic
    outrunning a 1:1 copy, shown as such (pct_bandwidth over 100), never hidden."""
    if gbps is None or not copy_gbps or gbps <= copy_gbps:
        return False
    return not (isinstance(l2, dict) and l2.get("policy") == "cold" and "L2 size unknown" not in str(l2.get("method")))
