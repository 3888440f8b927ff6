"""A trial's disk quota: what it may write (its folder, ``work/`` in it, its ``/tmp``), in bytes and files.

Standard library only: the keeper runs it as ``python -I -S diskquota.py release TRIAL_DIR`` when a launch
ends with no orchestrator left to do it.

**The mechanism** (mlops as root, on the local sandbox and on Docker): each launch gets a file system of
the quota's size. A sparse image beside the trial folder (``trials/.N.disk``) is made an ext4 file system
with as many inodes as the quota has files, loop-mounted (``trials/.N.fs``), and its ``trial/`` folder is
bound over the trial folder (``trials/N``) while ``tmp/`` becomes the trial's ``/tmp``. The kernel refuses
the write past the quota (``ENOSPC``): nothing can outrun it, whatever the trial writes and however fast.
A few megabytes of it are reserved for root, so the orchestrator still writes the log's last lines into a
full one. When the launch ends, :func:`release` copies the trial's folder back to the plain folder (work/
included, but not what the trial left in /tmp), unmounts and deletes the image, so the files are where
every reader expects them. A crash in between (of the orchestrator, or a reboot) leaves the image, and
the next :func:`mount` or :func:`release` of that folder copies it back first.

**The fallback** (mlops not root, or no loop device here): :func:`scan` counts what the trial folder
holds every few seconds, and the runtime stops the trial over its quota. A scan can be outrun between two
looks, and /tmp is then a memory file system counted against the memory limit instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
RESERVED_MB = 16  # for root only: the log's last lines and the copy back still fit into a full one
LOW_BYTES = MB  # less free than this for the trial, and its quota is used up
SCAN_S = 2.0  # the fallback's cadence
TMP = "tmp"  # in the file system: the trial's /tmp
TRIAL = "trial"  # in the file system: bound over the trial folder
MKFS = ("mkfs.ext4", "-q", "-F", "-b", "4096", "-I", "256", "-O", "^has_journal")


@dataclass(frozen=True)
class DiskQuota:
    """What one trial may write: ``mb`` megabytes and ``files`` files and folders."""

    mb: int
    files: int

    def describe(self) -> str:
        return f"{self.mb} MB and {self.files} files"


def problem() -> str | None:
    """Why a file system of the quota's size cannot be made here (then the scan stands in), or None."""
    if os.geteuid() != 0:
        return "mlops is not root, so it cannot mount a file system per trial"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: e2fsprogs, mount)"
    if not os.path.exists("/dev/loop-control"):
        return "this machine has no loop devices (/dev/loop-control)"
    return None


def _image(trial_dir: Path) -> Path:
    return trial_dir.parent / f".{trial_dir.name}.disk"


def _mounted_at(trial_dir: Path) -> Path:
    return trial_dir.parent / f".{trial_dir.name}.fs"


def tmp_of(trial_dir: Path) -> Path:
    """The trial's /tmp, inside its file system."""
    return _mounted_at(trial_dir) / TMP


def mounted(trial_dir: Path) -> bool:
    """True while the trial folder is its quota's file system."""
    return os.path.ismount(trial_dir) and os.path.ismount(_mounted_at(trial_dir))


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv[:2])}: {done.stderr.strip() or f'exit code {done.returncode}'}")


