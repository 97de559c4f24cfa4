"""Host mode: every env is a thin layer over a base interpreter's packages, adding only what the base lacks.

Used on GPU images and offline clusters whose Python already holds a vendor torch. The layer is a venv whose
site-packages has a .pth that runs `site.addsitedir` on each of the base's site folders (so the base's own
.pth files work too). uv's resolver decides what the base lacks (the whole closure, extras followed) in the phase
before planning (`prepare`, beside the locks), and its outcome is recorded: planning reads it and runs no uv. The
layer is that closure, installed without dependencies, and its env id is that closure.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from orchestrator.cache.hashing import sha256_json
from orchestrator.env.isolated import Env, Interpreter, build_once, create_venv, env_id, freeze
from orchestrator.errors import BuildError, UserError
from orchestrator.model.job import Job, canonical_name
from orchestrator.run.proc import run_tool

LAYER_FORMAT = 2
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)
PTH = "_orchestrator_base.pth"


def lock_pins(lock_text: str | None) -> dict[str, str]:
    return {canonical_name(n): v for n, v in PIN.findall(lock_text or "")}


def wheel_index(wheelhouses) -> dict[str, list[tuple[str, Path]]]:
    """name -> [(version, wheel file)] for every wheel in the wheelhouses."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    index: dict[str, list[tuple[str, Path]]] = {}
    for wh in wheelhouses:
        for whl in sorted(Path(wh).glob("*.whl")):
            try:
                name, version, _, _ = parse_wheel_filename(whl.name)
            except InvalidWheelFilename:
                continue
            index.setdefault(canonical_name(name), []).append((str(version), whl))
    return index


