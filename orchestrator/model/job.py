"""Turn `impls/<name>/bench.py` folders into validated Job descriptions (no I/O beyond reading them)."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.cache.parsed import Parsed, loads_toml
from orchestrator.errors import UserError
from orchestrator.frozen import dataclass, field
from orchestrator.model.pep723 import read_script_metadata

NAME = re.compile(r"^[a-z0-9_]+$")
# PEP 508 distribution name at the start of a requirement string.
REQ_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
SCRIPT_FILE = "bench.py"
LOCK_SUFFIX = ".lock.txt"
KNOWN_KEYS = {"needs", "gpu", "requires", "timeout", "tags", "env", "optional", "op", "matrix"}
OP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_OP = "attention"  # an impl that names no op
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KNOWN_REQUIRES = {"cuda"}


def canonical_name(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str | None:
    m = REQ_NAME.match(req)
    return canonical_name(m.group(1)) if m else None


@dataclass(frozen=True)
class PathDep:
    """A dependency installed from a local folder ([tool.uv.sources] path entry): put on PYTHONPATH, hashed whole."""

    name: str
    root: Path
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    """One runnable unit: an implementation folder, or an orchestrator stage such as combine."""

    name: str
    script: Path
    requires_python: str | None
    declared: tuple[str, ...]  # the script's own requirements, path dependencies left out
    path_deps: tuple[PathDep, ...]
    needs: tuple[str, ...] = ()
    gpu: bool = True
    requires: tuple[str, ...] = ()
    timeout: float | None = None
    tags: dict = field(default_factory=dict, compare=False)
    stage: bool = False
    env: tuple[str, ...] = ()  # variables whose values change its results: they enter its key
    optional: tuple[str, ...] = ()  # host mode: transitive requirements that may be left out (canonical names)
    op: str = DEFAULT_OP  # the operation it implements (`[tool.orchestrator] op`); its suites are that op's
    matrix: tuple | None = field(default=None, compare=False)  # (package, versions): discovery makes its variants
    variant: tuple[str, str] | None = None  # (package, version) a variant pins (model/matrix.py); None: a plain impl
    impl: str = ""  # a variant's impl (its folder's name); "" for a plain impl

    @property
    def folder(self) -> Path:
        return self.script.parent

    @property
    def lock(self) -> Path:
        """`bench.lock.txt`; a variant's beside it, `bench.<package>-<version>.lock.txt`."""
        tail = f".{self.variant[0]}-{self.variant[1]}" if self.variant else ""
        return self.script.with_name(self.script.stem + tail + LOCK_SUFFIX)

    @property
    def impl_name(self) -> str:
        """The impl's own name (its ORCH_IMPL): a variant's impl, else the job's name."""
        return self.impl or self.name

    @property
    def label(self) -> str:
        """How reports name it: `impl @ package version` for a variant, else its name."""
        return f"{self.impl} @ {self.variant[0]} {self.variant[1]}" if self.variant else self.name

    @property
    def lock_requirements(self) -> tuple[str, ...]:
        """What the lock is compiled from: the script's requirements plus those of its path dependencies."""
        extra = [r for dep in self.path_deps for r in dep.requirements]
        return tuple(dict.fromkeys([*self.declared, *extra]))


def _fail(path: Path, fld: str, msg: str) -> UserError:
    return UserError(f"{path}: [tool.orchestrator] {fld}: {msg}")


