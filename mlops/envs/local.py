"""Environments of the local runtime: venvs under ``<workspace>/envs/`` that see their base's packages.

An environment is a venv of the base's interpreter holding only what the base lacks, plus one ``.pth``
line, ``import site; site.addsitedir(<the base's site-packages>)``: Python puts the venv's own packages
first and then the base's (TensorFlow, Keras, scikit-learn are used in place, never installed again; the
venv is a few MB), and the base's own ``.pth`` files are processed as in the base. uv installs exactly the
resolved list (``--no-deps``), so nothing of the base is replaced.

The current generation's base is the interpreter mlops runs with (the project's venv); the others are venvs
built from their image's pins (``mlops-keras2``: TensorFlow 2.15 with Keras 2; ``mlops-pytorch``: torch and
torchvision, 6 GB), like any other environment but once per machine and interpreter: in the machine's cache
(``bases``, ``~/.cache/mlops/envs``), which every workspace shares, so a fresh workspace (a test's, a new
project's) does not download and build PyTorch again. Building is never done in the project's own venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.envs.base import PROBE, Base
from mlops.envs.boxes import Box, Job, LocalBox, take_back
from mlops.envs.generations import Generation, requirements_of
from mlops.envs.resolve import Build
from mlops.envs.store import Store, key_of
from mlops.envs.uv import Uv, UvFailed, uv_bin
from mlops.errors import RuntimeUnavailable, SourceError
from mlops.runtime.sandbox import BASE_KEY

PTH = "_mlops_base.pth"
INTERPRETERS = ("python", "python3")


def probe(python: str) -> dict[str, Any]:
    """What the project's own interpreter is and has (trusted: mlops runs with it)."""
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


def _snapshot(venv: Path) -> dict[str, str]:
    """What of a venv the host relies on (its interpreter links, pyvenv.cfg, the base's .pth), read without
    following links: a build must not change it."""
    found: dict[str, str] = {}
    for rel in [*(f"bin/{n}" for n in INTERPRETERS), "pyvenv.cfg", *_pth(venv)]:
        path = venv / rel
        if any(p.is_symlink() for p in [path.parent, *path.parent.parents] if p.is_relative_to(venv)):
            found[rel] = "a link in its path"
        elif path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_text(encoding="utf-8", errors="replace")
    return found


def _pth(venv: Path) -> list[str]:
    return [p.relative_to(venv).as_posix() for p in venv.glob(f"lib/python3*/site-packages/{PTH}")]