@dataclass(frozen=True)
class Base:
    """What the base interpreter holds; `key_input` is what enters every cache key in host mode."""

    python: str
    version: str
    site_dirs: tuple[str, ...]
    packages: dict = field(compare=False)  # canonical name -> version
    markers: dict = field(compare=False)
    _layers: dict = field(default_factory=dict, compare=False, repr=False)  # layer plans made, one per job

    uses_locks = False  # the layer is resolved over the base: a lock is read if present, never required

    @classmethod
    def probe(cls, python: str, ctx) -> Base:
        """Ask the interpreter itself (cached by the modification times of its site folders)."""
        path = os.path.abspath(python)  # not realpath: a venv's python must stay that venv's
        if not os.access(path, os.X_OK):
            raise UserError(f"--python {python}: not an executable interpreter")
        cache = ctx.envs_dir / ".probes" / f"{sha256_json(path)[:24]}.json"
        try:
            saved = json.loads(cache.read_text())
            if all(_mtime(d) == m for d, m in saved["mtimes"].items()) and saved["mtimes"]:
                return cls._from_probe(path, saved["probe"])
        except (OSError, ValueError, KeyError):
            pass
        probe_script = Path(__file__).with_name("host_probe.py")
        try:
            data = json.loads(run_tool([path, "-I", str(probe_script)], timeout=120, what=f"probing {path}"))
        except (BuildError, ValueError) as exc:
            raise UserError(f"--python {python}: could not inspect it: {exc}") from None
        cache.parent.mkdir(parents=True, exist_ok=True)
        mtimes = {d: _mtime(d) for d in [*data["site_dirs"], path]}
        cache.write_text(json.dumps({"mtimes": mtimes, "probe": data}))
        return cls._from_probe(path, data)

    @classmethod
    def _from_probe(cls, path: str, data: dict) -> Base:
        pkgs = {canonical_name(n): v for n, v in data["packages"].items()}
        return cls(python=path, version=data["version"], site_dirs=tuple(data["site_dirs"]), packages=pkgs,
                   markers=data["markers"])

    @property
    def base_python(self) -> str:
        return self.python

    def interpreter(self, ctx) -> dict:
        return {"version": self.version, "implementation": self.markers.get("implementation_name")}

    def key_input(self, ctx) -> dict:
        """The base's packages, plus the wheel files a layer may draw on (they decide its contents)."""
        wheels = sorted(p.name for wh in ctx.wheelhouses for p in Path(wh).glob("*.whl"))
        return {**self._base_key(), "wheelhouse": wheels}

    def _base_key(self) -> dict:
        frozen = sorted(f"{n}=={v}" for n, v in self.packages.items())
        return {"python": self.version, "implementation": self.markers.get("implementation_name"),
                "packages_sha256": sha256_json(frozen)}

    # -- what a job needs from the layer -----------------------------------------------------------
    def layer_plan(self, job: Job, lock_text: str | None, ctx, resolve: bool = True) -> Layer | None:
        """The job's layer, worked out once per job and run (the lock phase, planning, locating and building all ask).

        resolve=False only reads (planning): the direct checks, then the resolution recorded by the phase before
        planning; None when none is recorded yet. A conflict or gap raises BuildError either way.
        """
        memo = (job.name, str(job.script), lock_text)
        found = self._layers.get(memo)
        if found is None:
            try:
                found = self._needs(job, lock_text, ctx)
            except BuildError as exc:
                found = exc
        if isinstance(found, Needs):
            try:
                found = self._resolved(job, found, ctx, run_uv=resolve) or found
            except BuildError as exc:
                found = exc
        self._layers[memo] = found
        if isinstance(found, BuildError):
            raise BuildError(str(found))
        return found if isinstance(found, Layer) else None

    def _needs(self, job: Job, lock_text: str | None, ctx) -> Layer | Needs:
        """The direct requirements checked against the base and the wheelhouse (short messages, no uv): the layer
        itself when the base provides them all, else what uv must resolve. A conflict or gap raises BuildError."""
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.specifiers import SpecifierSet

        if job.requires_python and not SpecifierSet(job.requires_python).contains(self.version, prereleases=True):
            raise BuildError(f"requires-python {job.requires_python}: base has Python {self.version}")
        pins = lock_pins(lock_text)
        wheels = wheel_index(ctx.wheelhouses)
        wanted, provided, constraints = [], [], []
        for text in job.lock_requirements:
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                raise BuildError(f"requirement {text!r}: {exc}") from None
            if req.marker is not None and not req.marker.evaluate(self.markers):
                continue
            name = canonical_name(req.name)
            have = self.packages.get(name)
            if have is not None:
                if not req.specifier.contains(have, prereleases=True):
                    raise BuildError(f"requirement {text}: base has {req.name} {have}")
                provided.append(f"{name}=={have}")
                continue
            pin = pins.get(name)
            pinned = bool(pin and req.specifier.contains(pin, prereleases=True))
            if pinned:
                constraints.append(f"{name}=={pin}")
            if ctx.offline:
                spec = SpecifierSet(f"=={pin}") if pinned else req.specifier
                found = [v for v, _ in wheels.get(name, []) if spec.contains(v, prereleases=True)]
                if not found:
                    seen = ", ".join(v for v, _ in wheels.get(name, [])) or "none"
                    raise BuildError(f"requirement {text}: not in the base, and no matching wheel in the wheelhouse "
                                     f"(found: {seen})")
            wanted.append(text)
        if not wanted:
            return Layer(install=(), provided=tuple(provided), left_out=job.optional)
        return Needs(wanted=tuple(wanted), constraints=tuple(constraints), provided=tuple(provided))

    def _resolved(self, job: Job, needs: Needs, ctx, run_uv: bool) -> Layer | None:
        """The whole closure over the base, as uv's resolver finds it: the base's packages fixed (constraints, seen
        installed), the wheelhouses as find-links, no index offline, the job's `optional` packages removed (an
        override with a marker that is never true). Recorded under the envs folder by every input of the
        resolution (the wheel files included), so that planning and a warm run read it and call no uv; with
        run_uv=False a missing record gives None."""
        files = sorted((str(w), w.stat().st_size, w.stat().st_mtime_ns) for wh in ctx.wheelhouses for w in Path(wh).glob("*"))
        base = sorted(f"{n}=={v}" for n, v in self.packages.items())
        wanted, constraints = list(needs.wanted), list(needs.constraints)
        inputs = {"format": LAYER_FORMAT, "python": self.python, "base": base, "wanted": wanted, "constraints": constraints,
                  "optional": job.optional, "files": files, "offline": ctx.offline}
        cache = ctx.envs_dir / ".resolved" / f"{sha256_json(inputs)[:24]}.json"
        layer = partial(Layer, provided=needs.provided, left_out=job.optional)
        try:
            saved = json.loads(cache.read_text())
            if "error" in saved:
                raise BuildError(saved["error"])
            return layer(install=tuple(saved["install"]))
        except (OSError, ValueError, KeyError):
            pass
        if not run_uv:
            return None
        uv = ctx.uv()
        with tempfile.TemporaryDirectory(prefix="orch-resolve-") as tmp:
            folder = Path(tmp)
            (folder / "requirements.in").write_text("\n".join(wanted) + "\n")
            (folder / "constraints.txt").write_text("\n".join([*base, *constraints]) + "\n")
            (folder / "overrides.txt").write_text("".join(f'{o} ; sys_platform == "never"\n' for o in job.optional))
            cmd = [uv.exe, "pip", "install", "--dry-run", "--python", self.python, "--break-system-packages",
                   "-r", "requirements.in", "-c", "constraints.txt", "--overrides", "overrides.txt", *uv.source_args()]
            try:
                out = run_tool(cmd, cwd=folder, env=uv.env(), timeout=300, what=f"resolving {job.name} over the base",
                               both=True, tail=200)
            except BuildError as exc:
                reason = unresolvable(str(exc), ctx.offline)
                if ctx.offline:  # online, a failure may be the network's: try again next time
                    _save(cache, {"error": reason})
                raise BuildError(reason) from None
        install = tuple(sorted(f"{canonical_name(n)}=={v}" for n, v in WOULD_INSTALL.findall(out)))
        _save(cache, {"install": list(install)})
        return layer(install=install)

    def prepare(self, job: Job, lock_text: str | None, ctx) -> None:
        """The phase before planning: uv resolves the layer and the outcome is recorded (a conflict too, which
        `conflict` then reports), so that planning only reads."""
        try:
            self.layer_plan(job, lock_text, ctx)
        except BuildError:
            pass

    def conflict(self, job: Job, lock_text: str | None, ctx) -> str | None:
        """Why the job cannot run over this base (reported before anything runs), or None. Reads only: a closure
        not resolved yet (no `prepare`) is checked by its direct requirements alone."""
        try:
            self.layer_plan(job, lock_text, ctx, resolve=False)
        except BuildError as exc:
            return str(exc)
        return None

    # -- the layer environment ---------------------------------------------------------------------
    def _interp(self) -> Interpreter:
        return Interpreter(path=self.python, version=self.version)

    def _layer_key(self) -> dict:
        return {"format": LAYER_FORMAT, "base": self._base_key(), "site_dirs": list(self.site_dirs)}

    def env_for(self, job: Job, lock_text: str | None, ctx) -> Env:
        """Content-addressed by the resolved closure: what gets installed, not what was asked for."""
        layer = self.layer_plan(job, lock_text, ctx)
        assert layer is not None  # resolve=True gives a layer or raises
        eid = env_id("\n".join(layer.install), self._interp(), self._layer_key())
        return Env(root=ctx.envs_dir / eid, env_id=eid)

    def ensure_env(self, job: Job, lock_text: str | None, ctx) -> Env:
        layer = self.layer_plan(job, lock_text, ctx)
        assert layer is not None  # resolve=True gives a layer or raises
        return build_once(self.env_for(job, lock_text, ctx), lambda tmp: self._fill(tmp, layer, ctx))

    def _fill(self, tmp: Path, layer: Layer, ctx) -> list[str]:
        """A venv that sees the base's site folders, with exactly the resolved closure installed (no resolving)."""
        uv = ctx.uv()
        py = create_venv(tmp, self.python, uv)
        site = next(tmp.glob("lib/python*/site-packages"))
        lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in self.site_dirs)
        (site / PTH).write_text(lines)
        if layer.install:
            run_tool([uv.exe, "pip", "install", "--quiet", "--no-deps", "--python", str(py), *uv.install_args(),
                      *uv.source_args(), *layer.install], cwd=tmp, env=uv.env(), what="installing into the layer")
        wheels = wheel_index(ctx.wheelhouses)
        installed = [f"{line} (wheelhouse)" if _in_wheelhouse(line, wheels) else f"{line} (index)" for line in freeze(py, uv)]
        return installed + [f"{p} (base)" for p in layer.provided] + [f"{o} (optional, left out)" for o in layer.left_out]


