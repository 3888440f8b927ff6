"""The Ray actor of one launch of a trial, on the node Ray picks: it checks what the node must have (the
trial folder writable, the folders of ``data:``, the checkpoint storage), restores the trial's checkpoints
from storage, starts the harness under the keeper, watches its memory and its disk quota (a scan of its
folder) and stops it. Made remote by ``mlops/runtime/ray_runtime.py``; it runs in mlops's own interpreter on the node, so it may import what
mlops does (pyarrow, for storage), while the harness stays stdlib-only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import ray

from mlops.domain import EndReason
from mlops.runtime.base import open_log
from mlops.runtime.diskquota import SCAN_S, DiskQuota, scan
from mlops_harness.protocol import CHECKPOINT_DIR, LOG_FILE

if TYPE_CHECKING:
    from mlops.runtime.ray_storage import CheckpointSync

KEEPER = Path(__file__).resolve().parent / "keeper.py"
STOP_GRACE_S = 5.0


def _own_group_dying_with_parent() -> None:
    """In the harness's process, before exec: its own process group (killed as one), and a SIGKILL when the
    actor's worker dies (Linux PR_SET_PDEATHSIG): a raylet that dies takes its trials with it, instead of
    leaving a harness that goes on writing into the trial folder a restarted launch now writes."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def missing_data(node: str, data: list[tuple[str, str, bool]]) -> str | None:
    """What this node lacks of the trial's ``data:`` (target, source, writable), or None. On Ray the paths
    are not mounted: the script reads the sources themselves, which must be at the same path on every
    node; a node without one refuses the trial here, rather than the script failing on a missing file."""
    for target, source, writable in data:
        mode = os.R_OK | (os.W_OK if writable else 0) | (os.X_OK if os.path.isdir(source) else 0)
        if not os.path.exists(source):
            lacks = f"has no {source}"
        elif not os.access(source, mode):
            lacks = f"cannot {'write' if writable else 'read'} {source}"
        else:
            continue
        return (
            f"node {node} {lacks}, which data: maps for {target}: the folders of data: must be at the same "
            "path on every node of the cluster (a shared folder every node mounts)"
        )
    return None


class TrialActor:
    """Lives on the node that runs one launch of a trial: starts the harness there, watches its memory."""

    def __init__(
        self,
        job: bytes,
        trial_dir: str,
        memory_mb: int | None,
        data: list[tuple[str, str, bool]],
        storage: tuple[str, str] | None = None,
        quota: tuple[int, int] | None = None,
    ) -> None:
        self.memory_mb = memory_mb
        # The disk quota (MB, files): the trial folder scanned (diskquota.scan; on shared storage, no node
        # can mount a file system of its own for it).
        self.quota = DiskQuota(*quota) if quota else None
        self.scanned = 0.0
        self.stop_reason: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.sync: CheckpointSync | None = None
        folder = self.folder = Path(trial_dir)
        node = ray.get_runtime_context().get_node_id()[:12]
        probe = folder / f".probe-{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            self.error: str | None = (
                f"node {node} cannot write the trial folder {folder} ({e.strerror or e}): put the workspace "
                "on storage every node mounts at the same path"
            )
            return
        self.error = missing_data(node, data)
        if self.error:
            return
        said = self._restore(node, folder, storage) if storage else ""
        if self.error:
            return
        # The keeper (mlops/runtime/keeper.py), as on the local runtime: between the training and its log,
        # it masks the caller's secrets, caps the log, and takes the training with it when it dies.
        log = open_log(folder / LOG_FILE)
        try:
            os.write(log, said.encode())
            self.process = subprocess.Popen(  # noqa: S603 (the keeper is ours; the script runs inside it)
                [sys.executable, "-I", "-S", str(KEEPER), "--trial", str(folder)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                env={},
                cwd=folder,
                preexec_fn=_own_group_dying_with_parent,  # noqa: PLW1509 (only setsid and prctl: async-signal-safe)
            )
        finally:
            os.close(log)
        assert self.process.stdin is not None
        with self.process.stdin:
            self.process.stdin.write(job)
        if self.sync is not None:
            self.sync.start()

    def _restore(self, node: str, folder: Path, storage: tuple[str, str]) -> str:
        """Check that this node can write the checkpoint storage, copy the trial's checkpoints from it into
        the trial's folder, and say so for the log (or set ``error``)."""
        from mlops.runtime.ray_storage import CheckpointSync  # pyarrow: only when storage is set

        uri, key = storage
        sync = CheckpointSync(uri, key, folder / CHECKPOINT_DIR)
        why = sync.check()
        if why is None:
            try:
                restored = sync.restore()
            except OSError as e:
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
        if why is not None:
            self.error = (
                f"node {node} cannot use the checkpoint storage {uri} ({why}): storage must be a location "
                "every node can write"
            )
            return ""
        self.sync = sync
        return f"[mlops] {restored} checkpoint file(s) restored from {uri}\n" if restored else ""

    def started(self) -> tuple[str | None, str, int]:
        """Why it could not start (or None), the node it runs on, the harness's process id."""
        pid = self.process.pid if self.process else 0
        return self.error, ray.get_runtime_context().get_node_id(), pid

    def poll(self) -> tuple[int | None, str | None]:
        """The harness's exit status (None while it runs) and why it was stopped, if it was."""
        if self.process is None:
            return 1, self.stop_reason
        code = self.process.poll()
        if code is None and self.memory_mb is not None and self._rss_mb() > self.memory_mb:
            self.kill(EndReason.OOM.value)
            code = self.process.poll()
        if code is None and self.quota is not None and time.monotonic() - self.scanned > SCAN_S:
            self.scanned = time.monotonic()
            if scan(self.folder, self.quota) is not None:
                self.kill(EndReason.DISK.value)
                code = self.process.poll()
        if code is not None and self.sync is not None:  # its last checkpoints up; none kept after a success
            self.sync.finish(clear=code == 0 and self.stop_reason is None)
            self.sync = None
        return code, self.stop_reason

    def _rss_mb(self) -> float:
        assert self.process is not None
        total = 0
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
        except psutil.Error:
            return 0.0
        return total / (1024 * 1024)

    def kill(self, reason: str) -> None:
        """End the harness's process group: TERM, then KILL after a grace period."""
        self.stop_reason = self.stop_reason or reason
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        deadline = time.time() + STOP_GRACE_S
        while time.time() < deadline and self.process.poll() is None:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
