"""attnbench: the benchmark harness every attention impl imports.

Importing it loads only the standard library; torch, numpy and jax are imported inside the functions
that need them, from the impl's own environment. A bench.py is a few lines:

    import attnbench
    def attend(q, k, v, causal): ...          # canonical (B, S, H, D) in and out
    raise SystemExit(attnbench.run(attend))   # tags come from the script's [tool.orchestrator] block
"""

from attnbench.accuracy import DEFAULT_REL_L2, Accuracy, tolerance_for
from attnbench.errors import HarnessError, Skip, SuiteError
from attnbench.probe import probe, require
from attnbench.record import Env, Record
from attnbench.runner import SKIP_EXIT, run
from attnbench.stats import Latency, summarize
from attnbench.suite import Suite, Workload, load_suite

__all__ = [
    "DEFAULT_REL_L2",
    "SKIP_EXIT",
    "Accuracy",
    "Env",
    "HarnessError",
    "Latency",
    "Record",
    "Skip",
    "Suite",
    "SuiteError",
    "Workload",
    "load_suite",
    "probe",
    "require",
    "run",
    "summarize",
    "tolerance_for",
]
