"""The content-addressed artifact cache: `<root>/<name>/<key>/` folders committed atomically with a manifest."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from orchestrator.cache.hashing import sha256_file
from orchestrator.errors import StoreError, UserError
from orchestrator.frozen import dataclass, field, field_names

MANIFEST = "manifest.json"
LOGS = "_logs"
RESERVED = {MANIFEST, LOGS}
STAGING = ".staging"
LOCKS = ".locks"
FAILED = ".failed"
LATEST = "latest"


@dataclass(frozen=True)
class Manifest:
    """Everything known about one committed result: its key and inputs, outcome, files and provenance."""

    name: str
    key: str
    inputs: dict
    status: str  # ok | skipped
    reason: str
    started: float
    finished: float
    returncode: int
    files: dict  # relative path -> sha256, logs included
    packages: list
    device: dict
    reproduce: str
    runner: dict = field(default_factory=dict)
    variables: dict = field(default_factory=dict)  # framework variables (TORCH_*, CUDA_*, …) the job ran with
    phases: dict = field(default_factory=dict)  # seconds: env_s, wait_s, run_s, start_s, harness (phases.json)

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_json(cls, data) -> Manifest:
        """A manifest from its JSON; any other shape (a field missing or of the wrong type) is ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        for name, kinds in FIELD_TYPES.items():
            if name not in data:
                if name in OPTIONAL_FIELDS:
                    continue
                raise ValueError(f"field {name!r} missing")
            value = data[name]
            if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
                raise ValueError(f"field {name!r} is a {type(value).__name__}")
        for rel, digest in data["files"].items():
            parts = Path(rel).parts
            if not isinstance(digest, str) or not parts or rel.startswith("/") or ".." in parts or rel == MANIFEST:
                raise ValueError(f"files: bad entry {rel!r}")
        return cls(**{k: data[k] for k in field_names(cls) if k in data})


# Variables that change what frameworks do (kernels picked, precision, threads, caches): recorded in each manifest.
FRAMEWORK_PREFIXES = ("TORCH_", "PYTORCH_", "TORCHINDUCTOR_", "TRITON_", "CUDA_", "CUDNN_", "CUBLAS_", "CUBLASLT_",
                      "NCCL_", "NVSHMEM_", "NVIDIA_", "XLA_", "JAX_", "HF_", "OMP_", "MKL_", "OPENBLAS_", "KMP_")


def recorded_variables(environ) -> dict[str, str]:
    """The framework variables present in a job's environment (what its manifest records)."""
    return {k: v for k, v in sorted(environ.items()) if k.startswith(FRAMEWORK_PREFIXES)}


FIELD_TYPES = {
    "name": (str,), "key": (str,), "inputs": (dict,), "status": (str,), "reason": (str,), "started": (int, float),
    "finished": (int, float), "returncode": (int,), "files": (dict,), "packages": (list,), "device": (dict,),
    "reproduce": (str,), "runner": (dict,), "variables": (dict,), "phases": (dict,),
}
OPTIONAL_FIELDS = {"runner", "variables", "phases"}