def _copy_tree(src: Path, dst: Path, skip: frozenset[str] = frozenset()) -> list[str]:
    """Copy ``src``'s folders, regular files and links (as links, never followed) into ``dst``, each
    with its owner, its time and its permissions but never a set-user-ID, set-group-ID or sticky bit (the
    copy is made by root: a trial's file must not become a root-owned set-user-ID program); what was left
    out (another kind of file, a file with other names: a hard link the trial could have made to a file
    it may not read) is named in the list returned."""
    left: list[str] = []
    for entry in os.scandir(src):
        if entry.name in skip:
            continue
        there = dst / entry.name
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            there.mkdir(mode=0o700, exist_ok=True)
            left += _copy_tree(Path(entry.path), there)
        elif stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(entry.path), there)
        elif stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
            with (
                open(fd, "rb") as source,
                open(os.open(there, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as target,
            ):
                shutil.copyfileobj(source, target, 4 * MB)
        else:
            left.append(entry.path)
            continue
        os.lchown(there, info.st_uid, info.st_gid)
        if not stat.S_ISLNK(info.st_mode):
            os.chmod(there, stat.S_IMODE(info.st_mode) & 0o777 | (0o700 if stat.S_ISDIR(info.st_mode) else 0))
            os.utime(there, ns=(info.st_atime_ns, info.st_mtime_ns))
    return left


def _empty(folder: Path) -> None:
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def mount(trial_dir: Path, quota: DiskQuota, uid: int | None = None) -> None:
    """Make the trial folder a file system of ``quota``'s size, holding what the folder held (``uid``: the
    owner of its /tmp). OSError when it cannot be made (nothing is left mounted then)."""
    release(trial_dir)  # a crash left the last one
    image, at = _image(trial_dir), _mounted_at(trial_dir)
    files = max(64, quota.files)
    size = (quota.mb + RESERVED_MB) * MB + files * 256  # the inode tables come out of it
    reserved = 100.0 * RESERVED_MB * MB / size
    try:
        with open(image, "wb") as fh:
            fh.truncate(size)  # sparse: what is not written takes no room
        _run(*MKFS, "-N", str(files), "-m", f"{reserved:.4f}", "-E", "nodiscard", str(image))
        at.mkdir(exist_ok=True)
        _run("mount", "-o", "loop,nodev,nosuid,noinit_itable", str(image), str(at))
    except OSError:
        image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            at.rmdir()
        raise
    try:
        (at / "lost+found").rmdir()  # one inode more for the trial, and no folder it did not make
        (at / TRIAL).mkdir()
        (at / TMP).mkdir()
        os.chmod(at / TMP, 0o1777)
        if uid is not None:
            os.chown(at / TMP, uid, uid)
        _copy_tree(trial_dir, at / TRIAL)
        _run("mount", "--bind", str(at / TRIAL), str(trial_dir))
    except OSError:
        _unmount(image, at)
        raise


def _unmount(image: Path, at: Path) -> None:
    with contextlib.suppress(OSError):
        _run("umount", "--lazy", str(at))
    with contextlib.suppress(OSError):
        at.rmdir()
    image.unlink(missing_ok=True)


def release(trial_dir: Path, skip: frozenset[str] = frozenset()) -> list[str]:
    """The trial folder plain again, with what the file system held (but ``skip``, names at its top);
    nothing to do when it is not mounted and no image is left. Returns what was not copied back."""
    image, at = _image(trial_dir), _mounted_at(trial_dir)
    if not image.exists() and not os.path.ismount(at):
        return []
    if os.path.ismount(trial_dir):
        _run("umount", "--lazy", str(trial_dir))
    if not os.path.ismount(at):  # a reboot: the image holds the last launch's files
        try:
            at.mkdir(exist_ok=True)
            _run("mount", "-o", "loop,nodev,nosuid,ro", str(image), str(at))
        except OSError:
            _unmount(image, at)
            return [str(image)]
    try:
        _empty(trial_dir)  # what it held before the launch: the file system has it, and newer
        return _copy_tree(at / TRIAL, trial_dir, skip)
    finally:
        _unmount(image, at)


def used(trial_dir: Path) -> tuple[int, int]:
    """Bytes and files (folders included) its file system holds for the trial."""
    fs = os.statvfs(trial_dir)
    return (fs.f_blocks - fs.f_bfree) * fs.f_frsize, fs.f_files - fs.f_ffree


def full(trial_dir: Path, quota: DiskQuota) -> str | None:
    """How the trial's file system is full (said for a person), or None while it has room."""
    try:
        fs = os.statvfs(trial_dir)
    except OSError:
        return None
    if fs.f_bavail * fs.f_frsize >= LOW_BYTES and fs.f_favail > 0:
        return None
    size, count = used(trial_dir)
    return f"it wrote {size // MB} MB in {count} files and folders; its quota is {quota.describe()}"


def scan(trial_dir: Path, quota: DiskQuota) -> str | None:
    """The fallback: what the trial folder holds counted, stopping as soon as it is over ``quota``; how it
    is over (said for a person), or None."""
    size = count = 0
    pending = [str(trial_dir)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            count += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            size += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
            if size > quota.mb * MB or count > quota.files:
                return f"it wrote over {size // MB} MB in over {count} files; its quota is {quota.describe()}"
    return None


def main(argv: list[str]) -> int:
    """``release TRIAL_DIR``: the trial folder plain again; what went over a full quota (its work/) is not
    copied back."""
    if len(argv) != 2 or argv[0] != "release":
        return 2
    trial_dir = Path(argv[1])
    over = mounted(trial_dir) and full(trial_dir, DiskQuota(0, 0)) is not None
    release(trial_dir, frozenset({"work"}) if over else frozenset())
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
