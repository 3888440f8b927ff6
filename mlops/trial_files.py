"""The one reader of what a trial left in its folder: every file mlops reads back from a trial goes through
here, on every runtime (the sandbox, plain processes, a container, a Ray actor).

A trial's folder is written by someone else's code, which may put a link, a hard link, a pipe or a folder
where a file should be, or a file far larger than any the harness writes. So a name is opened one component
at a time from the folder's own descriptor, each with ``O_NOFOLLOW`` (a link anywhere on the way is refused,
never followed), the end must be a regular file, a file mlops publishes or copies must have no other name
(``st_nlink == 1``), and every file has a size cap. What is refused raises :class:`BadTrialFile`, which is
that trial's failure (its class and hint), never mlops's: the message names what the trial's folder holds
and never depends on anything outside it, so it tells a trial nothing about the machine.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from mlops.errors import MlopsError
from mlops.layout import FILES, PARAMS, SOURCE, TRIAL_INPUTS
from mlops_harness.protocol import CHECK_FILE, EVENTS_FILE, INPUTS_FILE, METRICS_FILE, OUTCOME_FILE

# What the orchestrator writes into a trial's folder before a launch: the training may read them, never
# change them (mounted read-only by the sandbox and the container).
INPUTS = TRIAL_INPUTS

KB = 1024
MB = 1024 * KB
# The largest file of each kind mlops reads back: far above what the harness writes, far below memory.
CAPS = {
    METRICS_FILE: 16 * MB,
    OUTCOME_FILE: 4 * MB,
    EVENTS_FILE: 64 * MB,
    CHECK_FILE: 1 * MB,
    PARAMS: 1 * MB,
    INPUTS_FILE: 1 * MB,
    SOURCE: 16 * MB,
}
DEFAULT_CAP = 16 * MB
TAIL_BYTES = 64 * KB  # of a log, the end that is read to quote its last lines

HINT = (
    "mlops reads back only what the harness writes in the trial's folder, as it writes it: the script put "
    "something else there (a link, a hard link, a file of another kind or size, or a record of another "
    "type), so the trial's result cannot be trusted"
)


class BadTrialFile(MlopsError):
    """A file a trial left is not what the protocol says it is: a link, not a regular file, too large, or
    a record of the wrong type. ``name`` is its path in the trial's folder."""

    hint = HINT

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name} in the trial's folder {why}")
        self.name = name
        self.why = why


def _parts(name: str | PurePosixPath) -> tuple[str, ...]:
    path = PurePosixPath(name)
    parts = path.parts
    if path.is_absolute() or not parts or any(p in ("..", ".") for p in parts) or "\0" in str(path):
        raise BadTrialFile(str(name), "is not a path inside the trial's folder")
    return parts


def open_regular(folder: Path, name: str, cap: int | None = None, single: bool = False) -> int | None:
    """A descriptor of the regular file ``name`` (a relative path) in ``folder``, read-only, or None when
    there is no such file. Never through a link: each component is opened from the one before it with
    ``O_NOFOLLOW``. ``single``: the file must have no other name (it is about to be published or copied).
    Raises BadTrialFile for anything else."""
    parts = _parts(name)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        for part in parts[:-1]:
            inner = _open_at(fd, part, name, os.O_RDONLY | os.O_DIRECTORY)
            os.close(fd)
            fd = inner
            if fd < 0:
                return None
        found = _open_at(fd, parts[-1], name, os.O_RDONLY | os.O_NONBLOCK)
    finally:
        if fd >= 0:
            os.close(fd)
    if found < 0:
        return None
    try:
        _check(os.fstat(found), name, cap, single)
        os.set_blocking(found, True)
    except BaseException:
        os.close(found)
        raise
    return found


