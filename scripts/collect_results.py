"""Gather one machine's committed results (several suites per impl) into a results folder, then combine them.

    python scripts/collect_results.py ARTIFACTS DEST     # e.g. artifacts results/h100
    python scripts/collect_results.py --combine DEST     # only combine DEST again (after the report changed)

Per impl, every committed entry's `*.jsonl` is copied as `DEST/<impl>/<suite>.jsonl` (`<suite>.bwd+fwd_bwd.jsonl`
for a run of other modes than the forward) with its manifest as `manifest.<suite>.json` (the newest also as `manifest.json`, its `files` listing the collected `*.jsonl`, the only
result files the combine stage reads), and DEST/upstreams.json gains them (impls already listed there stay); then
the combine stage runs over every listed folder,
writing latency.csv, charts/, report.html and summary.txt into DEST. Paths inside DEST are relative. The combine
stage runs under this interpreter (it needs matplotlib and jinja2: `pip install -e '.[test]'`), with the harness
from this checkout's shared/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMBINE = REPO / "orchestrator" / "stages" / "combine.py"


def job_of(name: str):
    """The job a folder of results belongs to: the impl's, or for a variant folder (`impl@package=version`) that
    variant of it; None when no impl of that name is here."""
    impl, _, pin = name.partition("@")
    script = REPO / "impls" / impl / "bench.py"
    if not script.is_file():
        return None
    sys.path.insert(0, str(REPO))
    from orchestrator.model.job import load_job
    from orchestrator.model.matrix import make_variant

    job = load_job(script, impl)
    package, _, version = pin.partition("=")
    return make_variant(job, package, version) if pin else job


def collect(artifacts: Path, dest: Path) -> dict:
    upstreams = {}
    for job in sorted(p for p in artifacts.iterdir() if p.is_dir() and not p.is_symlink()):
        if job.name.startswith(".") or job.name == "combine":
            continue
        manifests = []
        entries = [p for p in job.iterdir() if (p / "manifest.json").is_file()]
        # oldest first, so a suite's newest entry (a rerun after a fix) is the one left in DEST
        for manifest, entry in sorted(((json.loads((e / "manifest.json").read_text()), e) for e in entries),
                                      key=lambda me: me[0]["finished"]):
            suite = manifest["inputs"]["workloads"]["name"]
            mode = manifest["inputs"].get("mode", "fwd")
            if mode != "fwd":  # a run of other modes sits beside the suite's forward, never over it
                suite = f"{suite}.{mode.replace(',', '+')}"
            out = dest / job.name
            out.mkdir(parents=True, exist_ok=True)
            for jsonl in sorted(entry.glob("*.jsonl")):
                name = f"{suite}.jsonl" if jsonl.name == "results.jsonl" else f"{suite}.{jsonl.name}"
                shutil.copyfile(jsonl, out / name)
            (out / f"manifest.{suite}.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
            manifests.append(manifest)
        if not manifests:
            continue
        newest = max(manifests, key=lambda m: m["finished"])
        collected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((dest / job.name).glob("*.jsonl"))}
        (dest / job.name / "manifest.json").write_text(json.dumps({**newest, "files": collected}, indent=1, sort_keys=True))
        ok = [m for m in manifests if m["status"] == "ok"]
        first = next(iter(sorted((dest / job.name).glob("*.jsonl"))), None)
        head = json.loads(first.read_text().splitlines()[0]) if first else {}
        tags = head.get("tags", {})
        known = job_of(job.name)
        label = {"label": known.label} if known is not None and known.variant else {}  # as `run` names a variant
        upstreams[job.name] = {**label, "op": (known.op if known else None) or head.get("op", "attention"),
                               "status": "ok" if ok else newest["status"], "reason": "" if ok else newest["reason"],
                               "key": newest["key"], "cached": True, "entry": job.name, "tags": tags, "log_tail": ""}
    return upstreams


OUTPUTS = ("latency.csv", "report.html", "summary.txt", "warnings.txt", "latency.svg", "throughput.svg",
           "speedup.svg")  # the last three: what the combine stage wrote before charts/


def combine(dest: Path) -> int:
    """Run the combine stage over DEST's upstreams.json, replacing what an earlier combine wrote there."""
    for name in OUTPUTS:
        (dest / name).unlink(missing_ok=True)
    shutil.rmtree(dest / "charts", ignore_errors=True)
    path = os.pathsep.join(filter(None, [str(REPO / "shared"), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, ORCH_OUT=str(dest), ORCH_UPSTREAMS=str(dest / "upstreams.json"), PYTHONPATH=path)
    return subprocess.run([sys.executable, str(COMBINE)], cwd=dest, env=env).returncode


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--combine":
        return combine(Path(sys.argv[2]).resolve())
    if len(sys.argv) != 3:
        print("usage: collect_results.py ARTIFACTS DEST | --combine DEST", file=sys.stderr)
        return 2
    artifacts, dest = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    listed = dest / "upstreams.json"
    # DEST gathers several runs (one per suite or per impl set): the impls collected now replace their own
    # entries, every other impl already listed stays
    upstreams = json.loads(listed.read_text()) if listed.is_file() else {}
    upstreams.update(collect(artifacts, dest))
    listed.write_text(json.dumps(upstreams, indent=1, sort_keys=True))
    return combine(dest)


if __name__ == "__main__":
    sys.exit(main())
