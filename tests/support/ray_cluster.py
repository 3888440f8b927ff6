"""A real Ray cluster on this machine, for the tests: a head node (`ray start --head --block`, no CPUs for
trials, as docs/scale.md advises: the head holds the cluster's state, and its death is the cluster's) and
worker nodes (`ray start --block`), each a process the fixture owns (so it stops exactly what it started,
never another cluster), with the resources node_a (the head), node_b, node_c to tell the nodes apart."""

from __future__ import annotations

import json
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

import psutil

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    address: str
    temp: Path
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def raylet_of(self, label: str) -> psutil.Process | None:
        """The raylet process of the node started under ``label`` (killing it kills the node)."""
        starter = psutil.Process(self.nodes[label].pid)
        return next((p for p in starter.children(recursive=True) if "raylet" in p.name()), None)

    def label_of(self, node_id: str) -> str:
        """Which of the nodes started here has that Ray node id (asked from a process of its own: a driver
        attached to a node that dies would die with it)."""
        done = subprocess.run(
            [sys.executable, "-c", _LABELS, self.address], capture_output=True, text=True, timeout=60
        )
        labels = json.loads(done.stdout or "{}")
        return str(labels[node_id])

    def kill_node(self, label: str) -> None:
        raylet = self.raylet_of(label)
        if raylet is not None:
            raylet.send_signal(signal.SIGKILL)

    def alive_nodes(self) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _COUNT, self.address], capture_output=True, text=True, timeout=60
        )
        return int(done.stdout.strip() or 0)

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def stop(self) -> None:
        import ray

        ray.shutdown()  # a driver still connected when its cluster goes away is ended by Ray
        for process in self.nodes.values():
            with _ignore():
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
            process.kill()
            process.wait(timeout=30)
        shutil.rmtree(self.temp, ignore_errors=True)


_LABELS = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps({n["NodeID"]: next(k for k in n["Resources"] if k.startswith("node_")) for n in ray.nodes()}))
"""
_COUNT = """
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
"""


class _ignore:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def start_node(
    label: str, extra: list[str], temp: Path, cpus: int = 2, hidden: tuple[Path, ...] = ()
) -> subprocess.Popen[bytes]:
    """A node; ``hidden``: folders the node does not see (an empty tmpfs over each, in a mount namespace of
    its own made by bubblewrap: the rest of the machine is the same for it), as a machine without them."""
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    wrap = ["bwrap", "--dev-bind", "/", "/"] + [a for h in hidden for a in ("--tmpfs", str(h))]
    command = [*(wrap if hidden else []), RAY, "start", "--block", "--node-ip-address=127.0.0.1"]
    command += [f"--num-cpus={cpus}"]
    command += ["--disable-usage-stats", "--object-store-memory=100000000"]
    command += [f"--resources={json.dumps({label: 1})}", *extra]
    log = (temp / f"{label}.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def start_cluster(
    workers: int = 2, timeout_s: float = 120, port: int | None = None, hidden: tuple[Path, ...] = ()
) -> Cluster:
    """A cluster with ``workers`` worker nodes, its head on ``port`` (a free one when not given: a cluster
    started again where one went away gives the port of the one that went); ``hidden``: folders the
    worker nodes do not see."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's sockets live under it
    port = port or free_port()
    cluster = Cluster(f"127.0.0.1:{port}", temp)
    head = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"]
    cluster.nodes["node_a"] = start_node("node_a", head, temp, cpus=0)  # trials never run on the head
    nodes = workers + 1
    deadline = time.time() + timeout_s
    for n, label in enumerate(["node_b", "node_c", "node_d"][:workers]):
        while time.time() < deadline and cluster.alive_nodes() < n + 1:
            time.sleep(1)
        cluster.nodes[label] = start_node(label, [f"--address={cluster.address}"], temp, hidden=hidden)
    while time.time() < deadline and cluster.alive_nodes() < nodes:
        time.sleep(1)
    if cluster.alive_nodes() < nodes:
        logs = "\n".join(
            (temp / f"{label}.log").read_text(errors="replace")[-2000:] for label in cluster.nodes
        )
        cluster.stop()
        raise RuntimeError(f"the Ray cluster did not come up with {nodes} nodes:\n{logs}")
    return cluster
