"""Command line: parse arguments, dispatch through the command table to a handler; map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from orchestrator.errors import StoreError, UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_PIPE = 128 + 13  # stdout closed by its reader (SIGPIPE), as a shell reports it
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
    "bisect": ("bisect", "cmd_bisect"),
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
    p.add_argument("--mode", default=None, metavar="fwd,bwd,fwd_bwd",
                   help="what to time: the forward (fwd, default), the backward alone (bwd), both (fwd_bwd); a comma list")
    p.add_argument("--matrix", action="append", default=None, metavar="PACKAGE=V1,V2",
                   help="run the impls named (default: those requiring PACKAGE) once per version of PACKAGE")


def _run_args(p: argparse.ArgumentParser) -> None:
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


def _combine_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--force", action="store_true", help="rerun the combine stage even when its result is cached")
    p.add_argument("--baseline", default="torch_math", help="speedup reference impl (default torch_math)")


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", type=Path, help="a combine folder (e.g. artifacts/latest) or any folder of *.jsonl results")
    p.add_argument("b", type=Path, help="the result set judged against A, same kinds of folder")
    p.add_argument("--threshold", type=float, default=0.05, help="slowdown that counts (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=float, default=0.01, help="Mann-Whitney U significance level (default 0.01)")


def _bisect_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("impl", help="an impl name (see `list`)")
    p.add_argument("package", help="the package whose releases are searched, e.g. liger-kernel")
    p.add_argument("good", help="a version of it the impl was fast with")
    p.add_argument("bad", help="a later version it is slower with")
    p.add_argument("--workload", default=None, help="judge one workload (default: any workload slower counts)")
    p.add_argument("--threshold", type=float, default=0.05, help="slowdown that counts (default 0.05 = 5%%)")
    p.add_argument("--alpha", type=float, default=0.01, help="Mann-Whitney U significance level (default 0.01)")
    p.add_argument("--locked", action="store_true", help="a missing or stale lock is an error (CI)")


def _name_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("name", help="an impl name (see `list`)")


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="result cache (default: artifacts/)")
    p.add_argument("--envs", action="store_true", help="also check every env: installed files against their RECORD")
    p.add_argument("--envs-dir", type=Path, default=None, help="environment cache (default: ~/.cache/orchestrator/envs)")


def _lock_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("names", nargs="*", metavar="NAME", help="impls to lock (default: all, and the combine stage)")


def _clean_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--all", action="store_true", help="delete every cache entry")


# command -> (its line in the help, what adds its arguments), in the order the help lists them
SUBCOMMANDS = {
    "list": ("each job and whether it is cached, stale or never run", _common),
    "run": ("run jobs (and what they need), then the combine stage", _run_args),
    "combine": ("re-merge cached results", _combine_args),
    "compare": ("compare result set B against A; exit 1 on a significant regression", _compare_args),
    "bisect": ("find the first release of a package that made an impl slower; exit 1 if none", _bisect_args),
    "show": ("manifest, folder and key inputs of a job", _name_args),
    "reproduce": ("print one shell command that reruns a job standalone", _name_args),
    "verify": ("check every cache entry against its manifest's sha256; exit 1 if any is damaged", _verify_args),
    "lock": ("refresh lock files", _lock_args),
    "clean": ("delete stale cache entries, leftovers and failure logs", _clean_args),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, every command is listed but only that one gets its arguments.

    main() parses `<command> ...` with such a parser: the other commands' ~80 add_argument calls were most of what
    argparse cost at start-up. Help, usage and errors read the same (they come from the list of commands and the
    chosen one's own arguments)."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=(
        "Benchmark every implementation in its own uv environment; cache results by content hash."))
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (text, add_args) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=text)
        if only is None or only == name:
            add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
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
    except BrokenPipeError:  # `list | head`: the reader left; no traceback, and none at exit either
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except StoreError as exc:  # disk trouble once things ran (read-only or full artifacts folder)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"interrupted ({signal.Signals(signum).name}): running jobs were killed; nothing partial was committed",
              file=sys.stderr)
        return 128 + signum
