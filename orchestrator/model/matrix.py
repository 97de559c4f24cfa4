"""Version matrices: one impl run against several versions of one package, each version a job of its own.

A variant is an ordinary Job (its own lock, env, key and artifacts folder) named `<impl>@<package>=<version>`,
whose requirements pin the package to that version (the rest is resolved around it). It runs with the impl's own
`ORCH_IMPL`, and the report shows it as `<impl> @ <package> <version>` (`Job.label`). packaging is imported only
where a matrix exists, so impls without one cost nothing.
"""

from __future__ import annotations

from orchestrator.errors import UserError
from orchestrator.frozen import replace
from orchestrator.model.job import REQ_NAME, Job, canonical_name, requirement_name

SEP = "@"  # impl@package=version: no impl name holds it ([a-z0-9_]+), so a variant's name never shadows an impl's


def versions_of(values, where: str) -> tuple[str, ...]:
    """Normalised, distinct version strings in the order given; anything else is a user error naming `where`."""
    from packaging.version import InvalidVersion, Version

    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise UserError(f"{where}: must be a non-empty list of version strings such as [\"1.0\", \"1.1\"]")
    out: dict = {}
    for v in values:
        try:
            version = Version(v)
        except InvalidVersion:
            raise UserError(f"{where}: {v!r} is not a version (PEP 440)") from None
        if version in out:
            raise UserError(f"{where}: version {v} is listed twice (as {out[version]})")
        out[version] = str(version)
    return tuple(out.values())


def from_settings(value, where: str) -> tuple[str, tuple[str, ...]]:
    """`[tool.orchestrator] matrix = { "package" = ["1.0", "1.1"] }`: (canonical package, versions)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise UserError(f"{where}: must be a table of one package and its versions, "
                        "such as { \"liger-kernel\" = [\"0.5.10\", \"0.6.5\"] }")
    (package, versions), = value.items()
    if not REQ_NAME.fullmatch(package):
        raise UserError(f"{where}: {package!r} is not a package name")
    return canonical_name(package), versions_of(versions, f"{where}: {package}")


def from_flag(spec: str) -> tuple[str, tuple[str, ...]]:
    """`--matrix PACKAGE=V1,V2`."""
    package, eq, versions = spec.partition("=")
    if not eq or not REQ_NAME.fullmatch(package.strip()):
        raise UserError(f"--matrix {spec}: expected PACKAGE=V1,V2 (e.g. liger-kernel=0.5.10,0.6.5)")
    return canonical_name(package.strip()), versions_of([v.strip() for v in versions.split(",")], f"--matrix {spec}")


def variant_name(impl: str, package: str, version: str) -> str:
    return f"{impl}{SEP}{package}={version}"


def pinned(requirements: tuple[str, ...], package: str, version: str) -> tuple[str, ...]:
    """The requirements with every one naming `package` pinned to `version` (extras and markers kept); the pin is
    added when none names it (a transitive package, such as triton under torch)."""
    from packaging.requirements import Requirement

    out, found = [], False
    for line in requirements:
        if requirement_name(line) != package:
            out.append(line)
            continue
        req = Requirement(line)
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        out.append(f"{package}{extras}=={version}" + (f" ; {req.marker}" if req.marker else ""))
        found = True
    return tuple(out) if found else (*out, f"{package}=={version}")


def make_variant(job: Job, package: str, version: str) -> Job:
    """The variant of `job` that pins `package` to `version`."""
    return replace(job, name=variant_name(job.name, package, version), declared=pinned(job.declared, package, version),
                   matrix=None, variant=(package, version), impl=job.name)


def expand(jobs: dict[str, Job], override: tuple[str, tuple[str, ...], set[str]] | None = None) -> dict[str, Job]:
    """Every matrixed impl replaced by its variants, and every `needs` naming it by all of them.

    override: (package, versions, impl names) from `--matrix`, in place of those impls' own matrix."""
    matrices = {n: j.matrix for n, j in jobs.items() if j.matrix is not None}
    if override is not None:
        package, versions, targets = override
        matrices.update({n: (package, versions) for n in targets})
    if not matrices:
        return jobs
    variants = {n: [make_variant(jobs[n], pkg, v) for v in versions] for n, (pkg, versions) in matrices.items()}
    out: dict[str, Job] = {}
    for name, job in jobs.items():
        if job.needs and any(up in variants for up in job.needs):
            job = replace(job, needs=tuple(v.name if up in variants else up
                                           for up in job.needs for v in variants.get(up, [job])))
        for v in variants.get(name, [job]):
            out[v.name] = replace(v, needs=job.needs) if v is not job else job
    return out


def targets(jobs: dict[str, Job], package: str, names: list[str]) -> set[str]:
    """The impls `--matrix PACKAGE=...` applies to: those named (a package they do not require is added), else
    every impl whose own requirements name the package."""
    named = [n for n in names if n != "all"]
    for n in named:
        if n not in jobs:
            from orchestrator.model.job import unknown_impl

            raise unknown_impl(n, jobs)
    chosen = set(named) or {n for n, j in jobs.items() if any(requirement_name(r) == package for r in j.declared)}
    if not chosen:
        raise UserError(f"--matrix {package}: no impl requires {package}; name the impls to run against it")
    return chosen