def _open_at(dir_fd: int, part: str, name: str, flags: int) -> int:
    """``part`` opened in the folder ``dir_fd`` without following a link; -1 when it does not exist."""
    try:
        return os.open(part, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return -1
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            if part == PurePosixPath(name).name:
                raise BadTrialFile(name, "is a link; mlops never follows it") from None
            raise BadTrialFile(name, f"lies under a link ({part}); mlops never follows it") from None
        if e.errno == errno.ENOTDIR:
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    raise BadTrialFile(name, f"lies under a link ({part}); mlops never follows it") from None
            raise BadTrialFile(name, f"lies under {part}, which is not a folder") from None
        raise BadTrialFile(name, f"cannot be opened ({e.strerror})") from None


def _check(st: os.stat_result, name: str, cap: int | None, single: bool) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise BadTrialFile(name, "is not a regular file")
    if single and st.st_nlink != 1:
        raise BadTrialFile(
            name, f"has {st.st_nlink} names (a hard link); mlops copies only a file of its own"
        )
    limit = CAPS.get(PurePosixPath(name).name, DEFAULT_CAP) if cap is None else cap
    if st.st_size > limit:
        raise BadTrialFile(name, f"is {st.st_size} bytes, more than the {limit} such a file may be")


def read_bytes(folder: Path, name: str, cap: int | None = None, single: bool = False) -> bytes | None:
    """The bytes of the regular file ``name`` in ``folder`` (None: there is none); see :func:`open_regular`."""
    fd = open_regular(folder, name, cap, single)
    if fd is None:
        return None
    limit = CAPS.get(PurePosixPath(name).name, DEFAULT_CAP) if cap is None else cap
    with open(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise BadTrialFile(name, f"is more than the {limit} bytes such a file may be")
    return data


def read_text(folder: Path, name: str, cap: int | None = None) -> str | None:
    """The UTF-8 text of ``name`` in ``folder`` (None: there is none)."""
    data = read_bytes(folder, name, cap)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadTrialFile(name, f"is not UTF-8 text (byte {e.start})") from None


def read_json(folder: Path, name: str, cap: int | None = None) -> object | None:
    """The JSON value in ``name`` (None: there is no such file); BadTrialFile when it is not JSON."""
    text = read_text(folder, name, cap)
    if text is None:
        return None
    try:
        value: object = json.loads(text)
    except ValueError as e:
        raise BadTrialFile(name, f"is not JSON ({e})") from None
    return value


def tail(folder: Path, name: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a log in ``folder``; "" when it is missing or not a plain file (a log is
    only ever quoted, so what cannot be read is left out)."""
    try:
        fd = open_regular(folder, name, cap=2**62)
    except BadTrialFile:
        return ""
    if fd is None:
        return ""
    with open(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - TAIL_BYTES))
        text = fh.read(TAIL_BYTES).decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def stat_regular(
    folder: Path, name: str, cap: int | None = None, single: bool = False
) -> os.stat_result | None:
    """What :func:`open_regular` checks, without reading: the file's status, or None when it is missing."""
    fd = open_regular(folder, name, cap, single)
    if fd is None:
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def size(folder: Path, name: str) -> int:
    """The size of the regular file ``name`` in ``folder`` (0 when it is missing or not one); no link
    followed."""
    try:
        found = stat_regular(folder, name, cap=2**62)
    except BadTrialFile:
        return 0
    return found.st_size if found is not None else 0


def copy_out(folder: Path, name: str, dest: Path, length: int, sha256: str) -> bool:
    """Copy the regular file ``name`` of the trial's folder to ``dest`` (a new file, replaced whole), when
    it is exactly ``length`` bytes whose sha256 is ``sha256``. False when there is no such file; BadTrialFile
    when it is a link, has other names, or is not those bytes. Never a link: the copy is mlops's own."""
    fd = open_regular(folder, name, cap=2**62, single=True)
    if fd is None:
        return False
    if os.fstat(fd).st_size != length:
        os.close(fd)
        raise BadTrialFile(name, "is not the file the harness saved (its size or sha256 differs)")
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    digest = hashlib.sha256()
    copied = 0
    try:
        with (
            open(fd, "rb") as src,
            open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as out,
        ):
            for block in iter(lambda: src.read(1 << 20), b""):
                copied += len(block)
                if copied > length:
                    break
                digest.update(block)
                out.write(block)
        if copied != length or digest.hexdigest() != sha256:
            raise BadTrialFile(name, "is not the file the harness saved (its size or sha256 differs)")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def regular_files(folder: Path, under: str) -> Iterator[str]:
    """The paths (relative to ``folder``) of the regular files under the folder ``under``; links and what
    lies under them left out, never followed."""
    try:
        top = _parts(under)
    except BadTrialFile:
        return
    start = folder.joinpath(*top)
    try:
        if not stat.S_ISDIR(os.lstat(start).st_mode) or any(
            os.path.islink(folder.joinpath(*top[:n])) for n in range(1, len(top))
        ):
            return  # a link in place of the folder (or above it): nothing under it is the trial's
    except OSError:
        return
    for root, dirs, files in os.walk(start):  # os.walk does not follow links to folders below it
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for file in files:
            path = Path(root, file)
            with contextlib.suppress(OSError):
                if stat.S_ISREG(path.lstat().st_mode):
                    yield path.relative_to(folder).as_posix()


def inputs_of(folder: Path, source: Path | None = None) -> tuple[Path, ...]:
    """The inputs mlops wrote into the trial's folder (see INPUTS; ``source``: the trial's source when it
    has another name) that are there, for a runtime to mount read-only over the folder. Only regular files
    and folders: a runtime binds what a path leads to, so a link in their place (which the reader refuses)
    is never given to it."""
    found: list[Path] = []
    for name in dict.fromkeys([*((source.relative_to(folder).as_posix(),) if source else ()), *INPUTS]):
        with contextlib.suppress(OSError):
            mode = os.lstat(folder / name).st_mode
            if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                found.append(folder / name)
    return tuple(found)


def check_inputs(folder: Path) -> None:
    """The trial's inputs are as mlops wrote them: regular files with one name each, the folder of copies a
    folder of such files; BadTrialFile for a link or anything else in their place."""
    for name in INPUTS:
        if name == FILES:
            _check_copies(folder)
        else:
            stat_regular(folder, name, single=True)


def _check_copies(folder: Path) -> None:
    copies = folder / FILES
    if not os.path.lexists(copies):
        return
    if not stat.S_ISDIR(os.lstat(copies).st_mode):
        raise BadTrialFile(FILES, "is not a folder")
    for root, dirs, files in os.walk(copies):
        for entry in dirs + files:
            name = Path(root, entry).relative_to(folder).as_posix()
            mode = os.lstat(Path(root, entry)).st_mode
            if entry in dirs and not stat.S_ISDIR(mode):
                raise BadTrialFile(name, "is a link; mlops never follows it")
            if entry in files:
                stat_regular(folder, name, single=True)


def copy_inputs(folder: Path, to: Path) -> None:
    """The trial's inputs (see INPUTS) copied from ``folder`` to the new trial folder ``to``, each read as
    :func:`check_inputs` checks it (BadTrialFile for a link or anything else in their place)."""
    check_inputs(folder)
    names = [name for name in INPUTS if name != FILES] + list(regular_files(folder, FILES))
    for name in names:
        data = read_bytes(folder, name, single=True)
        if data is None:
            continue
        dest = to.joinpath(*_parts(name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.unlink(missing_ok=True)
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as out:
            out.write(data)
        os.replace(tmp, dest)
