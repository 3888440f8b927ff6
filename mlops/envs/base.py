"""What an environment is built on, and what it is: :class:`Base` (an interpreter or an image, with the
packages it has) and :class:`Environment` (what a trial runs with, recorded in the ledger)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.envs.generations import Generation

# Run by the base's own interpreter: what it is and what it has. Standard library only.
PROBE = r"""
import importlib.metadata as m, json, os, pkgutil, platform, sys, sysconfig
packages = {}
for d in m.distributions():
    name = (d.metadata["Name"] or "").strip()
    if name and name.lower() not in packages:
        packages[name.lower()] = d.version
modules = {mod.name for mod in pkgutil.iter_modules()} | set(sys.builtin_module_names)
for entry in sys.path:  # namespace packages (mpl_toolkits) have no __init__.py: iter_modules misses them
    try:
        modules.update(d.name for d in os.scandir(entry or ".") if d.is_dir() and d.name.isidentifier())
    except OSError:
        pass
modules = sorted(modules)
libc = platform.libc_ver()[1]
print(json.dumps({"python": "%d.%d" % sys.version_info[:2], "machine": platform.machine(), "libc": libc,
                  "purelib": sysconfig.get_paths()["purelib"], "packages": packages, "modules": modules}))
"""


@dataclass(frozen=True)
class Base:
    """An interpreter (local) or an image (Docker) that environments are built on."""

    label: str  # for people: "the project's interpreter /x/.venv/bin/python", "image mlops-keras3:abc"
    identity: str  # what makes it this base (the interpreter and its packages, the image's id)
    python: str  # the interpreter to run (local), or "" for an image
    image: str  # the image tag (Docker), or ""
    facts: dict[str, Any]  # what PROBE printed

    @property
    def packages(self) -> dict[str, str]:
        """Canonical-ish (lower-case) distribution name -> version."""
        return {_canon(k): v for k, v in self.facts.get("packages", {}).items()}

    @property
    def modules(self) -> frozenset[str]:
        return frozenset(self.facts.get("modules", ()))

    @property
    def python_version(self) -> str:
        return str(self.facts.get("python", ""))

    @property
    def platform(self) -> str:
        """uv's ``--python-platform`` for this base (its machine and glibc)."""
        machine = self.facts.get("machine") or "x86_64"
        libc = str(self.facts.get("libc") or "2.28").split(".")
        return f"{machine}-manylinux_{libc[0]}_{libc[1] if len(libc) > 1 else 0}"


def _canon(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@dataclass(frozen=True)
class Environment:
    """What one run's trials run with. ``key`` is empty when the base is used as it is."""

    runtime: str
    generation: Generation
    key: str = ""
    python: str = ""  # local: the interpreter that runs the harness
    image: str = ""  # docker: the image tag
    base: str = ""  # the base's label
    installed: tuple[str, ...] = ()  # "seaborn==0.13.2 (requirements.txt:2)", then dependencies
    from_source: tuple[str, ...] = ()  # the packages built from source (no wheel), in the build sandbox
    notes: tuple[str, ...] = ()  # what was read, ignored or kept from the base, in words
    why: str = ""  # why this generation
    built_s: float | None = None  # seconds the build took when this call built it
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["generation"] = self.generation.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Environment:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["generation"] = Generation(known.get("generation", Generation.CURRENT.value))
        for name in ("installed", "notes", "from_source"):
            known[name] = tuple(known.get(name) or ())
        return cls(**known)

    def describe(self) -> str:
        where = self.python or self.image
        what = f"{len(self.installed)} packages over {self.base}" if self.installed else self.base
        return f"{self.generation.value} environment: {what} ({where})"

    def __str__(self) -> str:
        return json.dumps(self.to_json())
