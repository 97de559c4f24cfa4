"""What the calling script says about itself: its name and the tags in its PEP 723 `[tool.orchestrator]` table."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from opbench.errors import HarnessError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# PEP 723's reference expression for a `# /// TYPE` block.
BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
IMPL_NAME = re.compile(r"^[a-z0-9_]+$")
REQUIRED_TAGS = ("family", "backend", "compile")


def calling_script() -> Path | None:
    """The script being run (`python bench.py`), from __main__ or argv; None in an interactive session."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    return Path(path).resolve() if path and Path(path).is_file() else None


def script_metadata(path: Path) -> dict:
    """The parsed `# /// script` block of a file ({} when it has none)."""
    text = path.read_text(encoding="utf-8")
    blocks = [m for m in BLOCK.finditer(text) if m.group("type") == "script"]
    if not blocks:
        return {}
    if len(blocks) > 1:
        raise HarnessError(f"{path}: more than one '# /// script' block")
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in blocks[0].group("content").splitlines(keepends=True)
    )
    try:
        return tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{path}: invalid TOML in the '# /// script' block: {exc}") from None


def script_tags(path: Path | None) -> dict:
    """`[tool.orchestrator] tags` of the script ({} when there is no script or no tags)."""
    if path is None:
        return {}
    tags = script_metadata(path).get("tool", {}).get("orchestrator", {}).get("tags", {})
    if not isinstance(tags, dict):
        raise HarnessError(f"{path}: [tool.orchestrator] tags: expected a table like {{ family = ..., backend = ... }}")
    return tags


def resolve_tags(path: Path | None, given: dict | None) -> dict:
    """The script's tags updated with those the impl passes; family, backend and compile must all be present."""
    tags = {**script_tags(path), **(given or {})}
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    if missing:
        where = path or "opbench.run(tags=...)"
        needed = ", ".join(REQUIRED_TAGS)
        raise HarnessError(f"{where}: [tool.orchestrator] tags: missing {', '.join(missing)} (set {needed})")
    return {k: tags[k] for k in sorted(tags)}


def impl_name(path: Path | None, given: str | None) -> str:
    """ORCH_IMPL, else the name passed, else the script's folder name; must match [a-z0-9_]+."""
    name = os.environ.get("ORCH_IMPL") or given or (path.parent.name if path else None)
    if not name or not IMPL_NAME.match(name):
        raise HarnessError(f"impl name {name!r}: expected [a-z0-9_]+ (set ORCH_IMPL or pass name=...)")
    return name
