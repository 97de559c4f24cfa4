"""A real Ray cluster of several nodes on this one machine, for the Ray executor's tests and benchmark.

Each node is started by `ray start` in its own session, with its own ports, TMPDIR (so per-GPU locks and temp
folders are per node, as on separate machines) and env cache; GPUs are declared (`--num-gpus`), so GPU jobs can be
placed on a machine without any. Stopping kills exactly the processes this helper started (each node's process
group and every descendant, jobs included), never other Ray instances by name as `ray stop` would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


OBJECT_STORE_BYTES = 200 * 1024 * 1024
PORT_OPTIONS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _group(pgid: int) -> list[int]:
    """The live processes of a process group. A zombie is dead, not left running: once a test has made this process
    a child subreaper (the orchestrator's proc.run_captured, called in-process), killed nodes' orphans wait here as
    zombies until reaped, and are not counted."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def descendants(roots: list[int]) -> list[int]:
    """roots and every process below them, parents before children."""
    kids, seen, order, todo = _children(), set(), [], list(roots)
    while todo:
        pid = todo.pop(0)
        if pid not in seen:
            seen.add(pid)
            order.append(pid)
            todo.extend(kids.get(pid, []))
    return order


@dataclass
class Node:
    name: str
    pgid: int
    folder: Path
    id: str = ""  # Ray's node id

    def pids(self) -> list[int]:
        return descendants(_group(self.pgid))


@dataclass
class LocalCluster:
    """Head plus worker nodes on 127.0.0.1; `address` is what RAY_ADDRESS / --ray-address take."""

    root: Path
    gcs_port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def env(self, folder: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTHONPATH"))}
        # Workers get the orchestrator only through the executor's runtime_env, never from this checkout.
        env.update(RAY_USAGE_STATS_ENABLED="0", TMPDIR=str(folder / "tmp"), ORCH_ENVS_DIR=str(folder / "envs"))
        return env

    def start_node(self, cpus: int = 2, gpus: int = 2) -> Node:
        name = f"node{len(self.nodes)}"
        folder = self.root / name
        (folder / "tmp").mkdir(parents=True)
        args = ["ray", "start", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus), "--num-gpus", str(gpus),
                "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats"]
        for opt in PORT_OPTIONS:
            args += [opt, str(free_port())]
        if not self.nodes:
            args += ["--head", "--port", str(self.gcs_port), "--temp-dir", str(self.root / "ray"),
                     "--include-dashboard", "false", "--dashboard-port", str(free_port()),
                     "--ray-client-server-port", str(free_port())]
        else:
            args += ["--address", self.address]
        proc = subprocess.Popen(args, cwd=folder, env=self.env(folder), start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=180)
        node = Node(name, proc.pid, folder)
        self.nodes.append(node)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start ({name}) failed:\n{out[-3000:]}")
        known = {n.id for n in self.nodes}
        node.id = next(i for i in self.wait_for(len(self.nodes)) if i not in known)
        return node

    def alive_nodes(self) -> list[dict]:
        code = ("import json, ray; ray.init(address=%r, logging_level='ERROR');"
                "print(json.dumps([{'id': n['NodeID'], 'gpus': n['Resources'].get('GPU', 0)} for n in ray.nodes() if n['Alive']]))")
        res = subprocess.run([sys.executable, "-c", code % self.address], capture_output=True, text=True, timeout=120,
                             cwd=self.root, env=self.env(self.root))
        import json

        return json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else []

    def wait_for(self, count: int, timeout: float = 120) -> set[str]:
        """The ids of the alive nodes, once there are `count` of them."""
        deadline = time.monotonic() + timeout
        while len(ids := {n["id"] for n in self.alive_nodes()}) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(ids)} of {count} Ray nodes came up")
            time.sleep(0.5)
        return ids

    def kill(self, node: Node) -> list[int]:
        """SIGKILL every process of one node (raylet, agents, workers and the jobs they run), parents first: as when
        a machine dies, no worker outlives its node long enough to report on a job killed under it."""
        pids = node.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def stop(self) -> None:
        """Kill every node, then again whatever a dying node started meanwhile, until nothing is left (up to 20 s
        on a loaded machine; as soon as they are gone otherwise)."""
        for node in reversed(self.nodes):
            self.kill(node)
        for _ in range(200):
            left = [n for n in self.nodes if n.pids()]
            if not left:
                break
            for node in left:
                self.kill(node)
            time.sleep(0.1)


def start_cluster(nodes: int = 2, gpus: int = 2, cpus: int = 2) -> LocalCluster:
    """A fresh cluster under a short temp folder (Ray's socket paths must stay under ~107 characters)."""
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="orch-ray-")))
    try:
        for _ in range(nodes):
            cluster.start_node(cpus=cpus, gpus=gpus)
    except BaseException:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
        raise
    return cluster


def stop_cluster(cluster: LocalCluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)
