"""Cache keys: a sha256 over every input that can change a result, and nothing location-dependent."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cache.hashing import sha256_bytes, sha256_json, sha256_tree
from orchestrator.env.pins import normalised_pins
from orchestrator.model.job import Job

KEY_FORMAT = 2  # 2: the interpreter, normalised lock pins, declared variables; tree hashes follow links


class TreeHashes:
    """Source-tree hashes computed once per run (every impl shares the harness folder)."""

    def __init__(self) -> None:
        self._seen: dict[Path, str] = {}

    def __call__(self, root: Path) -> str:
        if root not in self._seen:
            self._seen[root] = sha256_tree(root)
        return self._seen[root]


def pins_sha256(lock_text: str | None) -> str | None:
    """A lock's key: its pins and hashes, sorted, comments left out, so a rewrite that changes no pin keeps the cache."""
    return None if lock_text is None else sha256_json(normalised_pins(lock_text))


def key_inputs(
    job: Job,
    *,
    script: bytes,
    lock: str | None,
    trees: TreeHashes,
    upstreams: dict[str, dict],
    workloads: dict,
    device: str,
    base: dict | None,
    python: dict,
    variables: dict[str, str | None],
    settings: dict | None = None,
    mode: str | None = None,
) -> dict:
    """The recorded inputs of a job's key; `upstreams` maps name -> {"key": ..., plus status for stages}. mode: what
    the job times (model/mode.mode_text), None for the default forward, which adds nothing (older keys stand)."""
    inputs = {
        "format": KEY_FORMAT,
        "name": job.name,
        "script_sha256": sha256_bytes(script),
        # The script may import modules beside it (a kernel in its own file, a stage's report modules).
        "folder_sha256": trees(job.folder),
        "pins_sha256": pins_sha256(lock),
        "path_deps": {dep.name: trees(dep.root) for dep in job.path_deps},
        "upstreams": upstreams,
        "workloads": workloads,
        "device": device,
        "base": base,
        "python": python,  # version and implementation of the interpreter the job runs under
        "variables": variables,  # [tool.orchestrator] env: the values (None: unset) its numbers depend on
    }
    if job.stage:  # a stage takes run settings through its variables
        inputs["settings"] = settings
    elif mode is not None:
        inputs["mode"] = mode
    return inputs


def key_of(inputs: dict) -> str:
    return sha256_json(inputs)
