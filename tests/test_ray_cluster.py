"""The local Ray cluster helper (tests/ray_cluster.py) brings up its nodes and stops exactly what it started."""

from __future__ import annotations

import pytest

from ray_cluster import start_cluster, stop_cluster


def test_two_nodes_come_up_with_declared_gpus_and_stop_cleanly():
    pytest.importorskip("ray")
    cluster = start_cluster()
    try:
        nodes = cluster.alive_nodes()
        assert len(nodes) == 2 and all(n["gpus"] == 2 for n in nodes), nodes
        assert {n["id"] for n in nodes} == {n.id for n in cluster.nodes}
        assert all(n.pids() for n in cluster.nodes)
    finally:
        stop_cluster(cluster)
    assert not any(n.pids() for n in cluster.nodes)
