"""torchvision's data sets read from the machine's store: ``MNIST(root=..., download=True)`` downloads nothing.

``mlops datasets import FILE... --kind torch --as MNIST/raw/`` puts files in the store under the data set's
own folder names (``MNIST/raw/train-images-idx3-ubyte``, ``FashionMNIST/raw/...``,
``cifar-10-batches-py/data_batch_1``, or the archive torchvision downloads, ``cifar-10-python.tar.gz``). When
the script makes a torchvision data set, its ``root`` (relative, absolute or ``~``) gets links to the
store's files of that data set, before torchvision looks for them:

- a file is the data set's when its path starts with the class's name (MNIST's ``raw_folder`` is
  ``root/<class name>/raw``) or with its ``base_folder`` (CIFAR's), or is its ``filename`` (the archive);
- ``check_integrity`` accepts a file of the store whose md5 is not the one torchvision knows (it was
  imported on purpose; its sha256 is in ``mlops datasets list``), as Keras's hook does;
- a download that fails leaves the ``mlops datasets import`` line that gives the data set its files.

Standard library only: the hooks are given the modules they fire for.
"""

from __future__ import annotations

import functools
import os
import shlex
import threading
from collections.abc import Callable, Mapping
from typing import Any

from mlops_harness import datasets
from mlops_harness.protocol import ENV_DATASETS, ENV_IMPORT_WORKSPACE
from mlops_harness.recorder import say

KIND = "torch"
# the last download torchvision attempted: (url, the file it was to write, the data set being made)
ATTEMPT: dict[str, Any] = {}
LOCAL = threading.local()  # the torchvision data set whose __init__ runs in this thread: (object, its root)
SAID: set[str] = set()


def _store() -> str | None:
    store = os.environ.get(ENV_DATASETS)
    folder = os.path.join(store, KIND) if store else None
    return os.path.realpath(folder) if folder and os.path.isdir(folder) else None


def _heads(dataset: Any) -> tuple[set[str], set[str]]:
    """The folders (first path part) and the files at its root that are ``dataset``'s in the store."""
    cls = type(dataset)
    folders = {cls.__name__}
    base = getattr(cls, "base_folder", None)
    if isinstance(base, str) and base:
        folders.add(base)
    name = getattr(cls, "filename", None)
    return folders, {name} if isinstance(name, str) and name else set()


def link_into(dataset: Any, root: str) -> list[str]:
    """Link the store's files of ``dataset`` under ``root``; the names linked."""
    store = _store()
    if store is None:
        return []
    folders, files = _heads(dataset)
    linked = []
    for here, dirs, names in os.walk(store):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            rel = os.path.relpath(os.path.join(here, name), store)
            if name.startswith(".") or not (rel.split(os.sep)[0] in folders or rel in files):
                continue
            try:
                datasets._link(os.path.join(here, name), os.path.join(root, rel))
                linked.append(rel)
            except OSError as e:
                say(f"warning: the imported data set {rel} cannot be linked into {root}: {e}")
    if linked:
        say(f"{type(dataset).__name__} reads the imported {', '.join(sorted(linked))} under {root}")
    return linked


def install_vision(module: Any) -> None:
    """``VisionDataset.__init__`` (which every torchvision data set calls first, with its root) links the
    store's files of the data set under its root."""
    cls = getattr(module, "VisionDataset", None)
    if cls is None or getattr(cls, "_mlops_hooked", False):
        return
    original: Callable[..., None] = cls.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        root = getattr(self, "root", None)
        if not isinstance(root, str | os.PathLike):
            return
        where = os.path.abspath(os.path.expanduser(os.fspath(root)))
        LOCAL.dataset = (self, where)
        try:
            link_into(self, where)
        except Exception as e:  # noqa: BLE001 (linking never breaks the script's data set)
            say(f"warning: could not link the imported data sets into {where}: {type(e).__name__}: {e}")

    cls.__init__ = init
    cls._mlops_hooked = True


def install_utils(module: Any) -> None:
    """torchvision's ``check_integrity`` takes an imported file as it is, and ``download_url`` says which
    file it was to download (for the import line of a failed download)."""
    check: Callable[..., bool] | None = getattr(module, "check_integrity", None)
    download: Callable[..., Any] | None = getattr(module, "download_url", None)
    if check is None or download is None or getattr(check, "_mlops_hooked", False):
        return
    original_check, original_download = check, download

    @functools.wraps(original_check)
    def check_integrity(fpath: Any, md5: Any = None) -> bool:
        if original_check(fpath, md5):
            return True
        store = _store()
        path = os.path.realpath(os.fspath(fpath))
        if store is None or not datasets._inside(path, store) or not os.path.isfile(path):
            return False
        if path not in SAID:
            SAID.add(path)
            say(f"using the imported data set {os.path.relpath(path, store)}, whose md5 is not the one "
                "torchvision knows")  # fmt: skip
        return True

    @functools.wraps(original_download)
    def download_url(url: str, root: Any, filename: Any = None, *args: Any, **kwargs: Any) -> Any:
        target = os.path.join(os.path.expanduser(os.fspath(root)), filename or os.path.basename(url))
        ATTEMPT.update(url=url, path=os.path.abspath(target), dataset=getattr(LOCAL, "dataset", None))
        return original_download(url, root, filename, *args, **kwargs)

    check_integrity._mlops_hooked = True  # type: ignore[attr-defined]
    module.check_integrity, module.download_url = check_integrity, download_url


def import_line(environ: Mapping[str, str]) -> str | None:
    """The ``mlops datasets import`` line for the torchvision data set whose download failed: every file it
    downloads into the folder of the one that failed (MNIST's four), at its place under the data set's
    root; None when torchvision attempted no download."""
    path, made = ATTEMPT.get("path"), ATTEMPT.get("dataset")
    if not path or made is None:
        return None
    dataset, root = made
    if not datasets._inside(path, root):
        return None
    folder = os.path.relpath(os.path.dirname(path), root)
    files = [os.path.basename(path)]
    resources = getattr(dataset, "resources", None)
    if isinstance(resources, list | tuple) and any(_file_of(r) == files[0] for r in resources):
        files = [f for f in (_file_of(r) for r in resources) if f]
    name = f"{folder}/" if folder != "." else ""
    line = "mlops datasets import " + " ".join(shlex.quote(f) for f in files) + f" --kind {KIND}"
    if name:
        line += f" --as {shlex.quote(name)}"
    workspace = environ.get(ENV_IMPORT_WORKSPACE)
    if workspace:
        line += f" --workspace {shlex.quote(workspace)}"
    return line


def _file_of(resource: Any) -> str | None:
    """The file name of one of a data set's ``resources`` (MNIST's ``(file, md5)``, or ``(url, md5)``)."""
    first = resource[0] if isinstance(resource, list | tuple) and resource else resource
    return os.path.basename(first) if isinstance(first, str) else None
