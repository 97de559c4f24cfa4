"""Command line: parse arguments, dispatch through the command table to a handler; map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from orchestrator.errors import StoreError, UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# command -> (module under orchestrator.cli, handler): only the chosen command's module is imported
COMMANDS = {
    "run": ("run", "cmd_run"),
    "combine": ("run", "cmd_combine"),
    "list": ("inspect", "cmd_list"),
    "show": ("inspect", "cmd_show"),
    "reproduce": ("inspect", "cmd_reproduce"),
    "verify": ("maintain", "cmd_verify"),
    "lock": ("maintain", "cmd_lock"),
    "clean": ("maintain", "cmd_clean"),
    "compare": ("maintain", "cmd_compare"),
}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # what CI time-outs, `timeout`, systemd, Slurm and a closed terminal send


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: handled exactly like Ctrl-C (every job's tree killed, nothing committed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_stop_signal(signum, frame) -> None:
    for sig in STOP_SIGNALS:  # once: a second signal must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


def _handle_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        try:
            signal.signal(sig, _on_stop_signal)
        except ValueError:  # not the main thread (main() called from a library): leave the defaults
            return


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--impls-dir", type=Path, default=Path("impls"), help="implementation folders (default: impls/)")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="result cache (default: artifacts/)")
    p.add_argument("--envs-dir", type=Path, default=None, help="environment cache (default: ~/.cache/orchestrator/envs)")
    p.add_argument("--workloads", default=None, help="suite name or TOML path (default: seed on a GPU, smoke without)")
    p.add_argument("--suites-dir", type=Path, default=None, help="folder of named suites (default: shared/opbench/workloads)")
    p.add_argument("--python", default=None, help="host mode: layer every env over this interpreter's packages")
    p.add_argument("--wheelhouse", type=Path, action="append", default=[], help="extra folder of wheels (repeatable)")
    p.add_argument("--offline", action="store_true", help="never touch the network: wheels from --wheelhouse/uv's cache only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=(
        "Benchmark every implementation in its own uv environment; cache results by content hash."))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="each job and whether it is cached, stale or never run")
    _common(p)
    p = sub.add_parser("run", help="run jobs (and what they need), then the combine stage")
    _common(p)
    p.add_argument("names", nargs="+", metavar="all|NAME", help="'all', or impl names (their upstreams come too)")
    p.add_argument("--force", action="store_true", help="rerun the named jobs (and combine) even when cached")
    p.add_argument("--locked", action="store_true", help="a missing or stale lock is an error (CI)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="CPU jobs and env builds at once")
    p.add_argument("--gpus", default=None, help="GPU ids to spread GPU jobs over, e.g. 0,1 (default: all)")
    p.add_argument("--no-combine", action="store_true", help="skip the combine stage")
    p.add_argument("--baseline", default="torch_math", help="speedup reference impl (default torch_math)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where jobs run: this machine (default) or a Ray cluster (pip install '.[ray]')")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to use with --executor ray (default: $RAY_ADDRESS, as Ray itself does)")
    p = sub.add_parser("combine", help="re-merge cached results")
    _common(p)
    p.add_argument("--force", action="store_true", help="rerun the combine stage even when its result is cached")
    p.add_argument("--baseline", default="torch_math", help="speedup reference impl (default torch_math)")
    p = sub.add_parser("compare", help="compare result set B against A; exit 1 on a significant regression")
    p.add_argument("a", type=Path, help="a combine folder (e.g. artifacts/latest) or any folder of *.jsonl results")
    p.add_argument("b", type=Path, help="the result set judged against A, same kinds of folder")
    p.add_argument("--threshold", type=float, default=0.05, help="slowdown that counts (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=float, default=0.01, help="Mann-Whitney U significance level (default 0.01)")
    for name, text in (("show", "manifest, folder and key inputs of a job"),
                       ("reproduce", "print one shell command that reruns a job standalone")):
        p = sub.add_parser(name, help=text)
        _common(p)
        p.add_argument("name", help="an impl name (see `list`)")
    p = sub.add_parser("verify", help="check every cache entry against its manifest's sha256; exit 1 if any is damaged")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="result cache (default: artifacts/)")
    p.add_argument("--envs", action="store_true", help="also check every env: installed files against their RECORD")
    p.add_argument("--envs-dir", type=Path, default=None, help="environment cache (default: ~/.cache/orchestrator/envs)")
    p = sub.add_parser("lock", help="refresh lock files")
    _common(p)
    p.add_argument("names", nargs="*", metavar="NAME", help="impls to lock (default: all, and the combine stage)")
    p = sub.add_parser("clean", help="delete stale cache entries, leftovers and failure logs")
    _common(p)
    p.add_argument("--all", action="store_true", help="delete every cache entry")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    import importlib

    module, handler = COMMANDS[args.command]
    _handle_stop_signals()
    try:
        return getattr(importlib.import_module(f"orchestrator.cli.{module}"), handler)(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:  # disk trouble once things ran (read-only or full artifacts folder)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"interrupted ({signal.Signals(signum).name}): running jobs were killed; nothing partial was committed",
              file=sys.stderr)
        return 128 + signum
