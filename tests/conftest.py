"""Shared test helpers: run the real CLI in a subprocess over a copy of a fixture tree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ISOLATED = ("XDG_CACHE_HOME", "UV_CACHE_DIR", "ORCH_ENVS_DIR", "ORCH_LOCK_DIR", "PIP_CACHE_DIR", "TRITON_CACHE_DIR",
            "TORCHINDUCTOR_CACHE_DIR")


# The fixture tree's `six` pins are tiny wheels made here (same bytes every time, so the committed locks' hashes
# hold): uv finds them offline, and the suite needs no package index, as on an offline GPU machine.
FIXTURE_WHEELS = {"six": ("1.15.0", "1.16.0")}


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = (),
               extras: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel, written by hand (fixed timestamps: the same bytes on every call)."""
    import base64
    import hashlib
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Provides-Extra: {e}\n" for e in extras)
            + "".join(f"Requires-Dist: {r}\n" for r in requires))
    entries = {**files, f"{dist}.dist-info/METADATA": meta,
               f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in entries.items():
            data = text.encode()
            zf.writestr(zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={digest},{len(data)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(zipfile.ZipInfo(f"{dist}.dist-info/RECORD", date_time=(1980, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    return path


def fixture_wheelhouse(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, versions in FIXTURE_WHEELS.items():
        for version in versions:
            make_wheel(folder, name, version, {f"{name}.py": f"__version__ = {version!r}\n"})
    return folder


COMBINE_LOCK = REPO / "orchestrator" / "stages" / "combine.lock.txt"
WHEEL_CACHE = REPO / ".cache" / "test-wheels"  # git-ignored; kept between sessions (never ~/.cache)


def combine_wheels(folder: Path) -> None:
    """The combine stage's pinned wheels (matplotlib, Jinja2 and their closure) for this interpreter, checked
    against the lock's hashes, copied into the suite's wheelhouse: uv builds the stage's env from them offline.
    Downloaded once into WHEEL_CACHE (by pip, from the configured index), then reused."""
    import hashlib

    digest = hashlib.sha256(COMBINE_LOCK.read_bytes() + sys.version.encode()).hexdigest()[:16]
    cache = WHEEL_CACHE / digest
    if not (cache / ".complete").is_file():
        staging = WHEEL_CACHE / f".{digest}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        res = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                              "--require-hashes", "-r", str(COMBINE_LOCK), "-d", str(staging)],
                             capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise pytest.UsageError(f"tests: cannot fetch the combine stage's wheels ({COMBINE_LOCK.name}): "
                                    + (res.stderr.strip().splitlines() or ["pip download failed"])[-1])
        (staging / ".complete").write_text("")
        shutil.rmtree(cache, ignore_errors=True)
        staging.rename(cache)
    for whl in cache.glob("*.whl"):
        shutil.copy2(whl, folder / whl.name)


def pytest_configure(config):
    """The suite's own caches and device-lock namespace: nothing it does touches ~/.cache, and no run of the
    orchestrator elsewhere on the machine shares a lock (or a uv cache) with it. uv works offline from the
    fixture wheelhouse: no test needs a package index."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="orch-tests-"))
    config._orch_isolated = root
    for var in ISOLATED:
        os.environ[var] = str(root / var.lower())
    house = fixture_wheelhouse(root / "wheelhouse")
    combine_wheels(house)
    os.environ["UV_FIND_LINKS"] = str(house)
    os.environ["UV_OFFLINE"] = "1"
    os.environ["UV_NO_INDEX"] = "1"


def pytest_unconfigure(config):
    root = getattr(config, "_orch_isolated", None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# A GPU job's body for scheduling tests: it records the CUDA_VISIBLE_DEVICES it was given and when it ran.
GPU_SPAN = (
    "import json, os, time\n"
    "t0 = time.time(); time.sleep(1.0); t1 = time.time()\n"
    "json.dump({'cvd': os.environ.get('CUDA_VISIBLE_DEVICES'), 'start': t0, 'end': t1},"
    " open(os.path.join(os.environ['ORCH_OUT'], 'span.json'), 'w'))\n"
)
LINE = re.compile(r"^\S (\S+)\s+(cached|ok|failed|skipped)\b( +cached)?", re.M)


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    def states(self) -> dict[str, str]:
        """Final state per job from the plain (non-TTY) progress lines."""
        return {name: "cached" if cached else state for name, state, cached in LINE.findall(self.stdout)}

    def ran(self) -> set[str]:
        return {n for n, s in self.states().items() if s in ("ok", "failed", "skipped")}


def repo_pythonpath() -> str:
    """PYTHONPATH for a child that runs this checkout's orchestrator, keeping what the caller had (an offline
    machine may carry the test tools there)."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def job_variables(script: Path) -> dict[str, str]:
    """What the orchestrator hands a job about itself (its op and tags, from the one PEP 723 reader), for tests
    that run a bench.py directly."""
    import json

    sys.path.insert(0, str(REPO))
    from orchestrator.model.job import load_job

    job = load_job(Path(script), Path(script).parent.name)
    return {"ORCH_OP": job.op, "ORCH_TAGS": json.dumps(job.tags, sort_keys=True)}


def orch(*args, cwd: Path = REPO, env: dict | None = None, timeout: float = 600) -> Outcome:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = repo_pythonpath()
    full_env.update(env or {})
    res = subprocess.run([sys.executable, "-m", "orchestrator", *map(str, args)], cwd=cwd, env=full_env,
                         capture_output=True, text=True, timeout=timeout)
    return Outcome(res.returncode, res.stdout, res.stderr)


TORCH = "torch==2.13.0"  # the CPU build pip finds on this machine's disk; never the multi-GB CUDA build


@pytest.fixture(scope="session")
def torch_base() -> Path:
    """A venv with CPU torch and numpy, made once and kept (it is large): the 'pre-built image' of host mode."""
    import tempfile

    # Kept between sessions (it is large), outside ~/.cache: a folder of the suite's own in the temp dir.
    default = Path(tempfile.gettempdir()) / f"orchestrator-tests-{os.getuid()}" / "torch-base"
    root = Path(os.environ.get("ORCH_TEST_TORCH_BASE") or default)
    py = root / "bin" / "python"
    if not (root / ".complete").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
        res = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--only-binary=:all:", TORCH, "numpy"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot install the CPU torch build here: {res.stderr.strip().splitlines()[-1:]}")
        (root / ".complete").write_text("")
    return py


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory) -> Path:
    """A uv cache of the session's own, for tests that pass it explicitly."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(scope="session")
def envs_dir(tmp_path_factory) -> Path:
    """One env cache for the whole session: envs are content-addressed, so sharing them is what users get too."""
    return tmp_path_factory.mktemp("envs")


@dataclass
class Tree:
    root: Path
    artifacts: Path
    envs: Path

    @property
    def impls(self) -> Path:
        return self.root / "impls"

    def args(self, *extra) -> list:
        return ["--impls-dir", self.impls, "--artifacts", self.artifacts, "--envs-dir", self.envs,
                "--workloads", self.root / "suite.toml", *extra]

    def run(self, *names, extra=(), env=None) -> Outcome:
        return orch("run", *(names or ("all",)), *self.args(*extra), env=env)

    def cli(self, command, *extra, env=None) -> Outcome:
        return orch(command, *self.args(*extra), env=env)

    def add_impl(self, name: str, body: str, settings: str = "gpu = false", deps: str = "[]") -> Path:
        folder = self.impls / name
        folder.mkdir()
        script = folder / "bench.py"
        script.write_text(
            f"# /// script\n# dependencies = {deps}\n#\n# [tool.orchestrator]\n"
            + "".join(f"# {line}\n" for line in settings.splitlines()) + "# ///\n" + body
        )
        return script


# A checkout of impls on the real harness (shared/ copied beside them) and a tiny attention suite, for end-to-end
# tests over the CPU torch base.
TINY_ATTENTION = """[suite]
op = "attention"

[defaults]
batch = 1
heads = 2
head_dim = 16
dtype = "float32"

[[workload]]
name = "tiny"
seq_len = 32

[[workload]]
name = "tiny_causal"
seq_len = 24
causal = true
"""
HARNESS_BLOCK = ('# /// script\n# requires-python = ">=3.10"\n# dependencies = ["opbench-harness", "torch", "numpy"]\n#\n'
                 '# [tool.uv.sources]\n# opbench-harness = {{ path = "../../shared", editable = true }}\n#\n'
                 '# [tool.orchestrator]\n# gpu = true\n# requires = []\n'
                 '# tags = {{ family = "test", backend = "{backend}", compile = "none" }}\n# ///\n')
SDPA_MATH = HARNESS_BLOCK.format(backend="MATH") + (
    "from opbench import sdpa\n\n"
    "if __name__ == '__main__':\n"
    "    raise SystemExit(sdpa.run_backend('MATH', requires_cuda=False, probe=False))\n")


def harness_checkout(tmp_path: Path, envs: Path, impls: dict[str, str], suite: str = TINY_ATTENTION) -> Tree:
    """impls: name -> bench.py text; the suite is the checkout's suite.toml."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "shared", root / "shared", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "impls").mkdir()
    for name, body in impls.items():
        (root / "impls" / name).mkdir()
        (root / "impls" / name / "bench.py").write_text(body)
    (root / "suite.toml").write_text(suite)
    return Tree(root, tmp_path / "artifacts", envs)


def copy_tree(name: str, dest: Path, artifacts: Path, envs: Path) -> Tree:
    shutil.copytree(FIXTURES / name, dest)
    return Tree(dest, artifacts, envs)


@pytest.fixture
def tree(tmp_path, envs_dir) -> Tree:
    return copy_tree("tree", tmp_path / "checkout", tmp_path / "artifacts", envs_dir)


# -- shared by several test files (kept here so no test file imports another) ------------------------------

def entry_of(artifacts: Path, name: str) -> Path:
    entries = [p for p in (artifacts / name).iterdir() if p.is_dir()]
    assert len(entries) == 1, entries
    return entries[0]


# The variables a multi-GPU host sets so that NVLink multicast never takes a shared machine's GPUs out of service.
NVLS_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
DUMP_ENV = (
    "import json, os\n"
    f"json.dump({{k: os.environ.get(k) for k in {sorted(NVLS_OFF)!r}}},"
    " open(os.path.join(os.environ['ORCH_OUT'], 'env.json'), 'w'))\n"
)


FAULTS = {
    "raises": ("raise RuntimeError('kaboom in the kernel')\n", "kaboom in the kernel"),
    "segfaults": ("import ctypes\nprint('before the crash', flush=True)\nctypes.string_at(0)\n", "SIGSEGV"),
    "aborts": ("import os\nos.abort()\n", "SIGABRT"),
    "exits_nonzero": ("import sys\nprint('giving up', file=sys.stderr)\nsys.exit(5)\n", "exit status 5"),
    "writes_garbage_jsonl": (
        "import os\nopen(os.path.join(os.environ['ORCH_OUT'], 'results.jsonl'), 'w').write('{\"ok\": 1}\\nnot json\\n')\n",
        "results.jsonl:2: not valid JSON",
    ),
    "writes_non_object_jsonl": (
        "import os\nopen(os.path.join(os.environ['ORCH_OUT'], 'r.jsonl'), 'w').write('[1, 2]\\n')\n",
        "r.jsonl:1: not a JSON object",
    ),
    "links_outside": (
        "import os\nos.symlink('/etc/passwd', os.path.join(os.environ['ORCH_OUT'], 'leak.txt'))\n",
        "leak.txt is a symbolic link",
    ),
}


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie awaiting its reaper counts as dead)."""
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def host(tmp_path, envs_dir):
    """Host mode (tests/host_layers.py): a base with basepkg 1.0, a wheelhouse with extrapkg 2.0 (needing basepkg) and a .pth-path package."""
    from host_layers import make_base, make_wheel

    wheels = tmp_path / "base-wheels"
    wheels.mkdir()
    basepkg = make_wheel(wheels, "basepkg", "1.0", {"basepkg/__init__.py": "VERSION = '1.0'\n"})
    house = tmp_path / "wheelhouse"
    house.mkdir()
    make_wheel(house, "extrapkg", "2.0", {"extrapkg/__init__.py": "VERSION = '2.0'\n"},
               requires=("basepkg>=1", 'fastdep>=1; extra == "fast"'), extras=("fast",))
    make_wheel(house, "fastdep", "1.1", {"fastdep.py": "VERSION = '1.1'\n"})
    make_wheel(house, "pthpkg", "0.1", {"pthpkg.pth": "pthpkg_dir\n", "pthpkg_dir/hidden_mod.py": "WHERE = 'via .pth'\n"})
    base = make_base(tmp_path / "base", [basepkg])
    tree = Tree(tmp_path / "checkout", tmp_path / "artifacts", envs_dir)
    (tree.impls).mkdir(parents=True)
    (tree.root / "suite.toml").write_text((FIXTURES / "tree" / "suite.toml").read_text())
    return tree, base, house, tmp_path


@pytest.fixture(scope="module")
def cluster_module():
    """A two-node local Ray cluster (tests/ray_cluster.py) shared by a module's tests."""
    pytest.importorskip("ray")
    from ray_cluster import start_cluster, stop_cluster

    cluster = start_cluster()
    yield cluster
    stop_cluster(cluster)
