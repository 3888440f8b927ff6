"""Environments of the local runtime: venvs under ``<workspace>/envs/`` that see their base's packages.

An environment is a venv of the base's interpreter holding only what the base lacks, plus one ``.pth``
line, ``import site; site.addsitedir(<the base's site-packages>)``: Python puts the venv's own packages
first and then the base's (TensorFlow, Keras, scikit-learn are used in place, never installed again; the
venv is a few MB), and the base's own ``.pth`` files are processed as in the base. uv installs exactly the
resolved list (``--no-deps``), so nothing of the base is replaced.

The current generation's base is the interpreter mlops runs with (the project's venv); the legacy one is
a venv built from the ``mlops-keras2`` image's pins (TensorFlow 2.15 with Keras 2), once per workspace and
interpreter, like any other environment. Building is never done in the project's own venv.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.envs.base import PROBE, Base
from mlops.envs.generations import Generation, requirements_of
from mlops.envs.store import Store, key_of
from mlops.envs.uv import Uv, UvFailed
from mlops.errors import RuntimeUnavailable

PTH = "_mlops_base.pth"


def probe(python: str) -> dict[str, Any]:
    try:
        done = subprocess.run(  # noqa: S603 (our own probe, run by an interpreter we chose)
            [python, "-I", "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
        )
        data: dict[str, Any] = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        raise RuntimeUnavailable(f"cannot run the interpreter {python}: {e}") from e
    return data


def _site_stamp(python: str) -> list[float]:
    """When the interpreter's site-packages last changed (a package installed or removed changes it)."""
    prefix = Path(python).parent.parent
    return [p.stat().st_mtime for p in sorted(prefix.glob("lib/python3*/site-packages"))]


class LocalBuilder:
    runtime = "local"

    def __init__(
        self, python: str, store: Store, uv: Uv, say: Callable[[str], None] = lambda _: None
    ) -> None:
        self.python = python
        self.store = store
        self.uv = uv
        self.say = say

    def _base_of(self, python: str, label: str) -> Base:
        real = os.path.abspath(python)  # a venv's python is a link to its base: the venv is the identity
        stamp = key_of(real, _site_stamp(python))
        facts = self.store.cached_json(f"local-{stamp}", lambda: probe(python))
        return Base(label, key_of(real, facts.get("packages")), python, "", facts)

    def base(self, generation: Generation, image: str) -> Base:
        if generation is Generation.CURRENT:
            return self._base_of(self.python, f"the interpreter {self.python}")
        pins = requirements_of(generation)
        key = key_of("generation", generation.value, os.path.realpath(self.python), pins)

        def build(folder: Path) -> dict[str, Any]:
            self.say(f"   building the {generation.describe()} environment with uv (once): {' '.join(pins)}")
            venv = folder / "venv"
            try:
                self.uv.run("venv", "--quiet", "--python", self.python, str(venv))
                self.uv.run(
                    "pip", "install", "--python", str(venv / "bin" / "python"), "--compile-bytecode", *pins
                )
            except UvFailed as e:
                raise RuntimeUnavailable(
                    f"the {generation.value} environment cannot be built here: {e.explanation()}"
                ) from e
            return {"python": str(venv / "bin" / "python"), "generation": generation.value}

        manifest, _ = self.store.ensure(key, build, self.valid)
        return self._base_of(str(manifest["python"]), f"the {generation.describe()} environment")

    def uv_target(self, base: Base) -> list[str]:
        return ["--python", base.python]

    def build(self, base: Base, rows: list[str], folder: Path) -> dict[str, Any]:
        venv = folder / "venv"
        python = venv / "bin" / "python"
        try:
            self.uv.run("venv", "--quiet", "--python", base.python, str(venv))
            site = Path(probe(str(python))["purelib"])
            base_site = base.facts["purelib"]
            (site / PTH).write_text(f"import site; site.addsitedir({base_site!r})\n", encoding="utf-8")
            if rows:
                self.uv.run(
                    "pip", "install", "--no-deps", "--compile-bytecode", "--python", str(python), *rows
                )
        except UvFailed as e:
            raise RuntimeUnavailable(f"installing {', '.join(rows[:5])} failed: {e.explanation()}") from e
        return {"python": str(python)}

    def valid(self, manifest: dict[str, Any]) -> bool:
        return Path(str(manifest.get("python", ""))).exists()