def _settings(path: Path, meta: dict) -> dict:
    tool = meta.get("tool", {}).get("orchestrator", {})
    if not isinstance(tool, dict):
        raise UserError(f"{path}: [tool.orchestrator] must be a table")
    unknown = sorted(set(tool) - KNOWN_KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown key (known: {', '.join(sorted(KNOWN_KEYS))})")
    needs = tool.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) and NAME.match(n) for n in needs):
        raise _fail(path, "needs", "must be a list of impl names matching [a-z0-9_]+")
    gpu = tool.get("gpu", True)
    if not isinstance(gpu, bool):
        raise _fail(path, "gpu", "must be true or false")
    requires = tool.get("requires", [])
    if not isinstance(requires, list) or any(r not in KNOWN_REQUIRES for r in requires):
        raise _fail(path, "requires", f"must be a list drawn from {sorted(KNOWN_REQUIRES)}")
    timeout = tool.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise _fail(path, "timeout", "must be a positive number of seconds")
    tags = tool.get("tags", {})
    if not isinstance(tags, dict):
        raise _fail(path, "tags", "must be a table")
    env = tool.get("env", [])
    if not isinstance(env, list) or not all(isinstance(v, str) and VAR_NAME.match(v) for v in env):
        raise _fail(path, "env", "must be a list of environment variable names ([A-Za-z_][A-Za-z0-9_]*)")
    optional = tool.get("optional", [])
    if not isinstance(optional, list) or not all(isinstance(o, str) and REQ_NAME.fullmatch(o) for o in optional):
        raise _fail(path, "optional", "must be a list of package names")
    op = tool.get("op", DEFAULT_OP)
    if not isinstance(op, str) or not OP_NAME.match(op):
        raise _fail(path, "op", "must be an op name such as \"rms_norm\"")
    matrix = None
    if "matrix" in tool:
        from orchestrator.model.matrix import from_settings

        matrix = from_settings(tool["matrix"], f"{path}: [tool.orchestrator] matrix")
    return {"matrix": matrix,
            "op": op, "needs": tuple(needs), "gpu": gpu, "requires": tuple(requires), "timeout": timeout, "tags": tags,
            "env": tuple(sorted(set(env))), "optional": tuple(sorted({canonical_name(o) for o in optional}))}


def _path_dep(script: Path, name: str, spec: dict, parsed: Parsed | None = None) -> PathDep:
    root = (script.parent / spec["path"]).resolve()
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise UserError(f"{script}: [tool.uv.sources] {name}: path {spec['path']} has no pyproject.toml")
    text = pyproject.read_text(encoding="utf-8")
    try:
        project = (parsed.toml(text) if parsed is not None else loads_toml(text)).get("project", {})
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise UserError(f"{pyproject}: invalid TOML: {exc}") from None
    return PathDep(name=canonical_name(name), root=root, requirements=tuple(project.get("dependencies", [])))


def load_job(script: Path, name: str, stage: bool = False, parsed: Parsed | None = None) -> Job:
    """Parse and validate one script into a Job (`parsed` may know the TOML it reads)."""
    meta = read_script_metadata(script, parsed=parsed)
    deps = meta.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise UserError(f"{script}: dependencies must be a list of requirement strings")
    sources = meta.get("tool", {}).get("uv", {}).get("sources", {})
    path_deps = []
    for src_name, spec in sources.items():
        if isinstance(spec, dict) and "path" in spec:
            path_deps.append(_path_dep(script, src_name, spec, parsed))
    local = {d.name for d in path_deps}
    for dep in deps:
        if requirement_name(dep) is None:
            raise UserError(f"{script}: dependencies: {dep!r} is not a requirement")
    declared = tuple(d for d in deps if requirement_name(d) not in local)
    requires_python = meta.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        raise UserError(f"{script}: requires-python must be a version specifier string such as \">=3.10\"")
    settings = _settings(script, meta)
    return Job(
        name=name,
        script=script.resolve(),
        requires_python=requires_python,
        declared=declared,
        path_deps=tuple(path_deps),
        stage=stage,
        **settings,
    )


# Names the layout uses itself: `<artifacts>/latest` is the link to the newest merged results, `combine` the stage.
RESERVED_NAMES = {"latest": "the artifacts folder's link to the newest combined results",
                  "combine": "the combine stage"}
MAX_NEEDS_DEPTH = 100  # levels of `needs`; real DAGs have a handful, and deeper ones are almost surely generated


