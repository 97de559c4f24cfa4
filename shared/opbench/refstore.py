"""Stored fp32 references: computed once per device, suite and modes, read by every impl's harness.

The reference of a workload depends only on its op, fields, dtype and seed (and the device that computes it), not on
the impl; computing it in every job costs each one an autograd pass and, for JAX, a compile per shape. So the
orchestrator runs `python -m opbench.refjob` once (the harness alone: no impl's code runs in that process), commits
what it wrote like any result (`artifacts/.references/<key>/`, a manifest listing every file's sha256) and hands the
jobs after it `OPBENCH_REFERENCES=<folder>#<sha256 of that manifest>`.

A stored reference is used only when the manifest has the digest the orchestrator gave, the index entry names this
very workload (every field and its seed) and the file has the digest the manifest lists: a set that anything changed
is never believed. Otherwise the harness computes the reference itself, as it does with no set at all, and says why
on stderr once. Files: `<workload>.<kind>.f32`, the parts' float32 bytes one after another (kind fwd: the output, a
tensor or a tuple; kind grad: the gradients by name), described by `index.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

VARIABLE = "OPBENCH_REFERENCES"
INDEX = "index.json"
MANIFEST = "manifest.json"  # the orchestrator's (orchestrator/cache/store.py): {"files": {relative path: sha256}}
FORMAT = 1
KINDS = ("fwd", "grad")


def entry_id(wl, kind: str) -> str:
    return f"{wl.name}.{kind}"


def identity(wl) -> dict:
    """What a stored entry must match to stand for this workload: its op, every field, dtype and seed."""
    return {"op": wl.op, "wl": wl.to_json(), "seed": wl.seed}


# -- writing (opbench.refjob) ------------------------------------------------------------------------------------

class Writer:
    """Writes a set's files into `folder` and, at close, its index; entries are float32 arrays (numpy)."""

    def __init__(self, folder: Path, about: dict) -> None:
        self.folder = Path(folder)
        self.index: dict = {"format": FORMAT, **about, "entries": {}}

    def add(self, wl, kind: str, value) -> None:
        """value: one float32 array, a tuple of them (fwd) or {name: array} (grad), as numpy arrays."""
        import numpy as np

        if isinstance(value, dict):
            structure, named = "dict", list(value.items())
        elif isinstance(value, tuple):
            structure, named = "tuple", [(None, v) for v in value]
        else:
            structure, named = "tensor", [(None, value)]
        name = f"{entry_id(wl, kind)}.f32"
        parts, offset = [], 0
        with open(self.folder / name, "wb") as f:
            for part_name, arr in named:
                a = np.ascontiguousarray(arr)
                if a.dtype != np.float32:
                    raise TypeError(f"{entry_id(wl, kind)}: a {a.dtype} reference; references are float32")
                f.write(a.tobytes())
                parts.append({"name": part_name, "shape": list(a.shape), "offset": offset})
                offset += a.nbytes
        self.index["entries"][entry_id(wl, kind)] = {**identity(wl), "file": name, "structure": structure,
                                                    "parts": parts, "nbytes": offset}

    def close(self) -> None:
        tmp = self.folder / (INDEX + ".tmp")
        tmp.write_text(json.dumps(self.index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.folder / INDEX)


# -- reading (the harness of every impl) -------------------------------------------------------------------------

class Stored:
    """One set, as the orchestrator vouched for it; `get` returns numpy arrays or None (the caller computes)."""

    def __init__(self, folder: Path, files: dict, index: dict) -> None:
        self.folder, self.files, self.index = folder, files, index
        self.said: set[str] = set()

    def get(self, wl, kind: str):
        """The stored reference of (wl, kind): an array, a tuple of them or {name: array}; None if not usable."""
        import numpy as np

        entry = self.index.get("entries", {}).get(entry_id(wl, kind))
        if not isinstance(entry, dict):
            return None  # not in this set (a workload it could not compute): computed here, nothing to say
        if {k: entry.get(k) for k in ("op", "wl", "seed")} != identity(wl):
            return self._refuse(f"{entry_id(wl, kind)} was made for another workload")
        rel = entry.get("file")
        digest = self.files.get(rel) if isinstance(rel, str) else None
        if digest is None:
            return self._refuse(f"{rel!r} is not in the set's manifest")
        try:
            with open(self.folder / str(rel), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size != entry.get("nbytes"):
                    return self._refuse(f"{rel}: {size} bytes, the index says {entry.get('nbytes')}")
                buf = bytearray(size)  # writable: torch.from_numpy takes it without a copy or a warning
                f.readinto(buf)
        except OSError as exc:
            return self._refuse(f"{rel}: {exc.strerror or exc}")
        if hashlib.sha256(buf).hexdigest() != digest:
            return self._refuse(f"{rel} differs from its manifest sha256")
        try:
            arrays = [np.frombuffer(buf, dtype=np.float32, count=_count(p["shape"]), offset=p["offset"])
                      .reshape(p["shape"]) for p in entry["parts"]]
            names = [p["name"] for p in entry["parts"]]
        except (KeyError, TypeError, ValueError) as exc:
            return self._refuse(f"{entry_id(wl, kind)}: bad index entry ({exc})")
        structure = entry.get("structure")
        if structure == "dict":
            return dict(zip(names, arrays))
        if structure == "tuple":
            return tuple(arrays)
        return arrays[0] if structure == "tensor" and len(arrays) == 1 else self._refuse(
            f"{entry_id(wl, kind)}: bad structure {structure!r}")

    def _refuse(self, why: str):
        if why not in self.said:
            self.said.add(why)
            print(f"stored references: {why}; computing it here", file=sys.stderr)
        return None


def _count(shape) -> int:
    n = 1
    for s in shape:
        if not isinstance(s, int) or s < 0:
            raise ValueError(f"shape {shape!r}")
        n *= s
    return n


_OPENED: dict[str, Stored | None] = {}


def opened() -> Stored | None:
    """The set $OPBENCH_REFERENCES names, opened once per process; None without one or when it cannot be vouched for
    (said once on stderr)."""
    value = os.environ.get(VARIABLE, "")
    if value in _OPENED:
        return _OPENED[value]
    _OPENED[value] = stored = _open(value) if value else None
    return stored


def _open(value: str) -> Stored | None:
    folder_text, _, digest = value.rpartition("#")
    folder = Path(folder_text)
    try:
        raw = (folder / MANIFEST).read_bytes()
        if not folder_text or hashlib.sha256(raw).hexdigest() != digest:
            raise ValueError("its manifest is not the one the orchestrator vouched for")
        files = json.loads(raw)["files"]
        index_raw = (folder / INDEX).read_bytes()
        if not isinstance(files, dict) or hashlib.sha256(index_raw).hexdigest() != files.get(INDEX):
            raise ValueError(f"{INDEX} differs from its manifest sha256")
        index = json.loads(index_raw)
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise ValueError(f"{INDEX}: not format {FORMAT}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"stored references in {folder_text or value!r} not used: {exc}; every reference is computed here",
              file=sys.stderr)
        return None
    return Stored(folder, files, index)


def reference(backend, inputs: tuple, wl):
    """The forward's fp32 reference: the stored one on the backend's device, else computed from the inputs."""
    stored = opened()
    value = stored.get(wl, "fwd") if stored is not None else None
    if value is None:
        return backend.reference(inputs, wl)
    return tuple(backend.stored(a) for a in value) if isinstance(value, tuple) else backend.stored(value)


def grad_reference(backend, inputs: tuple, dys: tuple, wl) -> dict:
    """The fp32 reference's gradients {name: array}: the stored ones, else computed."""
    stored = opened()
    value = stored.get(wl, "grad") if stored is not None else None
    if value is None:
        return backend.grad_reference(inputs, dys, wl)
    return {n: backend.stored(a) for n, a in value.items()}
