"""Environments of the Docker runtime: a derived image per environment, ``mlops-env:<key>``.

uv resolves and installs the packages in a container of the base image (:class:`~mlops.envs.boxes.ContainerBox`:
no network but the index proxy, not root), into a folder (``--target``) mounted from this machine, with a
uv cache of its own; the Docker runtime then builds
``FROM <base image>`` with that folder copied to ``/opt/mlops/env`` and put first on ``PYTHONPATH``. The
container keeps its read-only root file system: nothing is installed when a trial starts. The image build
goes through ``mlops/runtime/docker/``, the one package that talks to Docker; this one only asks it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from mlops.envs.base import PROBE, Base
from mlops.envs.boxes import Box, ContainerBox, take_back
from mlops.envs.boxes import Engine as BuildEngine
from mlops.envs.generations import IMAGE_OF, Generation
from mlops.envs.resolve import Build
from mlops.envs.store import Store, key_of
from mlops.envs.uv import Uv, UvFailed, uv_bin
from mlops.errors import RuntimeUnavailable

ENV_DIR = "/opt/mlops/env"
REPOSITORY = "mlops-env"


class Engine(BuildEngine, Protocol):
    """What this module needs of the Docker runtime."""

    def build(
        self, image: str, force: bool = False, say: Callable[[str], None] = print
    ) -> tuple[str, bool]: ...

    def image_id(self, tag: str) -> str: ...

    def image_present(self, tag: str) -> bool: ...

    def probe(self, tag: str, code: str) -> str: ...

    def build_environment(self, base: str, folder: Path, tag: str, say: Callable[[str], None]) -> None: ...


def dockerfile(base: str) -> str:
    return f"FROM {base}\nCOPY site/ {ENV_DIR}/\nENV PYTHONPATH={ENV_DIR}\n"


class ImageBuilder:
    runtime = "docker"

    def __init__(
        self, engine: Engine, store: Store, uv: Uv, say: Callable[[str], None] = lambda _: None
    ) -> None:
        self.engine = engine
        self.store = store
        self.uv = uv
        self.say = say

    def base(self, generation: Generation, image: str) -> Base:
        name = image if generation is Generation.CURRENT and image else str(IMAGE_OF[generation])
        tag, _ = self.engine.build(name, say=self.say)  # the legacy image may not have been needed so far
        image_id = self.engine.image_id(tag)
        facts = self.store.cached_json(
            f"image-{key_of(image_id)}",
            lambda: json.loads(self.engine.probe(tag, PROBE)),
        )
        label = (
            f"image {tag}" if generation is Generation.CURRENT else f"the {generation.describe()} image {tag}"
        )
        return Base(label, image_id, "", tag, facts)

    def uv_target(self, base: Base) -> list[str]:
        return ["--python", "python"]  # the image's own, found on its PATH

    def box(self, base: Base) -> Box:
        return ContainerBox(self.engine, base.image, uv_bin())

    def python_in(self, base: Base) -> str:
        return "python"

    def build(self, base: Base, rows: list[str], folder: Path, build: Build) -> dict[str, Any]:
        site = folder / "site"
        try:
            self.uv.run(
                self.box(base), "pip", "install", "--no-deps", "--target", str(site), "--compile-bytecode",
                *self.uv_target(base), *build.options, *rows,
                python="python", cache=build.cache, writable=(site,), readable=build.readable, urls=build.urls,
            )  # fmt: skip
        except UvFailed as e:
            raise RuntimeUnavailable(f"installing {', '.join(rows[:5])} failed: {e.explanation()}") from e
        take_back(site)
        (folder / "Dockerfile").write_text(dockerfile(base.image), encoding="utf-8")
        tag = f"{REPOSITORY}:{folder.name}"
        self.engine.build_environment(base.image, folder, tag, self.say)
        shutil.rmtree(site, ignore_errors=True)  # in the image now
        return {"image": tag}

    def valid(self, manifest: dict[str, Any]) -> bool:
        return self.engine.image_present(str(manifest.get("image", "")))