class Store:
    """Artifact folders under one root; entries are only ever created by rename, so a reader sees all or nothing."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, name: str, key: str) -> Path:
        return self.root / name / key

    def lookup(self, name: str, key: str, verify: bool = True) -> Manifest | None:
        """The committed manifest for (name, key), or None when absent, unreadable or not matching its files."""
        manifest, problem = self.inspect(name, key, verify)
        return None if problem else manifest

    def inspect(self, name: str, key: str, verify: bool = True) -> tuple[Manifest | None, str | None]:
        """(manifest, None) for a sound entry, else (manifest or None, what is wrong with it)."""
        _, manifest, problem = self.inspect_bytes(name, key, verify)
        return manifest, problem

    def inspect_bytes(self, name: str, key: str, verify: bool = True) -> tuple[bytes | None, Manifest | None, str | None]:
        """`inspect`, with the manifest's bytes the verdict is about (a digest of them vouches for exactly what was
        checked: run/references.py hands one to jobs)."""
        folder = self.entry(name, key)
        raw = None
        try:
            raw = (folder / MANIFEST).read_bytes()
            manifest = Manifest.from_json(json.loads(raw))
        except (OSError, ValueError, TypeError) as exc:
            return raw, None, f"manifest unreadable: {exc}"
        if manifest.key != key or manifest.name != name:
            return raw, manifest, "manifest names another job or key"
        if not verify:
            return raw, manifest, None
        bad = self.damaged_files(folder, manifest)
        if bad:
            return raw, manifest, f"files differ from their manifest sha256: {', '.join(bad)}"
        extra = self.unlisted_files(folder, manifest)
        if extra:  # planted by another job (through ORCH_ARTIFACTS_<NAME> or a relative path) or by hand
            more = f" (+{len(extra) - 3} more)" if len(extra) > 3 else ""
            return raw, manifest, f"unlisted file {', '.join(extra[:3])}" + more
        return raw, manifest, None

    @staticmethod
    def unlisted_files(folder: Path, manifest: Manifest) -> list[str]:
        """What the entry holds beyond its manifest's files: an entry holds exactly what was committed.

        Everything but a real folder counts (files, links of any kind, fifos); folders are walked, links to folders
        are not (os.walk's view, with one os.scandir per folder and relative paths built as it goes).
        """
        extra = []
        todo = [""]
        while todo:
            rel_dir = todo.pop()
            try:
                with os.scandir(os.path.join(folder, rel_dir)) as it:
                    found = list(it)
            except OSError:
                continue
            for e in found:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                try:
                    is_dir = e.is_dir() and not e.is_symlink()
                except OSError:
                    is_dir = False
                if is_dir:
                    todo.append(rel)
                elif rel != MANIFEST and rel not in manifest.files:
                    extra.append(rel)
        return sorted(extra)

    @staticmethod
    def damaged_files(folder: Path, manifest: Manifest) -> list[str]:
        """Files whose bytes no longer match the manifest (edited, truncated or missing)."""
        bad = []
        for rel, digest in manifest.files.items():
            path = folder / rel
            try:
                if path.is_symlink() or sha256_file(path) != digest:
                    bad.append(rel)
            except OSError:
                bad.append(rel)
        return bad

    def damaged_upstreams(self, entries: dict[str, Path]) -> str | None:
        """Re-inspect the upstream entries a job was given, after it ran: one it changed fails the job, naming it."""
        for name, folder in sorted(entries.items()):
            _, problem = self.inspect(name, folder.name)
            if problem and folder.parent == self.root / name:
                return f"upstream {name}'s entry {folder} was changed while this job ran ({problem}); it will rerun"
        return None

    def verify_all(self) -> tuple[int, list[tuple[Path, str]]]:
        """Check every committed entry against its manifest: (entries checked, [(folder, problem)])."""
        checked, problems = 0, []
        for job_dir in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if job_dir.name.startswith(".") or job_dir.is_symlink() or not job_dir.is_dir():
                continue
            for folder in self.entries(job_dir.name):
                checked += 1
                _, problem = self.inspect(job_dir.name, folder.name)
                if problem:
                    problems.append((folder, problem))
        return checked, problems

    def entries(self, name: str) -> list[Path]:
        folder = self.root / name
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def check_writable(self) -> None:
        """Before anything runs: a read-only (or otherwise unwritable) artifacts folder is one line, exit 2."""
        staging = self.root / STAGING
        probe = staging / f".probe-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            probe.mkdir()
            probe.rmdir()
        except OSError as exc:
            raise UserError(f"artifacts folder {self.root} is not writable: {_why(exc)}") from None

    def new_staging(self, name: str, key: str) -> Path:
        """A fresh folder on the same filesystem as the cache, so commit is one rename."""
        path = self.root / STAGING / f"{name}-{key[:12]}-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            (path / "out").mkdir(parents=True)
            (path / "logs").mkdir()
        except OSError as exc:
            remove_tree(path)
            raise _store_error(exc, path) from None
        return path

    def lock_path(self, name: str, key: str) -> Path:
        d = self.root / LOCKS
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _store_error(exc, d) from None
        return d / f"{name}-{key[:32]}.lock"

    @contextlib.contextmanager
    def reading(self, entries: list[tuple[str, str]]):
        """Hold shared locks on entries a running job reads, so `clean` (exclusive, non-blocking) leaves them be."""
        fds = []
        try:
            for name, key in entries:
                fd = os.open(self.lock_path(name, key), os.O_RDWR | os.O_CREAT, 0o644)
                fds.append(fd)
                fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            for fd in fds:
                os.close(fd)

    def commit(self, staging: Path, manifest: Manifest, replace: bool = False) -> Path:
        """Move staging/out (plus logs and manifest) to its entry; an existing valid entry wins unless replace.

        Disk trouble (read-only, full) is a StoreError naming the path; the staging folder is removed and an entry
        moved aside is put back, so nothing partial is left anywhere.
        """
        out = staging / "out"
        final = self.entry(manifest.name, manifest.key)
        aside = staging / "replaced"
        step = out / LOGS  # what is being written, for the message
        try:
            os.rename(staging / "logs", step)
            tmp = step = out / (MANIFEST + ".tmp")
            with open(tmp, "w") as f:
                f.write(json.dumps(manifest.to_json(), indent=1, sort_keys=True))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out / MANIFEST)
            step = final
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                if not replace and self.lookup(manifest.name, manifest.key):
                    remove_tree(staging)
                    return final
                # A forced rerun or a damaged entry: move the old one aside first, so readers see old, none or new.
                os.rename(final, aside)
            os.rename(out, final)
        except OSError as exc:
            if aside.is_dir() and not final.exists():
                with contextlib.suppress(OSError):
                    os.rename(aside, final)
            remove_tree(staging)
            raise _store_error(exc, step) from None
        remove_tree(staging)
        return final

    def keep_failure(self, staging: Path, name: str) -> Path | None:
        """Failed runs are never cached; their logs are kept, outside any entry, for reading (None if they cannot be)."""
        dest = self.root / FAILED / name
        try:
            remove_tree(dest, ignore_errors=False)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, dest)
        except OSError:
            remove_tree(staging)
            return None
        return dest

    def point_latest(self, target: Path) -> Path:
        """Make `<root>/latest` a symlink to target (atomically replaced)."""
        link = self.root / LATEST
        tmp = self.root / f".latest-{os.urandom(4).hex()}"
        try:
            os.symlink(os.path.relpath(target, self.root), tmp)
            os.replace(tmp, link)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _store_error(exc, link) from None
        return link


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _store_error(exc: OSError, path: Path) -> StoreError:
    """One line naming the path that could not be written and why."""
    return StoreError(f"cannot write {path if exc.filename is None else exc.filename}: {_why(exc)}")


def remove_tree(path: Path, ignore_errors: bool = True) -> None:
    """Delete a folder of any depth: no recursion, no long paths, a bounded number of open folders.

    shutil.rmtree recurses (a job can leave 5000 nested folders: RecursionError); here every subfolder is first
    moved up to be a direct child of path, then emptied.
    """
    try:
        try:
            top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            os.unlink(path)
            return
        tag, n, todo = os.urandom(4).hex(), 0, []
        try:
            def empty(fd: int) -> None:
                nonlocal n
                with os.scandir(fd) as it:
                    entries = list(it)
                for e in entries:
                    if not e.is_dir(follow_symlinks=False):
                        os.unlink(e.name, dir_fd=fd)
                    elif fd == top:
                        todo.append(e.name)
                    else:
                        n += 1
                        os.rename(e.name, f".rm-{tag}-{n}", src_dir_fd=fd, dst_dir_fd=top)
                        todo.append(f".rm-{tag}-{n}")

            empty(top)
            while todo:
                name = todo.pop()
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
                try:
                    empty(fd)
                finally:
                    os.close(fd)
                os.rmdir(name, dir_fd=top)
        finally:
            os.close(top)
        os.rmdir(path)
    except OSError:
        if not ignore_errors:
            raise