class LocalBuilder:
    runtime = "local"

    def __init__(
        self,
        python: str,
        store: Store,
        uv: Uv,
        say: Callable[[str], None] = lambda _: None,
        box: Box | None = None,
        bases: Store | None = None,
    ) -> None:
        self.python = python
        self.store = store
        self.bases = bases or store  # where the generations' own venvs are built: the machine's cache
        self.uv = uv
        self.say = say
        self._box = box

    def box(self, base: Base) -> Box:
        if self._box is None:
            self._box = LocalBox.here(uv_bin())
        return self._box

    def python_in(self, base: Base) -> str:
        return base.python

    def uv_target(self, base: Base) -> list[str]:
        return ["--python", base.python]

    def _probe_in_box(self, python: str, venv: Path) -> dict[str, Any]:
        """The probe of an environment built in the box, run in the box (no .pth of it runs on the host)."""
        out = self._run(python, (python, "-I", "-c", PROBE), readable=(venv,))
        try:
            data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise RuntimeUnavailable(f"cannot look into the environment {venv}: {out[-300:]}") from e
        return data

    def _run(self, python: str, command: tuple[str, ...], readable: tuple[Path, ...]) -> str:
        box = self.box(Base("", "", python, "", {}))
        with tempfile.TemporaryDirectory(prefix="mlops-proxy-") as tmp:
            done = box.run(Job(command, python, readable=readable), {"PATH": "/usr/bin:/bin"}, Path(tmp))
        if done.code != 0:
            raise RuntimeUnavailable(
                f"{command[0]} failed in the build sandbox: {done.stderr.strip()[-400:]}"
            )
        return done.stdout

    def _base_of(self, python: str, label: str, built: Path | None = None) -> Base:
        real = os.path.abspath(python)  # a venv's python is a link to its base: the venv is the identity
        stamp = key_of(real, _site_stamp(python))
        make = (lambda: probe(python)) if built is None else (lambda: self._probe_in_box(python, built))
        facts = self.store.cached_json(f"local-{stamp}", make)
        return Base(label, key_of(real, facts.get("packages")), python, "", facts)

    def base(self, generation: Generation, image: str) -> Base:
        if generation is Generation.CURRENT:
            return self._base_of(self.python, f"the interpreter {self.python}")
        pins = requirements_of(generation)
        key = key_of("generation", generation.value, os.path.realpath(self.python), pins)
        project = self._base_of(self.python, f"the interpreter {self.python}")

        def build(folder: Path) -> dict[str, Any]:
            self.say(
                f"   building the {generation.describe()} environment with uv, once for this machine "
                f"({self.bases.root}): {' '.join(pins)}"
            )
            venv = self._venv(project, folder)
            # A cache of its own, in the same mount as the venv so uv hard-links its files (a shared cache
            # in another mount is a second copy: 6 GB more for PyTorch), removed once the venv is made.
            cache = folder / "uv-cache"
            self._install(project, venv, ["--only-binary", ":all:", *pins], cache, writable=folder)
            shutil.rmtree(cache, ignore_errors=True)
            take_back(folder)
            return {"python": str(venv / "bin" / "python"), "generation": generation.value}

        manifest, _ = self.bases.ensure(key, build, self.valid)
        python = str(manifest["python"])
        return self._base_of(python, f"the {generation.describe()} environment", Path(python).parent.parent)

    def _venv(self, base: Base, folder: Path) -> Path:
        """An empty venv of the base's interpreter, made in the box (only uv runs: nothing of the push)."""
        venv = folder / "venv"
        try:
            self.uv.run(
                self.box(base), "venv", "--quiet", "--python", base.python, str(venv),
                python=base.python, cache=self.store.root / ".uv-cache-local", writable=(venv,),
            )  # fmt: skip
        except UvFailed as e:
            raise RuntimeUnavailable(f"a venv of {base.python} cannot be made: {e.explanation()}") from e
        return venv

    def _install(
        self,
        base: Base,
        venv: Path,
        args: list[str],
        cache: Path,
        build: Build | None = None,
        writable: Path | None = None,
    ) -> None:
        python = str(venv / "bin" / "python")
        try:
            self.uv.run(
                self.box(base), "pip", "install", "--compile-bytecode", "--python", python, *args,
                python=base.python, cache=cache, writable=(writable or venv,),
                readable=build.readable if build else (), urls=build.urls if build else (),
            )  # fmt: skip
        except UvFailed as e:
            raise RuntimeUnavailable(f"installing {' '.join(args[-5:])} failed: {e.explanation()}") from e

    def build(self, base: Base, rows: list[str], folder: Path, build: Build) -> dict[str, Any]:
        venv = self._venv(base, folder)
        site = venv / "lib" / f"python{base.python_version}" / "site-packages"
        (site / PTH).write_text(
            f"import site; site.addsitedir({base.facts['purelib']!r})\n", encoding="utf-8"
        )
        cfg = venv / "pyvenv.cfg"
        base_prefix = Path(os.path.abspath(base.python)).parent.parent
        if (base_prefix / "pyvenv.cfg").is_file():  # the base is a venv: a trial must see it too
            text = cfg.read_text(encoding="utf-8")
            cfg.write_text(f"{text.rstrip()}\n{BASE_KEY} = {base_prefix}\n", encoding="utf-8")
        before = _snapshot(venv)
        if rows:
            self._install(base, venv, ["--no-deps", *build.options, *rows], build.cache, build)
        take_back(venv)
        changed = sorted(k for k, v in _snapshot(venv).items() if before.get(k) != v)
        if changed or set(before) - set(_snapshot(venv)):
            raise SourceError(f"the build changed what it may not ({', '.join(changed)}): refused")
        return {"python": str(venv / "bin" / "python")}

    def valid(self, manifest: dict[str, Any]) -> bool:
        return Path(str(manifest.get("python", ""))).exists()
