"""The data sets of a machine: files imported once (``mlops datasets import``), read by every trial.

Trials download into the dataset cache of their repository (one repository's trials never see what
another's downloaded). Beside those caches, the workspace holds a store of imported data sets,
``datasets/<kind>/<name>``, that every trial of every repository sees read-only: the runtime mounts it (the
bubblewrap sandbox at its own path, a container at ``/datasets``) and names it in ``MLOPS_DATASETS``, and the
harness links each file into the trial's cache at the path its library looks in (``DATASET_HOMES``:
Keras's ``$KERAS_HOME/datasets/``, scikit-learn's ``$SCIKIT_LEARN_DATA``, PyTorch's ``$TORCH_HOME``). So
a data set is fetched once per machine, by a person, and a trial reads it instead of downloading.

An import is checked (a ``.npz``, ``.zip``, ``.gz``, ``.tar`` and the like must open and read to its end),
copied beside the store, then renamed into place: a bad or interrupted import leaves nothing behind.
``index.json`` records what each file is: kind, name, size, sha256, when and from where it was imported.
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from mlops.errors import DatasetError
from mlops.layout import WorkspaceLayout
from mlops_harness.protocol import DATASET_HOMES, write_atomic

INDEX_FILE = "index.json"
KINDS = tuple(DATASET_HOMES)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
STREAMS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


@dataclass(frozen=True)
class Dataset:
    """One imported file."""

    kind: str
    name: str  # the file name the library asks for, relative to its cache folder
    size: int
    sha256: str
    imported: str  # when, ISO 8601 UTC
    source: str  # the file it was imported from

    @property
    def where(self) -> str:
        variable, sub = DATASET_HOMES[self.kind]
        return "/".join(p for p in (f"${variable}", sub, self.name) if p)


def store_dir(workspace: Path) -> Path:
    """The folder of the machine's imported data sets (it may not exist yet)."""
    return WorkspaceLayout(workspace).datasets


def imported_store(workspace: Path | None) -> Path | None:
    """The store that a runtime shows its trials, read-only; None when nothing was ever imported."""
    store = store_dir(workspace) if workspace is not None else None
    return store if store is not None and store.is_dir() else None


def _check_name(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or "\\" in name or any(p in ("", ".", "..") for p in name.split("/")):
        raise DatasetError(
            f"the data set name {name!r} must be a file name, or a path below the library's cache folder "
            "without '..' (e.g. mnist.npz)"
        )
    if any(part.startswith(".") for part in path.parts):
        raise DatasetError(f"the data set name {name!r} may not start a part with '.'")
    return name


def unreadable(path: Path, names: tuple[str, ...]) -> str | None:
    """Why the file cannot be read as the archive or compressed file its names say it is, or None."""
    lowered = [n.lower() for n in names]
    try:
        if any(n.endswith((".npz", ".zip")) for n in lowered):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            return f"its member {bad} is corrupt (CRC mismatch)" if bad else None
        if any(n.endswith(TAR_SUFFIXES) for n in lowered):
            with tarfile.open(path) as archive:
                for member in archive:
                    stream = archive.extractfile(member) if member.isfile() else None
                    while stream is not None and stream.read(1 << 20):
                        pass
            return None
        for suffix, opener in STREAMS.items():
            if any(n.endswith(suffix) for n in lowered):
                with opener(path, "rb") as stream:
                    while stream.read(1 << 20):
                        pass
                return None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:
        return f"it is not a readable {PurePosixPath(names[-1]).suffix or 'archive'} file ({e or type(e).__name__})"
    return None


@contextlib.contextmanager
def _locked(store: Path) -> Iterator[None]:
    """One import at a time changes the store (its index is read, changed and written whole)."""
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for stale in store.glob(".import-*"):  # the copy of an import that was killed
                stale.unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_index(store: Path) -> dict[str, Dataset]:
    path = store / INDEX_FILE
    if not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        found = [Dataset(**row) for row in rows]
    except (OSError, ValueError, TypeError) as e:
        raise DatasetError(f"{path}: the index of imported data sets cannot be read ({e})") from e
    return {f"{d.kind}/{d.name}": d for d in found}


def _write_index(store: Path, index: dict[str, Dataset]) -> None:
    rows = [asdict(d) for d in sorted(index.values(), key=lambda d: (d.kind, d.name))]
    write_atomic(store / INDEX_FILE, json.dumps(rows, indent=1) + "\n")


def _copy(source: Path, folder: Path) -> tuple[Path, str, int]:
    """``source`` copied into a new hidden file of ``folder``; its path, sha256 and size."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".import-", dir=folder)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o444)  # trials read it; nobody rewrites it in place
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp), digest.hexdigest(), size


def import_file(workspace: Path, file: Path, name: str | None = None, kind: str = "keras",
                replace: bool = False) -> tuple[Dataset, bool]:  # fmt: skip
    """Put ``file`` into the store as data set ``name`` (its file name by default) of ``kind``; the data
    set, and False when the same content was there already. Raises DatasetError on bad input."""
    if kind not in KINDS:
        raise DatasetError(f"unknown data set kind {kind!r} (known: {', '.join(KINDS)})")
    if not file.exists():
        raise DatasetError(f"{file}: no such file")
    if not file.is_file():
        raise DatasetError(f"{file}: not a file (import the data set's files, not a folder)")
    name = _check_name(name or file.name)
    store = store_dir(workspace)
    with _locked(store):
        index = _read_index(store)
        target = store / kind / name
        target.parent.mkdir(parents=True, exist_ok=True)
        for folder in [target.parent, *target.parent.parents]:
            if folder == store.parent:
                break
            folder.chmod(0o755)  # every trial's user reads it, when mlops runs as root too
        try:
            tmp, sha, size = _copy(file, store)
        except OSError as e:
            raise DatasetError(f"{file}: cannot be copied into {store}: {e.strerror or e}") from e
        try:
            why = unreadable(tmp, (file.name, name))
            if why is not None:
                raise DatasetError(f"{file}: refused, {why}; nothing was imported")
            old = index.get(f"{kind}/{name}")
            if old is not None and old.sha256 == sha and target.exists():
                return old, False
            if old is not None and not replace:
                raise DatasetError(
                    f"the {kind} data set {name} is already imported with other content (sha256 "
                    f"{old.sha256[:12]}, from {old.source}, {old.imported}); {file} has sha256 {sha[:12]}: "
                    "add --replace to replace it"
                )
            if target.is_dir():
                raise DatasetError(f"{target} is a folder of other data sets; choose another name with --as")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        dataset = Dataset(kind, name, size, sha, when, str(file.resolve()))
        index[f"{kind}/{name}"] = dataset
        _write_index(store, index)
    return dataset, True


def listing(workspace: Path) -> list[tuple[Dataset, str]]:
    """Every imported data set, and what is wrong with it ("" when its file is there, at its size)."""
    store = store_dir(workspace)
    rows = []
    for dataset in sorted(_read_index(store).values(), key=lambda d: (d.kind, d.name)):
        path = store / dataset.kind / dataset.name
        problem = ""
        if not path.is_file():
            problem = "missing"
        elif path.stat().st_size != dataset.size:
            problem = f"changed: {path.stat().st_size} bytes"
        rows.append((dataset, problem))
    return rows
