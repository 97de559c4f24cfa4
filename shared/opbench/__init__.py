"""opbench: the benchmark harness every attention impl imports.

Importing it loads only the standard library; torch, numpy and jax are imported inside the functions
that need them, from the impl's own environment. A bench.py is a few lines:

    import opbench
    def attend(q, k, v, causal): ...          # canonical (B, S, H, D) in and out
    raise SystemExit(opbench.run(attend))   # tags come from the script's [tool.orchestrator] block
"""

from opbench.accuracy import DEFAULT_REL_L2, Accuracy, tolerance_for
from opbench.errors import HarnessError, Skip, SuiteError
from opbench.probe import probe, require
from opbench.record import Env, Record
from opbench.runner import SKIP_EXIT, run
from opbench.stats import Latency, summarize
from opbench.suite import Suite, Workload, load_suite

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