def discover(impls_dir: Path, warn=None, parsed: Parsed | None = None, matrix=None, expand: bool = True) -> dict[str, Job]:
    """Every impl folder holding a bench.py, by name, validated; needs checked for unknown names and cycles.

    `warn(text)` hears of folders that are not impls: no bench.py, or a name starting with '.' or '_'. A matrixed
    impl becomes its variants (model/matrix.py; `matrix`: `--matrix`'s (package, versions, impl names) in place of
    those impls' own), unless expand=False.
    """
    if not impls_dir.is_dir():
        raise UserError(f"{impls_dir}: impls folder not found (use --impls-dir)")
    jobs: dict[str, Job] = {}
    for folder in sorted(p for p in impls_dir.iterdir() if p.is_dir()):
        script = folder / SCRIPT_FILE
        if not script.is_file():
            if warn is not None and not folder.name.startswith((".", "_")):
                warn(f"{folder}: no {SCRIPT_FILE}; not an impl (ignored)")
            continue
        if folder.name.startswith((".", "_")):
            if warn is not None:
                warn(f"{folder}: skipped (folders starting with '.' or '_' are never impls)")
            continue
        if not NAME.match(folder.name):
            raise UserError(f"{folder}: impl folder name must match [a-z0-9_]+")
        if folder.name in RESERVED_NAMES:
            raise UserError(f"{folder}: the name {folder.name!r} is reserved for {RESERVED_NAMES[folder.name]}; "
                            "rename the folder")
        jobs[folder.name] = load_job(script, folder.name, parsed=parsed)
    check_needs(jobs)
    if expand and (matrix is not None or any(j.matrix is not None for j in jobs.values())):
        from orchestrator.model.matrix import expand as expand_matrix

        jobs = expand_matrix(jobs, matrix)
    return jobs


def check_needs(jobs: dict[str, Job]) -> None:
    """Unknown upstream names, cycles and over-deep chains are user errors naming the culprit."""
    for job in jobs.values():
        for up in job.needs:
            if up not in jobs:
                known = ", ".join(sorted(jobs))
                raise UserError(f"{job.script}: [tool.orchestrator] needs: unknown impl {up!r} (known: {known})")
    topo_order(jobs)


def _chain(names: list[str]) -> str:
    shown = names if len(names) <= 8 else [*names[:4], f"… {len(names) - 6} more …", *names[-2:]]
    return " -> ".join(shown)


def topo_order(jobs: dict[str, Job]) -> list[str]:
    """Names with every upstream before its dependents; a cycle or a chain over MAX_NEEDS_DEPTH is an error.

    Iterative (an explicit stack), so a chain of any length is an error message, never a RecursionError.
    """
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    depth: dict[str, int] = {}
    deepest: dict[str, str | None] = {}  # the upstream on the longest chain below each name
    for root in sorted(jobs):
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(jobs[root].needs))]
        while stack:
            name, ups = stack[-1]
            for up in ups:
                if state.get(up) == 1:
                    names = [n for n, _ in stack]
                    cycle = names[names.index(up):] + [up]
                    raise UserError(f"{jobs[up].script}: [tool.orchestrator] needs: cycle {_chain(cycle)}")
                if up not in state:
                    state[up] = 1
                    stack.append((up, iter(jobs[up].needs)))
                    break
            else:
                stack.pop()
                below = max(jobs[name].needs, key=lambda u: depth[u], default=None)
                depth[name] = 1 + (depth[below] if below else 0)
                deepest[name] = below
                if depth[name] > MAX_NEEDS_DEPTH:
                    chain: list[str] = []
                    n: str | None = name
                    while n is not None:
                        chain.append(n)
                        n = deepest[n]
                    raise UserError(f"{jobs[name].script}: [tool.orchestrator] needs: a chain of {depth[name]} levels "
                                    f"({_chain(chain)}); at most {MAX_NEEDS_DEPTH} are allowed")
                state[name] = 2
                order.append(name)
    return order


def variants_of(name: str, jobs: dict[str, Job]) -> list[str]:
    """The variants a matrixed impl became (model/matrix.py), in version order as listed; [] for any other name."""
    return [n for n, j in jobs.items() if j.impl == name]


def unknown_impl(name: str, jobs: dict[str, Job]) -> UserError:
    """'unknown impl' with the nearest names, so a typo says what was meant."""
    import difflib

    if variants_of(name, jobs):
        return UserError(f"{name!r} is a version matrix; name one of its variants: {', '.join(variants_of(name, jobs))}")
    close = difflib.get_close_matches(name, list(jobs), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else f" (known: {', '.join(sorted(jobs)) or 'none'})"
    return UserError(f"unknown impl {name!r}{hint}")


def with_upstreams(jobs: dict[str, Job], names: list[str]) -> list[str]:
    """The selected names plus everything they need, in run order; a matrixed impl's name selects its variants."""
    names = [v for n in names for v in (variants_of(n, jobs) if n not in jobs else []) or [n]]
    for n in names:
        if n not in jobs:
            raise unknown_impl(n, jobs)
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n not in wanted:
            wanted.add(n)
            todo.extend(jobs[n].needs)
    return [n for n in topo_order(jobs) if n in wanted]
