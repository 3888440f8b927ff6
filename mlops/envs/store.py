"""The environments of a workspace (``<workspace>/envs/<key>/``), each built once and never used half-built.

A build holds an exclusive lock on ``<key>.lock`` (``flock``: released by the kernel when the builder dies,
so a killed build never blocks the next one); a second process that needs the same environment waits on the
lock and then finds it built. An environment is complete only once its manifest (``mlops-env.json``) is
written, last and atomically: a folder without one is what a killed build left, and it is removed and built
again. Bases' probes are cached in ``bases/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlops_harness.protocol import read_json, write_atomic

MANIFEST = "mlops-env.json"
FORMAT = 2  # bump when the layout of a built environment or the probe changes: every key changes with it


def key_of(*parts: object) -> str:
    """A short, stable hash of JSON-able parts."""
    text = json.dumps([FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, key: str) -> Path:
        return self.root / key

    def manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest of a complete environment; None when it is not built (or was cut short)."""
        return read_json(self.folder(key) / MANIFEST)

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f"{key}.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def ensure(
        self,
        key: str,
        build: Callable[[Path], dict[str, Any]],
        valid: Callable[[dict[str, Any]], bool] = bool,
    ) -> tuple[dict[str, Any], bool]:
        """The manifest of environment ``key``, built by ``build(folder)`` unless a complete one exists.

        Returns (manifest, built now). ``build`` fills the empty folder and returns the manifest's contents;
        ``valid`` may reject a manifest whose environment went away (an image removed from the engine).
        """
        found = self.manifest(key)
        if found is not None and valid(found):
            return found, False
        with self.locked(key):
            found = self.manifest(key)  # built by another process while we waited
            if found is not None and valid(found):
                return found, False
            folder = self.folder(key)
            shutil.rmtree(folder, ignore_errors=True)  # what a killed build left
            folder.mkdir(parents=True)
            started = time.time()
            try:
                manifest = build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            manifest = {
                **manifest,
                "key": key,
                "built_at": time.time(),
                "build_s": round(time.time() - started, 2),
            }
            write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2))
            return manifest, True

    def cached_json(self, name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A small JSON document cached under ``bases/`` (a base's probe), made once."""
        path = self.root / "bases" / f"{name}.json"
        found = read_json(path)
        if found is not None:
            return found
        data = make()
        write_atomic(path, json.dumps(data))
        return data
