"""One run's environment: what its code needs, over which base, built once per (base, requirement set).

The steps, each said in the returned :class:`Environment`'s notes so the log can tell what was installed
and why: read the declared requirements (else the imports the base cannot satisfy, mapped to their
distributions); choose the library generation; drop what the base already has (a pin the base does not
satisfy is noted and the base's version kept, since replacing numpy under TensorFlow breaks TensorFlow);
refuse more than :data:`MAX_PACKAGES`; then, keyed by a hash of the base and the requirement set, find the
environment built earlier or have uv resolve the set against the base's own versions and the runtime's
builder make it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlops.envs.base import Base, Environment
from mlops.envs.distributions import distribution_for, python2_modules
from mlops.envs.generations import FRAMEWORKS, Generation, choose
from mlops.envs.needs import Need, read_declared, read_imports
from mlops.envs.store import Store, key_of
from mlops.envs.uv import Uv, UvFailed, parse_lock
from mlops.errors import RuntimeUnavailable, SourceError

MAX_PACKAGES = 100  # requirements beyond the base, per run: a pip freeze of a whole machine is refused


class Builder(Protocol):
    """A runtime's side of environments: its bases, and how an environment over one is made."""

    runtime: str

    def base(self, generation: Generation, image: str) -> Base: ...

    def uv_target(self, base: Base) -> list[str]:
        """uv's arguments naming the interpreter (or Python version and platform) to resolve for."""

    def build(self, base: Base, rows: list[str], folder: Path) -> dict[str, Any]:
        """Install ``rows`` (``name==version``, nothing else) over ``base``; the manifest's python or image."""

    def valid(self, manifest: dict[str, Any]) -> bool: ...


@dataclass(frozen=True)
class Request:
    """What job 2 knows of one run, and whether installing is allowed."""

    code_dir: Path
    script: str
    image: str  # the image job 2 chose (Docker's current generation)
    legacy_api: bool  # job 2 found Keras 2 code
    install: bool = True
    generation: Generation | None = None  # forced: the fallback, or what the ledger recorded
    why: str = "recorded for this run"  # why it was forced


@dataclass(frozen=True)
class Plan:
    generation: Generation
    why: str
    base: Base
    install: list[Need]  # beyond the base
    notes: list[str]


def _canon(name: str) -> str:
    return str(canonicalize_name(name))


def _satisfied(req: Requirement, have: str) -> bool:
    try:
        return req.specifier.contains(Version(have), prereleases=True)
    except InvalidVersion:
        return True


def plan(request: Request, builder: Builder) -> Plan:
    script = request.code_dir / request.script
    declared = read_declared(request.code_dir, script.parent)
    notes = list(declared.notes)
    if request.generation is not None:
        generation, why = request.generation, request.why
    else:
        generation, why = choose(list(declared.needs), request.legacy_api)
    base = builder.base(generation, request.image)
    needs = list(declared.needs)
    if declared.files:
        notes.append(f"read {', '.join(declared.files)}: {len(needs)} requirements")
    else:
        py2 = python2_modules() - base.modules
        for imp in read_imports(request.code_dir, script):
            if imp.top in base.modules or imp.top in py2:
                continue
            dist = distribution_for(imp.top)
            needs.append(Need(dist, _canon(dist), imp.origin, imported=imp.top))
    have = base.packages
    install: list[Need] = []
    for need in needs:
        req = Requirement(need.requirement)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = need.name if need.name in have else FRAMEWORKS.get(need.name, need.name)  # tensorflow: -cpu
        if name in have:
            if not _satisfied(req, have[name]):
                notes.append(f"{need.origin}: {req} not installed; the base's {name} {have[name]} is kept")
            continue
        install.append(need)
    names = {n.name for n in install}
    if len(names) > MAX_PACKAGES:
        where = sorted({n.origin.split(":")[0] for n in install})
        raise SourceError(
            f"{', '.join(where)} ask for {len(names)} packages that the base does not have; at most "
            f"{MAX_PACKAGES} are installed for a run: list only what the training imports"
        )
    return Plan(generation, why, base, install, notes)


