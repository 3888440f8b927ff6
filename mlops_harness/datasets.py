"""Imported data sets as a trial sees them: linked into its cache, used by Keras as they are, and the
``mlops datasets import`` line that a failed download needed.

``mlops datasets import`` puts files into a store of the machine that every trial sees read-only (the runtime
mounts it and names it in ``MLOPS_DATASETS``). At start the harness links each file into the trial's own
dataset cache, at the path its library looks in (``protocol.DATASET_HOMES``), so that
``keras.datasets.mnist.load_data(path="mnist_local_copy.npz")`` finds it and downloads nothing; a link whose
data set went away is removed. Standard library only: the Keras hook is given the module it fires for.
"""

from __future__ import annotations

import functools
import os
import posixpath
import shlex
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from mlops_harness.protocol import DATASET_HOMES, ENV_DATASETS, ENV_IMPORT_WORKSPACE
from mlops_harness.recorder import say

# Locals of the libraries' download functions that hold the file they wanted, and the URL.
PATH_LOCALS = ("download_target", "fpath", "file_path", "local_path", "filepath")  # Keras 3, 2, scikit-learn
URL_LOCALS = ("origin", "url")
CACHE_DIR_POSITION = 9  # cache_dir is get_file's tenth parameter, in Keras 2 and 3 alike


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def _folder(home: str, sub: str) -> str:
    return os.path.join(home, sub) if sub else home


def link_imported(environ: Mapping[str, str]) -> list[str]:
    """Link every imported data set into the trial's cache where its library looks; the names linked."""
    store = environ.get(ENV_DATASETS)
    if not store or not os.path.isdir(store):
        return []
    linked: list[str] = []
    for kind, (variable, sub) in DATASET_HOMES.items():
        home = environ.get(variable)
        if not home:
            continue
        folder = _folder(home, sub)
        _forget_gone(folder, store)
        source_root = os.path.join(store, kind)
        for root, dirs, files in os.walk(source_root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                source = os.path.join(root, name)
                rel = os.path.relpath(source, source_root)
                try:
                    _link(source, os.path.join(folder, rel))
                    linked.append(rel)
                except OSError as e:
                    say(f"warning: the imported data set {rel} cannot be linked into {folder}: {e}")
    return linked


def _link(source: str, target: str) -> None:
    """``target`` becomes a link to ``source``, whatever was there (a copy the script downloaded earlier)."""
    if os.path.islink(target) and os.readlink(target) == source:
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.{os.urandom(6).hex()}.link"  # trials of one repository may start at the same time
    os.symlink(source, tmp)
    try:
        os.replace(tmp, target)
    except OSError:
        os.unlink(tmp)
        raise


def _forget_gone(folder: str, store: str) -> None:
    """Links into the store whose data set is no longer there go: the library downloads or says so."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) and _inside(os.readlink(path), store) and not os.path.exists(path):
                os.unlink(path)


def keras_get_file(module: Any) -> None:
    """Hooks of the module that defines Keras's ``get_file`` (run right after it is imported, before a
    ``from ... import get_file`` of the datasets modules binds it):

    - ``get_file`` caches in ``$KERAS_HOME``: Keras 2 ignores the variable and caches in ``~/.keras``, which
      is a trial's private ``/tmp``, so a data set would be downloaded again by every trial;
    - its ``validate_file`` accepts an imported data set: Keras downloads again a cached file whose hash is
      not the one it knows, and an imported one is there on purpose (its sha256 is in ``mlops datasets
      list``), so it is used as it is."""
    home, store = os.environ.get("KERAS_HOME"), os.environ.get(ENV_DATASETS)
    get_file: Callable[..., Any] | None = getattr(module, "get_file", None)
    if home and get_file is not None:
        original_get_file = get_file

        @functools.wraps(original_get_file)
        def in_keras_home(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("cache_dir") is None and len(args) < CACHE_DIR_POSITION:
                kwargs["cache_dir"] = home
            return original_get_file(*args, **kwargs)

        module.get_file = in_keras_home
    check: Callable[..., Any] | None = getattr(module, "validate_file", None)
    if not store or check is None:
        return
    root = os.path.realpath(store)
    original_check = check

    def validate_file(fpath: Any, file_hash: Any, *args: Any, **kwargs: Any) -> Any:
        if not _inside(os.path.realpath(os.fspath(fpath)), root):
            return original_check(fpath, file_hash, *args, **kwargs)
        if not original_check(fpath, file_hash, *args, **kwargs):
            say(
                f"using the imported data set {os.path.basename(fpath)}, whose hash is not the one Keras knows"
            )
        return True

    module.validate_file = validate_file


def _frames(tb: TracebackType | None) -> list[dict[str, Any]]:
    found = []
    while tb is not None:
        found.append(tb.tb_frame.f_locals)
        tb = tb.tb_next
    return found


def wanted(exc: BaseException) -> tuple[str | None, str | None]:
    """The file a library was downloading when ``exc`` was raised, and from which URL (innermost first)."""
    path = url = None
    for local in reversed(_frames(exc.__traceback__)):
        if path is None:
            for key in PATH_LOCALS:
                if isinstance(local.get(key), str | os.PathLike):
                    path = os.fspath(local[key])
                    break
        if url is None:
            for key in URL_LOCALS:
                value = local.get(key)
                value = getattr(value, "url", value)  # scikit-learn's RemoteFileMetadata
                if isinstance(value, str) and value.startswith(("http://", "https://", "ftp://")):
                    url = value
                    break
        if path is not None and url is not None:
            break
    return path, url


def kind_and_name(path: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The kind and the name under which ``path`` (in a library's cache) is imported."""
    for kind, (variable, sub) in DATASET_HOMES.items():
        home = environ.get(variable)
        if home and _inside(path, _folder(home, sub)):
            return kind, os.path.relpath(path, _folder(home, sub))
    if posixpath.basename(posixpath.dirname(path)) == "datasets" and "keras" in path:
        return "keras", posixpath.basename(path)  # Keras's own fallback, ~/.keras or /tmp/.keras
    return None


def import_line(exc: BaseException, url: str | None, environ: Mapping[str, str]) -> str | None:
    """The ``mlops datasets import`` line that gives the library the file it failed to download."""
    path, found_url = wanted(exc)
    url = found_url or (url.rstrip(":.,;") if url else None)  # a message's URL may end with its colon
    placed = kind_and_name(path, environ) if path else None
    torchvision = sys.modules.get("mlops_harness.torchvision_data")
    if placed is None and torchvision is not None:  # a torchvision data set's download, under its root=
        found: str | None = torchvision.import_line(environ)
        return found
    if placed is None:
        return None
    kind, name = placed
    download = posixpath.basename(urllib.parse.urlsplit(url).path) if url else ""
    file = download or posixpath.basename(name)
    line = f"mlops datasets import {shlex.quote(file)}"
    if name != file:
        line += f" --as {shlex.quote(name)}"
    if kind != "keras":
        line += f" --kind {kind}"
    workspace = environ.get(ENV_IMPORT_WORKSPACE)  # not the default: the line says which
    if workspace:
        line += f" --workspace {shlex.quote(workspace)}"
    return line
