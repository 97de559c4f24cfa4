"""What the calling script is: its name, its op, its tags and the modes to time (from the variables the orchestrator
sets)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from opbench.errors import HarnessError

IMPL_NAME = re.compile(r"^[a-z0-9_]+$")
REQUIRED_TAGS = ("family", "backend", "compile")
TAGS_VAR, OP_VAR, MODE_VAR = "ORCH_TAGS", "ORCH_OP", "ORCH_MODE"


def calling_script() -> Path | None:
    """The script being run (`python bench.py`), from __main__ or argv; None in an interactive session."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    return Path(path).resolve() if path and Path(path).is_file() else None


def env_tags() -> dict:
    """The script's `[tool.orchestrator] tags`, as the orchestrator hands them over ($ORCH_TAGS, a JSON table):
    the orchestrator is the one reader of the PEP 723 block."""
    text = os.environ.get(TAGS_VAR)
    if not text:
        return {}
    try:
        tags = json.loads(text)
    except ValueError as exc:
        raise HarnessError(f"${TAGS_VAR}: not JSON ({exc})") from None
    if not isinstance(tags, dict):
        raise HarnessError(f"${TAGS_VAR}: expected a JSON table like {{\"family\": ..., \"backend\": ...}}")
    return tags


def resolve_tags(path: Path | None, given: dict | None) -> dict:
    """The script's tags updated with those the impl passes; family, backend and compile must all be present."""
    tags = {**env_tags(), **(given or {})}
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    if missing:
        where = path or "opbench.run(tags=...)"
        needed = ", ".join(REQUIRED_TAGS)
        raise HarnessError(f"{where}: [tool.orchestrator] tags: missing {', '.join(missing)} (set {needed}; run it "
                           f"through the orchestrator, or as `python -m orchestrator reproduce NAME` prints, which "
                           f"sets ${TAGS_VAR})")
    return {k: tags[k] for k in sorted(tags)}


def op_name(given: str | None) -> str:
    """$ORCH_OP (the script's `[tool.orchestrator] op`, set by the orchestrator), else the one passed, else attention."""
    from opbench import ops

    name = os.environ.get(OP_VAR) or given or ops.DEFAULT
    if name not in ops.NAMES:
        raise HarnessError(f"op {name!r}: unknown (known: {', '.join(ops.NAMES)})")
    return name


def modes() -> tuple[str, ...]:
    """$ORCH_MODE, a comma list of the modes to time (fwd, bwd, fwd_bwd) in its order; unset or empty: fwd.
    An unknown mode is a HarnessError naming it."""
    from opbench.schema import DEFAULT_MODE, MODES

    text = os.environ.get(MODE_VAR, "")
    chosen: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part not in MODES:
            raise HarnessError(f"${MODE_VAR}={text}: unknown mode {part!r} (known: {', '.join(MODES)})")
        if part not in chosen:
            chosen.append(part)
    return tuple(chosen) or (DEFAULT_MODE,)


def impl_name(path: Path | None, given: str | None) -> str:
    """ORCH_IMPL, else the name passed, else the script's folder name; must match [a-z0-9_]+."""
    name = os.environ.get("ORCH_IMPL") or given or (path.parent.name if path else None)
    if not name or not IMPL_NAME.match(name):
        raise HarnessError(f"impl name {name!r}: expected [a-z0-9_]+ (set ORCH_IMPL or pass name=...)")
    return name
