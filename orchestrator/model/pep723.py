"""Read a script's PEP 723 `# /// script` block with the specification's reference regex and tomllib (or what
tomllib made of the same block before: cache/parsed.py)."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.cache.parsed import Parsed, loads_toml
from orchestrator.errors import UserError

# The reference regular expression from PEP 723.
BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
OPENER = re.compile(r"(?m)^# /// script\s*$")


def read_script_metadata(path: Path, text: str | None = None, parsed: Parsed | None = None) -> dict:
    """Return the parsed `script` block of `path` ({} when it has none); `parsed` may know the block
    already."""
    if text is None:
        text = path.read_text(encoding="utf-8")
    blocks = [m for m in BLOCK.finditer(text) if m.group("type") == "script"]
    # The reference regex merges adjacent blocks into one match, so count openers too.
    if len(blocks) > 1 or len(OPENER.findall(text)) > 1:
        raise UserError(f"{path}: more than one '# /// script' block; PEP 723 allows one")
    if not blocks:
        if OPENER.search(text):
            raise UserError(f"{path}: '# /// script' block is not closed by a '# ///' line")
        return {}
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in blocks[0].group("content").splitlines(keepends=True)
    )
    try:
        return parsed.toml(content) if parsed is not None else loads_toml(content)
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise UserError(f"{path}: invalid TOML in the '# /// script' block: {exc}") from None
