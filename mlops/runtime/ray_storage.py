"""The checkpoints of Ray trials in a location every node reaches (the ``storage`` setting): a folder path
(a shared mount), or an object-store URI that ``pyarrow.fs`` opens (``s3://bucket/prefix``, ``gs://...``,
``file:///...``).

It runs in a trial's Ray actor, on the node, in mlops's own interpreter (the harness stays stdlib-only):
before the harness starts, the trial's checkpoints held in storage are copied into its checkpoint folder,
so it resumes from them on a node that never saw that folder or after the folder lost them; while it
runs, every new or changed checkpoint file goes up (a poll), and once more when it ends; a checkpoint the
harness drops (it keeps the last two) is dropped from storage too. A checkpoint's ``meta.json`` goes up
after its weights: the harness reads a checkpoint only with it, so one half uploaded when its node died is
skipped for the one before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from mlops import trial_files
from mlops.errors import ConfigError

SYNC_EVERY_S = 2.0
MAX_CHECKPOINT_BYTES = 2**40  # a checkpoint is as large as its model: no cap below the disk
LAST = "meta.json"  # written last: the mark of a whole checkpoint


def open_storage(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the base path of ``uri``: a URI pyarrow knows, or a folder of this machine."""
    if urlsplit(uri).password is not None:  # it would be shown in logs and recorded with the run
        raise ConfigError(
            "setting storage: a URI with a password is refused: give the object store's credentials to "
            "the nodes' environment (AWS_ACCESS_KEY_ID, ...), where pyarrow reads them"
        )
    try:
        if "://" in uri:
            fs, path = pafs.FileSystem.from_uri(uri)
        else:
            fs, path = pafs.LocalFileSystem(), os.path.abspath(uri)
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError, its IO errors OSErrors
        raise ConfigError(f"setting storage: cannot use {uri!r}: {e}") from e
    return fs, str(path).rstrip("/")


def _hidden(rel: str) -> bool:
    """A file of a checkpoint being written (``.tmp-ckpt-...``) or of ours (``.probe-...``)."""
    return any(part.startswith(".") for part in rel.split("/"))


class CheckpointSync:
    """The checkpoint folder ``local`` of one trial, mirrored at ``key`` under ``uri``."""

    def __init__(self, uri: str, key: str, local: Path) -> None:
        self.uri = uri
        self.fs, base = open_storage(uri)
        self.remote = f"{base}/{key}"
        self.local = local
        self.sent: dict[str, tuple[int, int]] = {}  # what storage holds: path -> (size, mtime_ns) here
        self.failure: str | None = None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def check(self) -> str | None:
        """Why this node cannot write the storage, or None when it can."""
        probe = f"{self.remote}/.probe-{os.getpid()}"
        try:
            self.fs.create_dir(self.remote, recursive=True)
            with self.fs.open_output_stream(probe) as out:
                out.write(b"ok")
            self.fs.delete_file(probe)
        except OSError as e:
            return str(e).splitlines()[0] if str(e) else type(e).__name__
        return None

    def restore(self) -> int:
        """Copy what storage holds of the trial into the checkpoint folder; how many files."""
        selector = pafs.FileSelector(self.remote, allow_not_found=True, recursive=True)
        files = [i for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File]
        files.sort(key=lambda i: i.base_name == LAST)
        copied = 0
        for info in files:
            rel = info.path[len(self.remote) + 1 :]
            if _hidden(rel):
                continue
            dest = self.local / rel
            if not (dest.is_file() and dest.stat().st_size == info.size):
                dest.parent.mkdir(parents=True, exist_ok=True)
                part = dest.with_name(f".part-{dest.name}")
                with self.fs.open_input_stream(info.path) as src, part.open("wb") as out:
                    shutil.copyfileobj(src, out)
                os.replace(part, dest)
                copied += 1
            st = dest.stat()
            self.sent[rel] = (st.st_size, st.st_mtime_ns)
        return copied

    def push(self) -> None:
        """Send what changed in the checkpoint folder since the last push; drop what it no longer has."""
        here: dict[str, tuple[int, int]] = {}
        trial, folder = self.local.parent, self.local.name
        for found in trial_files.regular_files(trial, folder):  # the trial wrote them: no link followed
            rel = found.removeprefix(folder + "/")
            with contextlib.suppress(OSError):  # the harness dropped it meanwhile
                if not _hidden(rel):
                    st = os.lstat(trial / found)
                    here[rel] = (st.st_size, st.st_mtime_ns)
        changed = sorted(
            (rel for rel in here if self.sent.get(rel) != here[rel]), key=lambda r: r.endswith(LAST)
        )
        for rel in changed:
            try:
                fd = trial_files.open_regular(self.local, rel, cap=MAX_CHECKPOINT_BYTES)
            except trial_files.BadTrialFile:
                continue  # a link or anything else in its place: never sent
            if fd is None:
                continue  # dropped by the harness while it went up
            with open(fd, "rb") as src:
                self.fs.create_dir(f"{self.remote}/{rel}".rpartition("/")[0], recursive=True)
                with self.fs.open_output_stream(f"{self.remote}/{rel}") as out:
                    shutil.copyfileobj(src, out)
            self.sent[rel] = here[rel]
        gone = [rel for rel in self.sent if rel not in here]
        for rel in sorted(gone, key=lambda r: not r.endswith(LAST)):  # its mark first
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_file(f"{self.remote}/{rel}")
            del self.sent[rel]
        for folder in {rel.rpartition("/")[0] for rel in gone} - {rel.rpartition("/")[0] for rel in here}:
            if folder and not (self.local / folder).exists():
                with contextlib.suppress(OSError):
                    self.fs.delete_dir(f"{self.remote}/{folder}")

    def _push_said(self) -> None:
        try:
            self.push()
            self.failure = None
        except OSError as e:  # storage out of reach for a while: the next push tries again
            self.failure = str(e).splitlines()[0] if str(e) else type(e).__name__

    def start(self) -> None:
        def loop() -> None:
            while not self.stopping.wait(SYNC_EVERY_S):
                self._push_said()

        self.thread = threading.Thread(target=loop, daemon=True, name="checkpoint-sync")
        self.thread.start()

    def finish(self, clear: bool) -> None:
        """The last push, once the harness has ended; ``clear``: it ended for good, storage keeps nothing."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=60)
            self.thread = None
        if clear:
            with contextlib.suppress(OSError):
                self.fs.delete_dir(self.remote)
            return
        self._push_said()
