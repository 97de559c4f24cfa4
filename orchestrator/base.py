"""Host mode: every env is a thin layer over a base interpreter's packages, adding only what the base lacks.

Used on GPU images and offline clusters whose Python already holds a vendor torch. The layer is a venv whose
site-packages has a .pth that runs `site.addsitedir` on each of the base's site folders (so the base's own
.pth files work too); uv installs into it, without dependencies, exactly the packages the base lacks.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.discover import Job, canonical_name
from orchestrator.envs import Env, Interpreter, build_once, create_venv, env_id, freeze
from orchestrator.errors import BuildError, UserError
from orchestrator.hashing import sha256_json
from orchestrator.proc import run_tool

LAYER_FORMAT = 1
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

    @classmethod
    def probe(cls, python: str, ctx) -> "Base":
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
        probe_script = Path(__file__).with_name("base_probe.py")
        try:
            data = json.loads(run_tool([path, "-I", str(probe_script)], timeout=120, what=f"probing {path}"))
        except (BuildError, ValueError) as exc:
            raise UserError(f"--python {python}: could not inspect it: {exc}") from None
        cache.parent.mkdir(parents=True, exist_ok=True)
        mtimes = {d: _mtime(d) for d in [*data["site_dirs"], path]}
        cache.write_text(json.dumps({"mtimes": mtimes, "probe": data}))
        return cls._from_probe(path, data)

    @classmethod
    def _from_probe(cls, path: str, data: dict) -> "Base":
        pkgs = {canonical_name(n): v for n, v in data["packages"].items()}
        return cls(python=path, version=data["version"], site_dirs=tuple(data["site_dirs"]), packages=pkgs, markers=data["markers"])

    def key_input(self) -> dict:
        frozen = sorted(f"{n}=={v}" for n, v in self.packages.items())
        return {"python": self.version, "implementation": self.markers.get("implementation_name"), "packages_sha256": sha256_json(frozen)}

    # -- what a job needs from the layer -----------------------------------------------------------
    def layer_plan(self, job: Job, lock_text: str | None, ctx) -> tuple[list[str], list[str]]:
        """(what to install into the layer, what the base provides); a conflict or gap raises UserError-free BuildError."""
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.specifiers import SpecifierSet

        if job.requires_python and not SpecifierSet(job.requires_python).contains(self.version, prereleases=True):
            raise BuildError(f"requires-python {job.requires_python}: base has Python {self.version}")
        pins = lock_pins(lock_text)
        wheels = wheel_index(ctx.wheelhouses)
        install, provided = [], []
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
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""  # followed by the layer's closure
            pinned = bool(pin and req.specifier.contains(pin, prereleases=True))
            want = f"{name}{extras}=={pin}" if pinned else f"{name}{extras}{req.specifier}"
            if ctx.offline:
                spec = SpecifierSet(f"=={pin}") if pinned else req.specifier
                found = [v for v, _ in wheels.get(name, []) if spec.contains(v, prereleases=True)]
                if not found:
                    seen = ", ".join(v for v, _ in wheels.get(name, [])) or "none"
                    raise BuildError(f"requirement {text}: not in the base, and no matching wheel in the wheelhouse (found: {seen})")
            install.append(want)
        return install, provided

    def conflict(self, job: Job, lock_text: str | None, ctx) -> str | None:
        """Why the job cannot run over this base (reported before anything runs), or None."""
        try:
            self.layer_plan(job, lock_text, ctx)
        except BuildError as exc:
            return str(exc)
        return None

    # -- the layer environment ---------------------------------------------------------------------
    def _interp(self) -> Interpreter:
        return Interpreter(path=self.python, version=self.version)

    def _layer_key(self) -> dict:
        return {"format": LAYER_FORMAT, "base": self.key_input(), "site_dirs": list(self.site_dirs)}

    def env_for(self, job: Job, lock_text: str | None, ctx) -> Env:
        install, _ = self.layer_plan(job, lock_text, ctx)
        eid = env_id("\n".join(install), self._interp(), self._layer_key())
        return Env(root=ctx.envs_dir / eid, env_id=eid)

    def ensure_env(self, job: Job, lock_text: str | None, ctx) -> Env:
        install, provided = self.layer_plan(job, lock_text, ctx)
        env = self.env_for(job, lock_text, ctx)
        return build_once(env, lambda tmp: self._fill(tmp, install, provided, ctx))

    def _fill(self, tmp: Path, install: list[str], provided: list[str], ctx) -> list[str]:
        """Install what the base lacks, then the missing dependencies of that, until nothing more can be added.

        Declared requirements were checked strictly before anything ran. A transitive requirement that cannot be
        met (no wheel offline, or another version in the base) is recorded as a warning in the package list:
        vendor wheels often over-declare (nvidia-cutlass-dsl wants its cu12 libraries even on CUDA 13).
        """
        from packaging.requirements import Requirement

        uv = ctx.uv()
        py = create_venv(tmp, self.python, uv)
        site = next(tmp.glob("lib/python*/site-packages"))
        lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in self.site_dirs)
        (site / PTH).write_text(lines)
        wheels = wheel_index(ctx.wheelhouses)
        extras: dict[str, set[str]] = {}
        for text in install:
            req = Requirement(text)
            extras.setdefault(canonical_name(req.name), set()).update(req.extras)
        todo, warnings, tried = list(install), set(), set()
        while todo:
            tried.update(canonical_name(Requirement(t).name) for t in todo)
            run_tool([uv.exe, "pip", "install", "--quiet", "--no-deps", "--python", str(py), *uv.source_args(), *todo],
                     cwd=tmp, env=uv.env(), what="installing into the layer")
            todo = []
            for req, problem in self._unmet(site, extras):
                name = canonical_name(req.name)
                if problem or name in tried or (ctx.offline and not _available(req, wheels)):
                    warnings.add(f"unmet: {problem or f'{req} (no wheel available)'}")
                else:
                    todo.append(f"{name}{req.specifier}")
        layer = [f"{line} (wheelhouse)" if _in_wheelhouse(line, wheels) else f"{line} (index)" for line in freeze(py, uv)]
        return layer + [f"{p} (base)" for p in provided] + sorted(warnings)

    def _unmet(self, site: Path, extras: dict[str, set[str]]):
        """(requirement, conflict text or "") for each requirement of a layer package that nothing satisfies.

        Extras requested anywhere (flash-attn-4[cu13] -> nvidia-cutlass-dsl[cu13]) are followed; `extras` grows.
        """
        from packaging.requirements import Requirement

        layer, requires = {}, []
        for info in site.glob("*.dist-info"):
            meta = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
            name = canonical_name(re.search(r"^Name: (.+)$", meta, re.M).group(1).strip())
            layer[name] = re.search(r"^Version: (.+)$", meta, re.M).group(1).strip()
            requires += [(name, Requirement(r)) for r in re.findall(r"^Requires-Dist: (.+)$", meta, re.M)]
        while True:  # until the requested extras stop growing
            before = {k: set(v) for k, v in extras.items()}
            unmet = []
            for owner, req in requires:
                wanted = {""} | extras.get(owner, set())
                if req.marker is not None and not any(req.marker.evaluate({**self.markers, "extra": e}) for e in wanted):
                    continue
                name = canonical_name(req.name)
                extras.setdefault(name, set()).update(req.extras)
                have = layer.get(name) or self.packages.get(name)
                if have is None:
                    unmet.append((req, ""))
                elif not req.specifier.contains(have, prereleases=True):
                    unmet.append((req, f"{owner} requires {req}; found {req.name} {have}"))
            if extras == before:
                return unmet


def _available(req, wheels) -> bool:
    return any(req.specifier.contains(v, prereleases=True) for v, _ in wheels.get(canonical_name(req.name), []))


def _in_wheelhouse(line: str, wheels) -> bool:
    name, _, version = line.partition("==")
    return any(v == version for v, _ in wheels.get(canonical_name(name), []))


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None
