"""What a local trial is started with: its environment, its sandbox, its command line, and its limits'
means (a file system of its quota's size, a control group for its processes) when this machine has them.
:class:`~mlops.runtime.local.LocalRuntime` builds on it to start, watch and end trials.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops.config import read_environment
from mlops.datasets import imported_store
from mlops.envsafe import Redactor, trial_env
from mlops.errors import RuntimeUnavailable, TrialLaunchError
from mlops.layout import repository_caches
from mlops.runtime import cgroup, diskquota, sandbox
from mlops.runtime.ahead import wait_s as ahead_wait_s
from mlops.runtime.base import LOG_HEAD_BYTES, LOG_TAIL_BYTES, TrialSpec, cache_env, repository_cache
from mlops.runtime.data import mounts
from mlops.runtime.local_watch import HARNESS
from mlops.trial_files import inputs_of
from mlops_harness.protocol import ENV_DATASETS, GO_FILE, LOG_FILE

DISKQUOTA = Path(__file__).resolve().parent / "diskquota.py"  # run by the keeper, see keeper._tidy_up


class LocalSetup:
    """What the local runtime starts a trial with; :class:`~mlops.runtime.local.LocalRuntime` starts it."""

    def __init__(
        self,
        workspace: Path | None = None,
        python: str | None = None,
        *,
        sandboxed: bool = True,
        caller_env: Mapping[str, str] | None = None,
    ) -> None:
        self.workspace = workspace.resolve() if workspace else None
        self.python = python or sys.executable
        # The caller's environment, read once (mlops/config.py) unless given.
        self.caller_env = dict(read_environment().variables if caller_env is None else caller_env)
        self.redact = Redactor.from_env(self.caller_env)
        self.as_root = os.geteuid() == 0
        self.bwrap: str | None = None
        self.python_roots: tuple[Path, ...] = ()
        self.identity: Path | None = None  # the sandbox's passwd and group
        if sandboxed:
            bwrap = sandbox.find_bwrap()
            why = sandbox.problem(bwrap, self.as_root)
            if why is not None:
                raise RuntimeUnavailable(
                    f"the local runtime runs every trial in a sandbox, but {why}; "
                    "or run with --runtime local --unsandboxed to run trials as plain processes"
                )
            self.bwrap = bwrap
            self.python_roots = sandbox.python_roots(self.python)
            self.identity = sandbox.identity_dir(self.as_root)
        # The trial's own limits: a file system of its quota's size (else its folder scanned), a control
        # group for its processes (else RLIMIT_NPROC, which counts every process of its user).
        self.quota_fs = self.sandboxed and diskquota.problem() is None
        self.groups = cgroup.base() is not None
        self._prefix = hashlib.sha256(str(self.workspace).encode()).hexdigest()[:10]

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def describe(self) -> str:
        if not self.sandboxed:
            return "local processes, unsandboxed: trials can read and write what this user can"
        who = f"as uid {sandbox.TRIAL_UID}" if self.as_root else "as this user, in a user namespace"
        disk = (
            "a file system of its own"
            if self.quota_fs
            else f"its folder scanned every {diskquota.SCAN_S:g} s"
        )
        pids = "its own cgroup" if self.groups else "RLIMIT_NPROC, per user"
        return f"local processes in a bubblewrap sandbox ({who}; disk quota: {disk}; processes: {pids})"

    # -- launching ------------------------------------------------------------------------------------

    def cache_dir(self, spec: TrialSpec) -> Path:
        return repository_cache(repository_caches(self.workspace, spec.trial_dir), spec)

    def _environment(self, spec: TrialSpec, cache: Path) -> dict[str, str]:
        home = "/tmp" if self.sandboxed else self.caller_env.get("HOME", "/tmp")  # noqa: S108 (private)
        own = {
            "PATH": f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": "/tmp" if self.sandboxed else self.caller_env.get("TMPDIR", "/tmp"),  # noqa: S108
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg",
            **cache_env(cache),
        }
        if "TF_CPP_MIN_LOG_LEVEL" not in self.caller_env:
            own["TF_CPP_MIN_LOG_LEVEL"] = "2"
        store = imported_store(self.workspace)
        if store is not None:
            own[ENV_DATASETS] = str(store)
        if spec.limits.cpus:
            threads = str(max(1, int(spec.limits.cpus)))
            own.update(OMP_NUM_THREADS=threads, TF_NUM_INTRAOP_THREADS=threads)
        return trial_env(self.caller_env, spec.env, own)

    def _roots(self, spec: TrialSpec) -> tuple[Path, ...]:
        """What the trial's interpreter needs to see: this one's install, and the run's environment's."""
        if not spec.python or spec.python == self.python:
            return self.python_roots
        return (*self.python_roots, *sandbox.python_roots(spec.python))

    def sandbox_for(self, spec: TrialSpec, cache: Path, ahead: bool = False) -> sandbox.Sandbox:
        """What the trial may see and touch (the sandbox must be available). Started ahead, its source is
        written after the sandbox is made, so it cannot be mounted read-only: it is checked afterwards."""
        assert self.bwrap is not None
        trial_dir, code, source = (
            spec.trial_dir.resolve(),
            spec.code_dir.resolve(),
            spec.source_file.resolve(),
        )
        inside = source.is_relative_to(trial_dir)
        kept = () if ahead else inputs_of(trial_dir, source if inside else None)  # read-only inputs
        store = imported_store(self.workspace)
        return sandbox.Sandbox(
            bwrap=self.bwrap,
            read_only=(
                *self._roots(spec),
                HARNESS,
                code,
                *(() if inside else (source,)),
                *((store,) if store else ()),
            ),
            writable=(trial_dir, cache),
            protected=(trial_dir / LOG_FILE, *kept),
            network=spec.network,
            tmp_mb=spec.limits.memory_mb or 1024,
            tmp=diskquota.tmp_of(trial_dir) if diskquota.mounted(trial_dir) else None,
            uid=sandbox.TRIAL_UID if self.as_root else None,
            workdir=trial_dir,
            mapped=tuple((src, Path(at), rw) for src, at, rw in mounts(spec)),
            identity=self.identity,
        )

    def _command(self, spec: TrialSpec, cache: Path, ahead: bool = False) -> list[str]:
        trial_dir, code, source = (
            spec.trial_dir.resolve(),
            spec.code_dir.resolve(),
            spec.source_file.resolve(),
        )
        harness = [spec.python or self.python, str(HARNESS)]  # the run's environment's, when it has one
        harness += spec.harness_args(code=str(code), source=str(source), out=str(trial_dir))
        if ahead:
            harness += ["--wait-for", str(trial_dir / GO_FILE), "--wait-s", f"{ahead_wait_s(spec):g}"]
        if self.bwrap is None:
            return harness
        return sandbox.bwrap_argv(self.sandbox_for(spec, cache, ahead), harness)

    def _hand_over(self, spec: TrialSpec, cache: Path) -> None:
        """When mlops runs as root the training runs as nobody: it gets its trial folder and its cache."""
        if not (self.sandboxed and self.as_root):
            return
        uid = gid = sandbox.TRIAL_UID
        for top in (spec.trial_dir, cache):
            os.lchown(top, uid, gid)
            for root, dirs, files in os.walk(top):
                for name in dirs + files:
                    os.lchown(os.path.join(root, name), uid, gid)

    def _job(self, spec: TrialSpec, cache: Path, ahead: bool) -> dict[str, Any]:
        """What the keeper is handed (see keeper.py), but for its limits (``_job_limits``)."""
        return {
            "argv": self._command(spec, cache, ahead),
            "env": self._environment(spec, cache),
            "cwd": str(spec.trial_dir.resolve()),
            "secrets": list(self.redact.secrets),
            "head": LOG_HEAD_BYTES,
            "tail": LOG_TAIL_BYTES,
            "cpus": math.ceil(spec.limits.cpus) if spec.limits.cpus else None,
            "pdeathsig": not self.sandboxed,
            "go": str(spec.trial_dir.resolve() / GO_FILE) if ahead else None,
            "orchestrator": os.getpid(),
        }

    def _job_limits(self, spec: TrialSpec, group: cgroup.TrialGroup | None, mounted: bool) -> dict[str, Any]:
        """The keeper's part of the trial's limits: RLIMIT_NPROC when its processes have no control group,
        and what it does when the launch ends with no orchestrator left (the group, the quota)."""
        trial = str(spec.trial_dir.resolve())
        return {
            "nproc": spec.limits.pids if (group is None and self.sandboxed and self.as_root) else None,
            "cgroup": str(group.folder) if group else None,
            "release": [self.python, "-I", "-S", str(DISKQUOTA), "release", trial] if mounted else None,
        }

    def _quota(self, spec: TrialSpec) -> tuple[diskquota.DiskQuota | None, bool]:
        """The trial's disk quota, and whether its folder is now a file system of that size (else the
        folder is scanned)."""
        limits = spec.limits
        if limits.disk_mb is None and limits.disk_files is None:
            return None, False
        quota = diskquota.DiskQuota(limits.disk_mb or 1 << 30, limits.disk_files or 1 << 31)
        if not self.quota_fs:
            return quota, False
        try:
            diskquota.mount(spec.trial_dir.resolve(), quota, sandbox.TRIAL_UID)
        except OSError as e:
            raise TrialLaunchError(spec.name, f"its disk quota could not be made: {e}") from e
        return quota, True

    def _group(self, spec: TrialSpec, keeper: int) -> cgroup.TrialGroup | None:
        """The keeper in a control group of its own, limited to the trial's processes (None: no limit
        here, or the groups cannot be made: RLIMIT_NPROC then)."""
        if not self.groups or not spec.limits.pids:
            return None
        group = cgroup.make(f"{self._prefix}-{keeper}", spec.limits.pids)
        if group is None:
            return None
        try:
            group.add(keeper)
        except OSError:
            group.remove()
            return None
        return group
