"""The disk quota's file system (mlops/runtime/diskquota.py), and the process limit's control group
(mlops/runtime/cgroup.py), on this machine's kernel: made, enforced, given back, and recovered after a
crash. The trials that hit them are in tests/security/test_limits.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.runtime import cgroup, diskquota

QUOTA = diskquota.DiskQuota(mb=32, files=200)


def as_nobody(folder: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run as the trials' user, as the sandbox runs a training, given ``folder`` as the open
    folder ``D`` (file descriptor 3: the folders above it are not the trial's to walk through)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
             f"import os\nD = {fd}\n{script}"],
            capture_output=True,
            text=True,
            timeout=60,
            pass_fds=(fd,),
        )  # fmt: skip
    finally:
        os.close(fd)


@pytest.fixture
def trial_dir(tmp_path: Path):
    folder = tmp_path / "trials" / "0"
    folder.mkdir(parents=True)
    (folder / "source.py").write_text("print('hi')\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "fit0.keras").write_bytes(b"weights" * 1000)
    yield folder
    diskquota.release(folder)


def test_the_quota_is_a_file_system_of_its_size_holding_what_the_folder_held(trial_dir: Path):
    assert diskquota.problem() is None, diskquota.problem()  # this machine can: root, mkfs, loop devices
    diskquota.mount(trial_dir, QUOTA, uid=65534)
    assert diskquota.mounted(trial_dir)
    assert (trial_dir / "source.py").read_text() == "print('hi')\n"
    assert (trial_dir / "checkpoints" / "fit0.keras").read_bytes() == b"weights" * 1000
    os.chown(trial_dir, 65534, 65534)
    fill = (
        "fd = os.open('big', os.O_WRONLY | os.O_CREAT, dir_fd=D)\n"
        "for _ in range(64):\n    os.write(fd, b'x' * 2**20)"
    )
    done = as_nobody(trial_dir, fill)
    assert "No space left on device" in done.stderr
    assert diskquota.full(trial_dir, QUOTA) is not None
    assert (trial_dir / "big").stat().st_size < 33 * 2**20  # what the kernel let it write


def test_files_past_the_quota_are_refused(trial_dir: Path):
    diskquota.mount(trial_dir, QUOTA, uid=65534)
    os.chown(trial_dir, 65534, 65534)
    done = as_nobody(trial_dir, "for i in range(1000):\n    os.close(os.open(f'f{i}', os.O_CREAT, dir_fd=D))")
    assert "No space left on device" in done.stderr
    made = len(list(trial_dir.iterdir()))
    assert 150 < made < 400, made  # the quota's 200 files, as ext4 rounds its inode count
    assert diskquota.full(trial_dir, QUOTA) is not None


def test_release_copies_the_folder_back_without_following_what_the_trial_planted(trial_dir: Path, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    diskquota.mount(trial_dir, QUOTA, uid=65534)
    (trial_dir / "metrics.json").write_text('{"value": 0.9}')
    (trial_dir / "link").symlink_to(secret)
    os.mkfifo(trial_dir / "pipe")
    (trial_dir / "escalate").write_text("#!/bin/sh\nid\n")
    os.chown(trial_dir / "escalate", 65534, 65534)
    os.chmod(trial_dir / "escalate", 0o6755)  # as the trial's user may on its own file
    left = diskquota.release(trial_dir)
    assert not diskquota.mounted(trial_dir) and not os.path.ismount(trial_dir)
    assert (trial_dir / "metrics.json").read_text() == '{"value": 0.9}'
    copied = (trial_dir / "escalate").stat()
    assert copied.st_uid == 65534 and copied.st_mode & 0o7777 == 0o755  # its owner's, never set-user-ID
    assert (trial_dir / "link").is_symlink() and os.readlink(trial_dir / "link") == str(secret)
    assert not (trial_dir / "pipe").exists() and left == [str(trial_dir.parent / ".0.fs/trial/pipe")]
    assert sorted(p.name for p in trial_dir.parent.iterdir()) == ["0"]  # no image, no mount point left


def test_a_hard_link_to_a_host_file_is_not_copied_into_the_quota(trial_dir: Path, tmp_path):
    host = tmp_path / "host-only.txt"
    host.write_text("root's file")
    os.link(host, trial_dir / "planted")  # as a trial on the host's file system could have, before
    diskquota.mount(trial_dir, QUOTA, uid=65534)
    assert not (trial_dir / "planted").exists()


def test_a_crash_leaves_the_image_and_the_next_release_recovers_its_files(trial_dir: Path):
    diskquota.mount(trial_dir, QUOTA, uid=65534)
    (trial_dir / "events.jsonl").write_text('{"event": "epoch"}\n')
    at = trial_dir.parent / ".0.fs"
    subprocess.run(["umount", str(trial_dir)], check=True)  # a reboot: nothing is mounted any more
    subprocess.run(["umount", str(at)], check=True)
    assert not (trial_dir / "events.jsonl").exists()
    diskquota.release(trial_dir)
    assert (trial_dir / "events.jsonl").read_text() == '{"event": "epoch"}\n'
    assert not (trial_dir.parent / ".0.disk").exists()


def test_what_went_over_is_left_out_of_the_copy_back(trial_dir: Path):
    diskquota.mount(trial_dir, QUOTA, uid=65534)
    (trial_dir / "work").mkdir()
    (trial_dir / "work" / "junk.bin").write_bytes(b"x" * 2**20)
    diskquota.release(trial_dir, skip=frozenset({"work"}))
    assert not (trial_dir / "work").exists() and (trial_dir / "source.py").exists()


def test_a_trials_control_group_limits_its_processes_and_no_one_elses():
    group = cgroup.make(f"test-{os.getpid()}", pids=8)
    assert group is not None, "a pids control group can be made here (root, cgroup v1 or v2 with pids)"
    try:
        storm = (
            "import os, time\n"
            "for i in range(100):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            os.closerange(0, 64); time.sleep(30); os._exit(0)\n"
            "    except OSError:\n"
            "        print('refused at', i, flush=True); break\n"
        )
        reader, writer = os.pipe()
        proc = subprocess.Popen([sys.executable, "-c", f"import os; os.read({reader}, 1)\n{storm}"],
                                pass_fds=(reader,), stdout=subprocess.PIPE, text=True)  # fmt: skip
        group.add(proc.pid)  # inside before it forks, as the keeper is
        os.write(writer, b"x")
        out, _ = proc.communicate(timeout=60)
        assert "refused at" in out and int(out.split()[-1]) <= 8 + cgroup.OVERHEAD
        assert group.refused() >= 1
        outside = subprocess.run([sys.executable, "-c", "import threading; print('ok')"], capture_output=True)
        assert outside.returncode == 0  # the rest of the machine is not counted
    finally:
        assert group.remove()
    assert not group.folder.exists()
