"""A trial container's limits: memory (swap included, so going over is an OOM kill, not a slowdown), CPUs,
processes and threads (``pids_limit``: the container's own cgroup, so one container's fork storm never
starves another), and what it may write.

The engine's own disk limit (``storage_opt size=``) only caps a container's writable layer, which a trial
container does not have (its root file system is read-only), and it needs overlay2 on XFS with project
quotas. So the disk quota is the local runtime's (:mod:`mlops.runtime.diskquota`): the trial folder made a
file system of the quota's size before the container is created, bound in as ``/trial``, and its ``tmp/``
as the container's ``/tmp``; copied back when the container is removed. That needs mlops as root on the
engine's own machine; otherwise ``/tmp`` is a 1 GB memory file system and the trial folder is scanned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops.runtime import diskquota
from mlops.runtime.base import TrialSpec

TMP_SIZE = "1g"  # /tmp when it is a memory file system (no quota file system)


@dataclass
class Quota:
    """A container's disk quota, and whether it is a file system of its own (else its folder is scanned)."""

    quota: diskquota.DiskQuota
    mounted: bool
    scanned: float = 0.0


def quota_of(spec: TrialSpec, uid: int | None, local_engine: bool) -> Quota | None:
    """The trial's quota, its folder made a file system of that size when this machine can (``uid``: the
    container's user, who owns its /tmp). OSError when that fails."""
    limits = spec.limits
    if limits.disk_mb is None and limits.disk_files is None:
        return None
    quota = diskquota.DiskQuota(limits.disk_mb or 1 << 30, limits.disk_files or 1 << 31)
    if not local_engine or diskquota.problem() is not None:
        return Quota(quota, mounted=False)
    diskquota.mount(spec.trial_dir.resolve(), quota, uid)
    return Quota(quota, mounted=True)


def container_limits(spec: TrialSpec, quota: Quota | None) -> dict[str, Any]:
    """docker-py's arguments for the trial's limits, and its /tmp."""
    limits = spec.limits
    kwargs: dict[str, Any] = {}
    if quota is not None and quota.mounted:
        kwargs["volumes"] = {str(diskquota.tmp_of(spec.trial_dir.resolve())): {"bind": "/tmp", "mode": "rw"}}
    else:
        kwargs["tmpfs"] = {"/tmp": f"rw,size={TMP_SIZE}"}
    if limits.memory_mb:
        kwargs["mem_limit"] = f"{limits.memory_mb}m"
        kwargs["memswap_limit"] = f"{limits.memory_mb}m"
    if limits.cpus:
        kwargs["nano_cpus"] = int(limits.cpus * 1e9)
    if limits.pids:
        kwargs["pids_limit"] = limits.pids
    return kwargs


def over_disk(spec: TrialSpec, quota: Quota | None, now: float) -> str | None:
    """How the trial is over its disk quota, or None (the scan: every diskquota.SCAN_S)."""
    if quota is None:
        return None
    if quota.mounted:
        return diskquota.full(spec.trial_dir.resolve(), quota.quota)
    if now - quota.scanned < diskquota.SCAN_S:
        return None
    quota.scanned = now
    return diskquota.scan(spec.trial_dir, quota.quota)