@dataclass(frozen=True)
class Needs:
    """What the direct checks leave to uv's resolver: requirements the base lacks, the lock's pins among them."""

    wanted: tuple[str, ...]
    constraints: tuple[str, ...]
    provided: tuple[str, ...]


@dataclass(frozen=True)
class Layer:
    """A host-mode layer: the closure to install, the direct requirements the base provides, what may be left out."""

    install: tuple[str, ...]
    provided: tuple[str, ...]
    left_out: tuple[str, ...]


WOULD_INSTALL = re.compile(r"^ \+ ([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.M)
NOT_FOUND = re.compile(r"Because ([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])? was not found")
DEPENDS = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)(?:[<>=!~]=?[^\s,]*)? depends? on "
                     r"([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)")


def unresolvable(message: str, offline: bool) -> str:
    """One line from uv's explanation: the package that cannot be had and the chain of requirements that needs it."""
    lines = [line.strip() for line in message.splitlines()[1:] if line.strip() and not line.startswith("Using Python")]
    text = re.sub(r"(error: )?No solution found when resolving dependencies:?\s*|cause: |  × |╰─▶ ", "", " ".join(lines))
    missing = NOT_FOUND.search(text)
    if missing is None:
        return f"its requirements cannot be met over the base: {text}"
    needed_by: dict[str, str] = {}
    for owner, dep in DEPENDS.findall(text):
        needed_by.setdefault(canonical_name(dep.split("[")[0]), owner)
    chain, name = [missing.group(1)], canonical_name(missing.group(1))
    while name in needed_by and len(chain) < 50:
        owner = needed_by[name]
        chain.append(owner)
        name = canonical_name(owner.split("[")[0])
    where = "no wheel in the wheelhouse (offline)" if offline else "not found"
    return (f"{missing.group(1)} (needed by {' -> '.join(reversed(chain))}): not in the base and {where}; "
            "add its wheel, or list it in [tool.orchestrator] optional if the impl runs without it")


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(data))
    os.replace(part, path)


def _in_wheelhouse(line: str, wheels) -> bool:
    name, _, version = line.partition("==")
    return any(v == version for v, _ in wheels.get(canonical_name(name), []))


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None