def _origins(needs: list[Need], message: str) -> str:
    """Who asked for the packages uv's message names (all of them when it names none)."""
    lowered = message.lower()
    named = [n for n in needs if n.name in lowered or n.requirement.split(";")[0].lower() in lowered]
    shown = named or needs
    return "; ".join(
        f"{n.origin} ({n.requirement})" if n.imported else f"{n.origin}: {n.requirement}" for n in shown[:6]
    )


def _constraints(base: Base) -> str:
    lines = []
    for name, version in sorted(base.packages.items()):
        public = version.split("+")[0]  # ==2.13.0 admits 2.13.0+cpu
        try:
            Version(public)
        except InvalidVersion:
            continue
        lines.append(f"{name}=={public}")
    return "\n".join(lines) + "\n"


def lock(uv: Uv, builder: Builder, base: Base, needs: list[Need], folder: Path) -> list[tuple[str, str, str]]:
    """uv's resolution of ``needs`` with the base's versions fixed: (name, version, why) beyond the base."""
    constraints = folder / "base-constraints.txt"
    constraints.write_text(_constraints(base), encoding="utf-8")
    wanted = "\n".join(n.requirement for n in needs) + "\n"
    (folder / "requirements.in").write_text(wanted, encoding="utf-8")
    try:
        out = uv.run(
            "pip", "compile", "-", "--constraint", str(constraints), "--no-header", "--annotation-style", "line",
            *builder.uv_target(base), stdin=wanted,
        )  # fmt: skip
    except UvFailed as e:
        if e.unreachable:
            raise RuntimeUnavailable(
                f"the package index could not be reached to install {', '.join(n.requirement for n in needs[:5])}: "
                f"{e.explanation()}; set UV_INDEX_URL (or PIP_INDEX_URL) to a mirror, or run with --no-install"
            ) from e
        raise SourceError(
            f"cannot install what the code asks for over {base.label}: {e.explanation()}; asked by "
            f"{_origins(needs, e.message)}"
        ) from e
    have = base.packages
    return [row for row in parse_lock(out) if have.get(_canon(row[0])) != row[1]]


def _why(row: tuple[str, str, str], needs: list[Need]) -> str:
    name, version, via = row
    direct = [n.origin for n in needs if n.name == _canon(name)]
    return f"{name}=={version} ({direct[0] if direct else 'for ' + via})"


def resolve(
    request: Request, builder: Builder, store: Store, uv: Uv, say: Callable[[str], None] = lambda _: None
) -> Environment:
    """The environment of one run: built now, found built, or the base itself when nothing is missing."""
    the_plan = plan(request, builder)
    base, generation = the_plan.base, the_plan.generation
    env = Environment(
        runtime=builder.runtime,
        generation=generation,
        python=base.python,
        image=base.image,
        base=base.label,
        notes=tuple(the_plan.notes),
        why=the_plan.why,
    )
    if not the_plan.install:
        return env
    wanted = sorted({n.requirement for n in the_plan.install})
    if not request.install:
        skipped = (
            f"install is off (--no-install or mlops.yaml install: false): not installed: {', '.join(wanted)}"
        )
        return replace(env, notes=(*env.notes, skipped))
    key = key_of(builder.runtime, base.identity, wanted)

    def build(folder: Path) -> dict[str, Any]:
        say(f"   environment {key}: resolving {', '.join(wanted)} over {base.label}")
        rows = lock(uv, builder, base, the_plan.install, folder)
        installed = [_why(row, the_plan.install) for row in rows]
        say(f"   environment {key}: installing {len(rows)} packages with uv")
        made = builder.build(base, [f"{name}=={version}" for name, version, _ in rows], folder)
        return {**made, "installed": installed, "requested": wanted, "base": base.label}

    started = time.time()
    manifest, built = store.ensure(key, build, builder.valid)
    return replace(
        env,
        key=key,
        python=str(manifest.get("python") or ""),
        image=str(manifest.get("image") or ""),
        installed=tuple(manifest.get("installed") or ()),
        built_s=round(time.time() - started, 2) if built else None,
    )
