"""`python -m orchestrator compare A B`: is B slower than A, beyond noise?

A and B are each a combine artifact folder (upstreams.json names the upstream folders) or any folder holding
result `*.jsonl` files (searched recursively). For each impl x workload x mode in both (a forward is compared with a
forward, a backward with a backward; records without a mode are forwards): the ratio of medians (B/A) and
a two-sided Mann-Whitney U test on the raw times. A regression is B slower by more than `threshold` with
p < alpha, or a result that was correct in A and is wrong in B. Standard library only, imported only by the
compare command.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.errors import UserError

UPSTREAMS = "upstreams.json"


@dataclass(frozen=True)
class Sample:
    """One impl x workload x mode measurement: its raw times (ms), median, correctness, where and when it was made."""

    impl: str
    workload: str
    mode: str
    raw: tuple[float, ...]
    p50: float | None  # None: no usable median (missing or NaN); such a sample is "not comparable"
    ok: bool | None
    source: str
    when: float | None  # the manifest's `finished` time; None when no manifest says


@dataclass(frozen=True)
class Row:
    impl: str
    workload: str
    mode: str
    a: float | None
    b: float | None
    ratio: float | None
    p: float | None
    verdict: str

    @property
    def regression(self) -> bool:
        return self.verdict in ("SLOWER", "NOW WRONG")


def median(xs) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def mann_whitney(a, b) -> float:
    """Two-sided p-value of the Mann-Whitney U test: normal approximation with tie and continuity corrections."""
    n1, n2 = len(a), len(b)
    n = n1 + n2
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    rank_a, ties, i = 0.0, 0.0, 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        t = j - i + 1
        avg = (i + j) / 2 + 1  # ranks are 1-based; tied values share the mean of their ranks
        rank_a += avg * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        ties += t ** 3 - t
        i = j + 1
    u = rank_a - n1 * (n1 + 1) / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0  # every value equal: no evidence of a difference
    z = max(abs(u - n1 * n2 / 2) - 0.5, 0.0) / math.sqrt(var)
    return min(1.0, math.erfc(z / math.sqrt(2)))


def _finished(man: Path) -> float | None:
    """A manifest's `finished` time: a number (what the orchestrator writes) or an ISO-8601 string."""
    try:
        data = json.loads(man.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("finished") if isinstance(data, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _manifest_time(path: Path, root: Path) -> float | None:
    """When the run that wrote `path` finished, from its manifest: `manifest.<stem>.json` beside it (a results
    folder of several suites), else `manifest.json` beside it or above it up to root. Never a file's mtime."""
    for folder in [path.parent, *path.parent.parents]:
        for name in ([f"manifest.{path.stem}.json"] if folder == path.parent else []) + ["manifest.json"]:
            if (folder / name).is_file():
                when = _finished(folder / name)
                if when is not None:
                    return when
        if folder == root or root not in folder.parents:
            break
    return None


def _jsonl_under(folder: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "_logs" and not d.startswith("."))
        found.extend(Path(dirpath, f) for f in filenames if f.endswith(".jsonl"))
    return sorted(found)


def result_files(folder: Path) -> list[tuple[Path, Path, str | None]]:
    """(file, the folder its manifest search stops at, the name its records go by) for the result files a folder
    stands for: its upstreams' files for a combine folder (a version-matrix variant's records named by its
    `label`, as in the report), else every *.jsonl in it (named by their own `impl`)."""
    doc_path = folder / UPSTREAMS
    if not doc_path.is_file():
        return [(f, folder, None) for f in _jsonl_under(folder)]
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{doc_path}: unreadable ({exc}); rerun `python -m orchestrator combine`") from None
    if not isinstance(doc, dict):
        raise UserError(f"{doc_path}: not a JSON object of upstreams; rerun `python -m orchestrator combine`")
    files = []
    artifacts = folder.resolve().parent.parent  # artifacts/combine/<key> -> artifacts/, if the tree was moved
    for name in sorted(doc):
        entry = doc[name].get("entry") if isinstance(doc[name], dict) else None
        if not entry or not isinstance(entry, str):
            continue
        label = doc[name].get("label")
        label = label if isinstance(label, str) and label else None
        where = folder / entry  # a relative name is relative to the folder holding upstreams.json
        if not where.is_dir():
            where = artifacts / name / Path(entry).name
        files += [(f, where, label) for f in _jsonl_under(where)] if where.is_dir() else []
    return files


def load(folder: Path, warn) -> dict[tuple[str, str, str], Sample]:
    """(impl, workload, mode) -> Sample of the measured results under folder; of several runs the newest (by the
    manifest's `finished` time) wins."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; give a combine artifact folder or a folder of result *.jsonl files")
    found: dict = {}
    rules = _schema_rules()  # the harness's schema rules, loaded once for every line
    for path, root, label in result_files(folder):
        when = _manifest_time(path, root)
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                rec = json.loads(line) if line.strip() else None
            except ValueError:
                warn(f"{path}:{lineno}: not JSON; line skipped")
                continue
            s = _sample(rec, f"{path}:{lineno}", when, warn, rules)
            if s is not None and label is not None:
                s = replace(s, impl=label)
            if s is not None:
                found.setdefault((s.impl, s.workload, s.mode), []).append(s)
    out: dict = {}
    runs: dict[str, set] = {}
    for key, samples in sorted(found.items()):
        # Unknown times sort oldest; among equal times the later file and line wins (a fixed, stated order).
        out[key] = max(samples, key=lambda s: (s.when is not None, s.when or 0.0, s.source))
        whens = {s.when for s in samples}
        if len(samples) > 1 and len(whens) > 1:  # one workload measured by several runs, not several suites
            runs.setdefault(key[0], set()).update(whens)
    for impl, whens in sorted(runs.items()):
        newest = max((w for w in whens if w is not None), default=None)
        shown = "unknown" if newest is None else _iso(newest)
        warn(f"{impl}: results of {len(whens)} runs under {folder}; the newest (finished {shown}) is used")
    return out


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _schema_rules():
    """The harness's reading of a record's schema, op and mode (opbench/schema.py: one definition of the record)."""
    from orchestrator.model.context import REPO
    from orchestrator.model.suite import harness_suite_module

    schema = harness_suite_module(REPO / "shared" / "opbench", "schema")
    return schema.record_op, schema.record_mode


def _sample(rec, where: str, when: float | None, warn=None, rules=None) -> Sample | None:
    """A Sample from a measured record (its median None when missing or NaN); None for skipped, errored or
    malformed ones, and for a record of a schema, op or mode the harness cannot read (warned about)."""
    if not isinstance(rec, dict) or rec.get("status", "ok") != "ok":
        return None
    record_op, record_mode = rules or _schema_rules()
    try:
        record_op(rec)
        mode = record_mode(rec)
    except ValueError as exc:
        if warn is not None:
            warn(f"{where}: {exc}; record skipped")
        return None
    lat, wl = rec.get("lat_ms"), rec.get("wl")
    if not isinstance(wl, dict) or not isinstance(rec.get("impl"), str):
        return None
    lat = lat if isinstance(lat, dict) else {}
    listed = lat.get("raw") if isinstance(lat.get("raw"), list) else []
    raw = tuple(float(x) for x in listed or () if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x))
    p50 = lat.get("p50")
    p50 = median(raw) if raw else float(p50) if isinstance(p50, (int, float)) and not isinstance(p50, bool) else None
    if p50 is not None and not (math.isfinite(p50) and p50 > 0):
        p50 = None  # NaN, infinite, zero or negative: a measured record that cannot be compared
    ok = rec.get("ok") if isinstance(rec.get("ok"), bool) else None
    return Sample(rec["impl"], str(wl.get("name", "?")), mode, raw, p50, ok, where, when)


def judge(a: Sample, b: Sample, threshold: float, alpha: float) -> Row:
    if a.p50 is None or b.p50 is None:
        verdict = "NOW WRONG" if a.ok is True and b.ok is False else "not comparable"
        return Row(a.impl, a.workload, a.mode, a.p50, b.p50, None, None, verdict)
    ratio = b.p50 / a.p50
    p = mann_whitney(a.raw, b.raw) if len(a.raw) >= 2 and len(b.raw) >= 2 else None
    if a.ok is True and b.ok is False:
        verdict = "NOW WRONG"
    elif p is None:
        verdict = "no raw times" if abs(ratio - 1) > threshold else "same"
    elif p >= alpha:
        verdict = "not significant"
    elif ratio > 1 + threshold:
        verdict = "SLOWER"
    elif ratio < 1 - threshold:
        verdict = "faster"
    else:
        verdict = f"within {threshold:.0%}"
    return Row(a.impl, a.workload, a.mode, a.p50, b.p50, ratio, p, verdict)


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def table(rows: list[Row]) -> str:
    head = ("impl", "workload", "mode", "A p50 ms", "B p50 ms", "B/A", "p", "verdict")
    body = [(r.impl, r.workload, r.mode, _num(r.a, ".4f"), _num(r.b, ".4f"), _num(r.ratio, ".3f"),
             "-" if r.p is None else f"{r.p:.1e}", r.verdict) for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    right = {3, 4, 5, 6}
    lines = ["  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(x, widths)))
             for x in [head, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


SHOWN_PER_IMPL = 4  # of an impl's unmatched results, the first few named: a whole result set's stays readable


def unmatched(keys: list[tuple[str, str, str]]) -> str:
    """The results one side has alone, a line per impl: its workloads (the mode where not fwd), the first few named."""
    by: dict[str, list[str]] = {}
    for impl, wl, mode in keys:
        by.setdefault(impl, []).append(wl + ("" if mode == "fwd" else f" [{mode}]"))
    lines = []
    for impl, names in by.items():
        more = len(names) - SHOWN_PER_IMPL
        lines.append(f"  {impl}: " + ", ".join(names[:SHOWN_PER_IMPL]) + (f", … {more} more" if more > 0 else ""))
    return "\n".join(lines)


def compare(a: Path, b: Path, threshold: float = 0.05, alpha: float = 0.01, out=None) -> int:
    """Print the comparison of B against A; 1 when any impl x workload x mode regressed, else 0; nothing in common is
    a user error (exit 2)."""
    out = out or sys.stdout
    notes: list[str] = []
    sa, sb = load(Path(a), notes.append), load(Path(b), notes.append)
    if not sa or not sb:
        empty = a if not sa else b
        raise UserError(f"{empty}: no measured result records found (looked for *.jsonl and upstreams.json)")
    common = sorted(sa.keys() & sb.keys())
    if not common:
        raise UserError(f"{a} and {b} have no impl x workload x mode in common: nothing to compare")
    rows = [judge(sa[k], sb[k], threshold, alpha) for k in common]
    print(f"A: {a}\nB: {b}\nregression: B slower than A by more than {threshold:.0%} with Mann-Whitney p < {alpha:g}, "
          "or correct in A and wrong in B\n", file=out)
    print(table(rows), file=out)
    only_a, only_b = sorted(sa.keys() - sb.keys()), sorted(sb.keys() - sa.keys())
    for label, keys in (("only in A", only_a), ("only in B", only_b)):
        if keys:
            print(f"\n{label}:\n" + unmatched(keys), file=out)
    for note in notes:
        print(f"note: {note}", file=out)
    bad = [r for r in rows if r.regression]
    unusable = sum(r.verdict == "not comparable" for r in rows)
    print(f"\n{len(rows)} compared, {len(bad)} regression(s), {sum(r.verdict == 'faster' for r in rows)} faster"
          + (f", {unusable} not comparable (no usable median)" if unusable else ""), file=out)
    return 1 if bad else 0
