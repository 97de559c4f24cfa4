"""What reading the impls' metadata found before, by content: parsed TOML (PEP 723 blocks, path dependencies'
pyproject.toml) and suites the harness's validator accepted. A warm run then imports neither tomllib nor the
validator (and, under it, dataclasses): ~15 ms of a run that takes well under 100.

One JSON file in the artifacts folder, `.parsed.json`: sha256 of the input -> the result, as JSON text, with a
sha256 over key and text (an entry damaged by hand is not used). The key covers the exact input text and this
Python (implementation and version), so any changed byte is a miss and is parsed again; only results that JSON
gives back unchanged are kept (no TOML dates). A suite's entry lists every harness file the validator ran from,
with its sha256: each is read and hashed again before the entry counts. Nothing that failed is kept: errors are
always produced afresh. Written only by `run` and `combine`, and only into an existing artifacts folder, at most
MAX_ENTRIES (the newest); two runs writing at once lose at most each other's new entries (parsed again next time).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from orchestrator.cache.hashing import sha256_bytes, sha256_file

FILE = ".parsed.json"
FORMAT = 1
MAX_ENTRIES = 256
TAG = f"{FORMAT}\0{sys.implementation.name}\0{sys.version.split()[0]}"


def loads_toml(text: str) -> dict:
    """tomllib.loads (tomli on 3.10), imported on first use; a bad document raises tomllib.TOMLDecodeError, a
    ValueError."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


class Parsed:
    """The cache of parsed metadata; `path` None keeps it in memory only (nothing read or written)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, list] | None = None  # key -> [result as JSON text, check], read on first use
        self._new: dict[str, list] = {}

    def _check(self, key: str, text: str) -> str:
        return sha256_bytes(f"{key}\0{text}".encode())

    def _get(self, key: str):
        if self._entries is None:
            self._entries = self._read()
        entry = self._new.get(key) or self._entries.get(key)
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            return None
        if entry[1] != self._check(key, entry[0]):
            return None
        try:
            return json.loads(entry[0])
        except ValueError:
            return None

    def _put(self, key: str, value) -> None:
        try:
            text = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError):  # a TOML date or time: not JSON, parsed every time
            return
        if json.dumps(json.loads(text), separators=(",", ":")) != text:
            return
        self._new[key] = [text, self._check(key, text)]

    def _read(self) -> dict[str, list]:
        if self.path is None:
            return {}
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        entries = doc.get("entries") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
        return entries if isinstance(entries, dict) else {}

    # -- TOML --------------------------------------------------------------------------------------------
    def toml(self, text: str) -> dict:
        """tomllib.loads(text), or what it returned for this very text before."""
        key = sha256_bytes(f"toml\0{TAG}\0{text}".encode("utf-8", "surrogatepass"))
        found = self._get(key)
        if isinstance(found, dict):
            return found
        value = loads_toml(text)
        self._put(key, value)
        return value

    # -- suites ------------------------------------------------------------------------------------------
    def _suite_key(self, data: bytes, harness: Path, expect: str | None) -> str:
        return sha256_bytes(f"suite\0{TAG}\0{harness}\0{expect}\0".encode("utf-8", "surrogatepass") + data)

    def suite_accepted(self, data: bytes, harness: Path, expect: str | None = None) -> str | None:
        """The op the harness's validator found when it accepted exactly this suite file (in a folder of op
        `expect`) before, if none of the files it ran from has changed since; else None."""
        found = self._get(self._suite_key(data, harness, expect))
        if not (isinstance(found, dict) and isinstance(found.get("files"), dict) and found["files"]
                and isinstance(found.get("op"), str)):
            return None
        for path, digest in found["files"].items():
            try:
                if sha256_file(Path(path)) != digest:
                    return None
            except OSError:
                return None
        return found["op"]

    def note_suite_accepted(self, data: bytes, harness: Path, expect: str | None, files: list[str], op: str) -> None:
        """The validator, running from `files`, accepted this suite file as one of op `op`."""
        try:
            digests = {f: sha256_file(Path(f)) for f in sorted(set(files))}
        except OSError:
            return
        if digests:
            self._put(self._suite_key(data, harness, expect), {"files": digests, "op": op})

    # -- writing -----------------------------------------------------------------------------------------
    def save(self) -> None:
        """Add this run's new entries to the file (when there are any and the artifacts folder exists)."""
        if not self._new or self.path is None or not self.path.parent.is_dir():
            return
        merged = {k: v for k, v in self._read().items() if k not in self._new}
        merged.update(self._new)
        keep = dict(list(merged.items())[-MAX_ENTRIES:])
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        try:
            tmp.write_text(json.dumps({"format": FORMAT, "entries": keep}, separators=(",", ":")))
            os.replace(tmp, self.path)
        except OSError:  # read-only or full: the next run parses again
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            return
        self._entries, self._new = keep, {}
