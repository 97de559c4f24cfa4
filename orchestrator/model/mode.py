"""What a run times: `--mode`, a comma list of fwd (the forward), bwd (the backward alone), fwd_bwd (both).

The list is kept in MODES order without repeats, so `bwd,fwd` and `fwd,bwd` are one run. It reaches the jobs as
$ORCH_MODE and enters a job's key only when it is not exactly the default, so every key of a forward-only run is
the key it had before modes existed. MODES is the harness's list (opbench.schema.MODES, held equal by a test):
the warm path imports no harness module.
"""

from __future__ import annotations

from orchestrator.errors import UserError

MODES = ("fwd", "bwd", "fwd_bwd")
DEFAULT = ("fwd",)
VARIABLE = "ORCH_MODE"


def parse_modes(text: str | None) -> tuple[str, ...]:
    """The modes of `--mode TEXT` (None or empty: the default); a UserError naming an unknown one."""
    if not text:
        return DEFAULT
    parts = [p.strip() for p in text.split(",") if p.strip()]
    for p in parts:
        if p not in MODES:
            raise UserError(f"--mode {text}: unknown mode {p!r} (known: {', '.join(MODES)})")
    return tuple(m for m in MODES if m in parts) or DEFAULT


def mode_text(modes: tuple[str, ...]) -> str | None:
    """What a job is told ($ORCH_MODE) and what its key holds: None for the default (nothing is added)."""
    return None if tuple(modes) == DEFAULT else ",".join(modes)
