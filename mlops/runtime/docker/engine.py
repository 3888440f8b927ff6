"""The engine's side of the Docker runtime: the trials' network and cache volumes, the containers of a
workspace, their deaths as the engine reports them, and the cleanup of those a crash left behind."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors

from mlops.runtime.docker.images import Images

CACHE_VOLUME = "mlops-cache"  # the prefix of each repository's cache volume
TRIALS_NETWORK = "mlops-trials"
TRIALS_BRIDGE = "mlops0"  # the host interface of that network, which the firewall rule names
LABEL = "mlops.workspace"


class Engine(Images):
    """The engine verbs of :class:`~mlops.runtime.docker.runtime.DockerRuntime` (``self.client`` is its)."""

    client: docker.DockerClient
    workspace: Path

    def _trials_network(self) -> str:
        """The network of trials with the network on: its own bridge, no traffic between containers."""
        try:
            self.client.networks.get(TRIALS_NETWORK)
        except docker.errors.NotFound:
            with contextlib.suppress(docker.errors.APIError):  # another process made it meanwhile
                self.client.networks.create(
                    TRIALS_NETWORK,
                    driver="bridge",
                    options={
                        "com.docker.network.bridge.name": TRIALS_BRIDGE,
                        "com.docker.network.bridge.enable_icc": "false",
                    },
                    labels={"mlops.network": "trials"},
                )
        return TRIALS_NETWORK

    def _ensure_cache_volume(self, tag: str, name: str, repository: str) -> None:
        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            labels = {"mlops.cache": "datasets", "mlops.repository": repository[:200]}
            volume = self.client.volumes.create(name, labels=labels)
            # Every trial's user (the host's uid, or the images' user) must write the cache: a throwaway
            # root container of the trial's own image opens it, so no other image is needed.
            self.client.containers.run(
                tag,
                ["1777", "/cache"],
                entrypoint=["chmod"],
                user="0:0",
                remove=True,
                volumes={volume.name: {"bind": "/cache", "mode": "rw"}},
                network_mode="none",
            )

    def deaths(self, timeout_s: float) -> list[dict[str, str]]:
        """The ``die`` and ``oom`` events of this workspace's containers in the next ``timeout_s`` seconds."""
        filters = {"type": "container", "event": ["die", "oom"], "label": f"{LABEL}={self.workspace}"}
        seen = []
        until = time.time() + timeout_s
        for event in self.client.events(decode=True, filters=filters, until=int(until) + 1):
            labels = event.get("Actor", {}).get("Attributes", {})
            seen.append(
                {
                    "event": event.get("status") or event.get("Action", ""),
                    "run": labels.get("mlops.run", ""),
                    "trial": labels.get("mlops.trial", ""),
                    "exit": labels.get("exitCode", ""),
                }
            )
            if time.time() >= until:
                break
        return seen

    def containers(self, run_id: str | None = None) -> list[Any]:
        labels = [f"{LABEL}={self.workspace}"] + ([f"mlops.run={run_id}"] if run_id else [])
        filters: dict[str, str | list[str] | bool] = {"label": labels}
        return list(self.client.containers.list(all=True, filters=filters))

    def cleanup(self, keep: set[str]) -> list[str]:
        removed = []
        for container in self.containers():
            name = container.labels.get("mlops.name", "")
            if name in keep:
                continue
            container.remove(force=True)
            removed.append(name)
        return removed
