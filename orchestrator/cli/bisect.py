"""`bisect IMPL PACKAGE GOOD BAD`: the first release of PACKAGE that made IMPL slower than at GOOD.

Each version tried is the impl's version-matrix variant (model/matrix.py) run as an ordinary job, so it is
cached like any other: a second bisect over the same range runs nothing. Exit 0 with the culprit, 1 when BAD is
not slower than GOOD (or GOOD or BAD failed), 2 on bad input (GOOD or BAD unknown here or unable to run here).
"""

from __future__ import annotations

import sys

from orchestrator.cli.common import load_jobs, make_context, warn
from orchestrator.errors import UserError
from orchestrator.model.job import canonical_name

EXIT_FOUND, EXIT_NONE = 0, 1


def _versions(args):
    from packaging.version import InvalidVersion, Version

    out = []
    for flag, value in (("GOOD", args.good), ("BAD", args.bad)):
        try:
            out.append(str(Version(value)))
        except InvalidVersion:
            raise UserError(f"bisect: {flag} {value!r} is not a version (PEP 440)") from None
    if Version(out[0]) >= Version(out[1]):
        raise UserError(f"bisect: GOOD {out[0]} must be older than BAD {out[1]}")
    return out


def cmd_bisect(args) -> int:
    from orchestrator.cli.run import execute
    from orchestrator.env.versions import released
    from orchestrator.model.matrix import make_variant
    from orchestrator.report import bisect
    from orchestrator.report.compare import load
    from orchestrator.run.plan import job_python, preskip_reason

    if not (0 < args.threshold < 10):
        raise UserError(f"--threshold {args.threshold}: must be a fraction above 0, e.g. 0.05 for 5%")
    if not (0 < args.alpha < 1):
        raise UserError(f"--alpha {args.alpha}: must be between 0 and 1")
    good, bad = _versions(args)
    package = canonical_name(args.package)
    if args.matrix:
        raise UserError("bisect: --matrix: not with bisect, which makes the versions' variants itself")
    ctx = make_context(args, locked=args.locked)
    plain = load_jobs(ctx, expand=False)  # a matrixed impl's script as it is: bisect pins only the package
    if args.impl not in plain:
        from orchestrator.model.job import unknown_impl

        raise unknown_impl(args.impl, plain)
    base = plain[args.impl]
    why = preskip_reason(base, ctx)
    if why is not None:
        raise UserError(f"bisect: {base.name} cannot run here: {why}")
    python = ".".join(job_python(ctx)["version"].split(".")[:2])
    versions = released(ctx.uv(), package, good, bad, python)
    for role, v in (("GOOD", good), ("BAD", bad)):
        if v not in versions:
            raise UserError(f"bisect: {role} {package} {v} is not a released version here "
                            f"(found from {good} to {bad}: {', '.join(versions)})")
    print(f"bisect {base.name}: {package} {good} (good) .. {bad} (bad), {len(versions)} versions: "
          + ", ".join(versions), flush=True)
    variants = {v: make_variant(base, package, v) for v in versions}
    samples: dict[str, dict] = {}

    def run(vs: list[str]) -> dict:
        """Run these versions' variants (and what they need) as one ordinary run; their results by version."""
        from orchestrator.model.job import with_upstreams

        everything = {**plain, **{variants[v].name: variants[v] for v in vs}}
        names = with_upstreams(everything, [variants[v].name for v in vs])
        results, _ = execute(ctx, everything, names, set(), combine=False)
        return {v: results[variants[v].name] for v in vs}

    def measured(result) -> dict | None:
        if result.status != "ok" or result.entry is None:
            return None
        notes: list[str] = []
        try:
            found = load(result.entry, notes.append)
        except UserError:  # no measured records at all
            found = {}
        for note in notes:
            warn(note)
        found = {k: s for k, s in found.items() if args.workload is None or k[1] == args.workload}
        return found or None

    ends = run([good, bad])
    for role, v in (("GOOD", good), ("BAD", bad)):
        r = ends[v]
        if r.status == "skipped":
            raise UserError(f"bisect: {role} {package} {v} cannot run here: {r.reason}")
        if r.status == "failed":
            print(f"\nFAILED {variants[v].name}: {r.reason}" + (f"\n  {r.log_tail}" if r.log_tail else ""))
            return EXIT_NONE
        samples[v] = measured(r) or {}
    if not samples[good]:
        where = f"workload {args.workload!r}" if args.workload else "any workload"
        raise UserError(f"bisect: --workload: {base.name} at {package} {good} measured no {where}")
    rows: dict[str, list] = {}

    def slower(v: str) -> bool:
        rows[v] = bisect.verdicts(samples[good], samples[v], args.threshold, args.alpha, args.workload)
        return bisect.is_slower(rows[v])

    def probe(i: int) -> bool | None:
        v = versions[i]
        r = run([v])[v]
        got = measured(r)
        if got is None:
            print(f"  {package} {v}: {r.status}{': ' + r.reason if r.reason else ''}; trying another version",
                  flush=True)
            return None
        samples[v] = got
        return slower(v)

    if not slower(bad):
        _report(versions, samples, rows, good, bad)
        print(f"\nno regression between {package} {good} and {bad}: {bad} is not slower than {good} by more than "
              f"{args.threshold:.0%} with Mann-Whitney p < {args.alpha:g}")
        return EXIT_NONE
    lo, hi, untestable = bisect.search(len(versions), probe)
    _report(versions, samples, rows, good, bad)
    between = [versions[i] for i in sorted(untestable) if lo < i < hi]
    print(f"\nculprit: {package} {versions[hi]} (the first version slower than {good} by more than "
          f"{args.threshold:.0%} with Mann-Whitney p < {args.alpha:g}; last good: {versions[lo]})")
    if between:
        print(f"  not testable here, so possibly the culprit instead: {', '.join(between)}")
    sys.stdout.flush()
    return EXIT_FOUND


def _report(versions: list[str], samples: dict, rows: dict, good: str, bad: str) -> None:
    from orchestrator.report import bisect

    tried: list[tuple[str, str, list, dict]] = []
    for v in versions:
        if v == good:
            tried.append((v, "good", [], samples[good]))
        elif v in rows:
            tried.append((v, "bad" if v == bad else "probe", rows[v], {}))
    print("\n" + bisect.table(tried))
