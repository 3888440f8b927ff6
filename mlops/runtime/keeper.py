"""The keeper: the small process between a local trial and its log file.

The local runtime starts it in a session of its own and hands it the trial's command on standard input
(``marshal``, which costs no import); its standard output is the trial's ``log.txt``. It starts the training (the bubblewrap sandbox, or
the harness itself when unsandboxed) with its output on a pipe, masks the values of the caller's secrets in
whatever the script prints, caps the log (the head and the tail are kept, and it says how much was dropped
between them), and exits with the training's exit status (128 + N for a signal N). Because it does not
belong to the orchestrator's session, the training and its log go on when the orchestrator dies; a new
orchestrator attaches to the keeper by its process id. When the keeper dies, the training dies with it
(bubblewrap's ``--die-with-parent``, or a parent-death signal when unsandboxed). When the training ends
and its orchestrator is gone, the keeper does what the orchestrator would have: the trial's disk quota
file system copied back and unmounted, its control group removed.

Standard library only, and no import of mlops: it runs as ``python -I -S keeper.py``, and the Docker
runtime imports :class:`LogSink` from it to write its logs the same way.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a training's start 2 ms for nothing
    from collections.abc import Sequence
    from typing import Any

MASK = b"********"
DRAIN_S = 0.5  # after the training ended, how long output still coming (escaped children) is read


class LogSink:
    """A training's output to a log file descriptor: secrets masked, the head and the tail kept past a cap.

    ``head`` counts the whole file (a restarted trial appends to what its earlier launches wrote);
    ``tail`` is what is kept of the end once the head is full.
    """

    def __init__(self, fd: int, secrets: Sequence[str], head: int, tail: int) -> None:
        self.fd = fd
        self.secrets = sorted({s.encode("utf-8") for s in secrets if s}, key=len, reverse=True)
        self.head_left = max(0, head - os.fstat(fd).st_size)
        self.tail_max = max(0, tail)
        self.tail = bytearray()
        self.dropped = 0
        self.capped = False
        self.pending = b""

    def _redact(self, data: bytes) -> bytes:
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        return data

    def _holdback(self, data: bytes) -> int:
        """How many bytes at the end could be the start of a secret whose rest has not come yet."""
        keep = 0
        for secret in self.secrets:
            for size in range(min(len(secret) - 1, len(data)), keep, -1):
                if data.endswith(secret[:size]):
                    keep = size
                    break
        return keep

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except OSError:
                return  # a full disk loses log lines, never the training

    def _emit(self, data: bytes) -> None:
        if self.head_left:
            part = data[: self.head_left]
            self._write(part)
            self.head_left -= len(part)
            data = data[len(part) :]
        if not data:
            return
        if not self.capped:
            self.capped = True
            self._write(
                b"\n[mlops] the log is full: what follows is dropped, except its last "
                + str(self.tail_max).encode()
                + b" bytes, written when the training ends\n"
            )
        self.tail += data
        if len(self.tail) > 2 * self.tail_max:
            cut = len(self.tail) - self.tail_max
            self.dropped += cut
            del self.tail[:cut]

    def write(self, data: bytes) -> None:
        data = self._redact(self.pending + data)
        keep = self._holdback(data)
        self.pending = data[len(data) - keep :] if keep else b""
        self._emit(data[: len(data) - keep])

    def close(self) -> None:
        """Write what is held back, and the tail after a line that says how much was dropped."""
        self._emit(self._redact(self.pending))
        self.pending = b""
        if self.capped:
            cut = max(0, len(self.tail) - self.tail_max)
            self.dropped += cut
            del self.tail[:cut]
            self._write(f"\n[mlops] {self.dropped} bytes of output were dropped here (log cap)\n".encode())
            self._write(bytes(self.tail))
            self.tail.clear()


def _spawn(argv: list[str], env: dict[str, str], out: int) -> int:
    """Start ``argv`` in a session of its own with ``out`` as its output; its process id."""
    return os.posix_spawnp(
        argv[0],
        argv,
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, out, 2),
        ],
        setsid=True,
    )


def _limit(job: dict[str, Any]) -> None:
    """The training's CPUs and, when its processes have no control group of their own, its user's."""
    if job.get("cpus"):
        available = sorted(os.sched_getaffinity(0))
        chosen = [core for core in job.get("cores") or [] if core in available]  # the runtime's choice
        os.sched_setaffinity(0, chosen or available[: max(1, int(job["cpus"]))])
    if job.get("nproc"):
        import resource

        resource.setrlimit(resource.RLIMIT_NPROC, (int(job["nproc"]), int(job["nproc"])))


def keep(job: dict[str, Any], log_fd: int = 1) -> int:
    """Run ``job['argv']`` to its end with its output through a LogSink on ``log_fd``; its exit status.

    The training's CPUs (``cpus``, pinned to ``cores`` when the runtime chose them) and, without a control
    group, the process limit of the user it runs as (``nproc``) are set on the keeper and inherited (the
    runtime puts the keeper in the training's control group before it hands it the job); unsandboxed
    (``pdeathsig``) it is started under ``setpriv --pdeathsig`` so it dies with the keeper, as
    bubblewrap's ``--die-with-parent`` makes a sandbox do."""
    sink = LogSink(log_fd, job.get("secrets", []), int(job["head"]), int(job["tail"]))
    _limit(job)
    argv = list(job["argv"])
    if job.get("pdeathsig"):
        argv = ["setpriv", "--pdeathsig", "KILL", "--", *argv]
    read_end, write_end = os.pipe()
    try:
        pid = _spawn(argv, dict(job["env"]), write_end)
    except OSError as e:
        sink.write(f"[mlops] the training could not start: {e}\n".encode())
        sink.close()
        return 127
    finally:
        os.close(write_end)

    def stop(signum: int, frame: object) -> None:
        _signal_group(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    code = _follow(job, pid, read_end, sink)
    _end(pid, sink)
    if os.getppid() != job.get("orchestrator"):  # nobody is there to tidy up after the trial: do it here
        _tidy_up(job)
    return code if code >= 0 else 128 - code


def _follow(job: dict[str, Any], pid: int, read_end: int, sink: LogSink) -> int:
    """The training's output into ``sink`` until it ends (and what escaped it has had DRAIN_S to finish
    writing); its exit status. Started ahead, it ends the training when its orchestrator goes away first."""
    status: list[int] = []

    def ended() -> bool:
        if not status:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status.append(os.waitstatus_to_exitcode(code))
        return bool(status)

    ended_at: float | None = None
    go = job.get("go")  # started ahead: until its trial is given, it ends with the orchestrator
    orchestrator = job.get("orchestrator")  # its parent's pid, said by it: it may be dead by now
    while True:
        ready, _, _ = select.select([read_end], [], [], 0.2)
        if ready:
            data = os.read(read_end, 65536)
            if not data:
                break
            sink.write(data)
        if go and os.path.exists(go):
            go = None
        elif go and os.getppid() != orchestrator:
            go = None
            sink.write(b"[mlops] the orchestrator went away before this trial was given: it ends\n")
            _signal_group(pid, signal.SIGKILL)
        if ended():
            ended_at = ended_at or time.monotonic()
            if time.monotonic() - ended_at > DRAIN_S:
                break  # a child that escaped the training still holds the pipe: stop listening to it
    if not status:  # the output ended; the training is ending (or has closed its output and goes on)
        status.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    return status[0]


def _signal_group(pid: int, signum: int) -> None:
    try:  # noqa: SIM105 (contextlib costs the start of every training an import)
        os.killpg(pid, signum)
    except OSError:
        pass


def _end(pid: int, sink: LogSink) -> None:
    _signal_group(pid, signal.SIGKILL)  # whatever is left of the training's process group
    sink.close()


def _tidy_up(job: dict[str, Any]) -> None:
    """What the orchestrator does after a launch, when it is gone: the trial's disk quota file system
    copied back and unmounted (``release``, the command that does it), and the keeper's own control group
    left and removed (``cgroup``), so a launch nobody comes back for leaves neither behind."""
    release = job.get("release")
    if release:
        try:  # noqa: SIM105
            os.waitpid(os.posix_spawn(release[0], list(release), {}), 0)
        except OSError:
            pass
    group = job.get("cgroup")
    if group:
        try:
            with open(os.path.join(os.path.dirname(os.path.dirname(group)), "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
            os.rmdir(group)
        except OSError:
            pass


def main() -> int:
    job = marshal.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    return keep(job)


if __name__ == "__main__":
    sys.exit(main())
