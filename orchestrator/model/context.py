"""Run-wide settings resolved once from the command line and the machine, passed to every step."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cache.parsed import Parsed
from orchestrator.cache.store import Store
from orchestrator.env.isolated import ISOLATED, Interpreter
from orchestrator.frozen import dataclass, field
from orchestrator.model.device import Device
from orchestrator.model.suite import Suite, Suites

TYPE_CHECKING = False  # typing itself is not imported on the warm path
if TYPE_CHECKING:
    from orchestrator.env.provider import EnvProvider

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Context:
    """Where things live and how this run behaves; no global state anywhere else."""

    impls_dir: Path
    store: Store
    envs_dir: Path
    suites: Suites
    device: Device
    interp: Interpreter
    locked: bool = False
    force: bool = False
    jobs: int = 2
    gpus: tuple[str, ...] = ()
    wheelhouses: tuple[Path, ...] = ()
    offline: bool = False
    baseline: str = "torch_math"  # the combine stage's speedup reference
    modes: tuple[str, ...] = ("fwd",)  # what the jobs time (model/mode.py); the default adds nothing to a key
    provider: EnvProvider = ISOLATED  # where envs come from: isolated (default) or host mode (env.host.Base)
    parsed: Parsed = field(default_factory=Parsed, compare=False, repr=False)  # metadata parsed before, by content
    # variant name -> why its package version cannot be resolved here (write_locks finds it; planning skips it)
    unresolved: dict = field(default_factory=dict, compare=False, repr=False)
    _uv: list = field(default_factory=list, compare=False, repr=False)

    def suite_for(self, job) -> Suite | None:
        """The suite a job runs (its op's); None where this run has none for its op."""
        return self.suites.get(job.op)

    def uv(self):
        """uv, looked up on first use only, so a fully cached run never needs it."""
        if not self._uv:
            from orchestrator.env.uv import find_uv

            self._uv.append(find_uv(self.wheelhouses, self.offline))
        return self._uv[0]
