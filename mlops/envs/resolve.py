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

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlops.envs.base import Base, Environment
from mlops.envs.boxes import Box
from mlops.envs.distributions import distribution_for, likely, python2_modules
from mlops.envs.generations import FRAMEWORKS, TORCH_MODULES, Generation, choose
from mlops.envs.needs import Import, Need, read_declared, read_imports
from mlops.envs.policy import SourcePolicy
from mlops.envs.store import Store, key_of
from mlops.envs.uv import Uv, UvFailed, parse_lock
from mlops.errors import RuntimeUnavailable, SourceError

MAX_PACKAGES = 100  # requirements beyond the base, per run: a pip freeze of a whole machine is refused


class Builder(Protocol):
    """A runtime's side of environments: its bases, and how an environment over one is made."""

    runtime: str

    def base(self, generation: Generation, image: str) -> Base: ...

    def uv_target(self, base: Base) -> list[str]:
        """uv's arguments naming the interpreter to resolve for (inside the build box)."""

    def box(self, base: Base) -> Box:
        """Where uv runs to build over ``base``: a sandbox, a container of its image."""

    def python_in(self, base: Base) -> str:
        """The base's interpreter as the box sees it (it runs the forwarder)."""

    def build(self, base: Base, rows: list[str], folder: Path, build: Build) -> dict[str, Any]:
        """Install ``rows`` (pinned, nothing else) over ``base`` in the box; the manifest's python or image."""

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
    policy: SourcePolicy = SourcePolicy()  # the direct references the machine's owner allows
    source_builds: bool = True  # a package with no wheel is built from source (in the build sandbox)


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


def _unknown(imp: Import, base: Base) -> str:
    """What is said of an import no distribution in the curated map provides: not installed, and why."""
    meant = likely(imp.top, base.modules)
    guess = f" (did you mean {meant!r}?)" if meant else ""
    return (
        f"{imp.origin}: no known distribution provides {imp.top!r}{guess}; not installed (mlops does not "
        "guess a package from an import name: list it in requirements.txt if it is one)"
    )


def _from_imports(imports: list[Import], base: Base, notes: list[str]) -> list[Need]:
    """The distributions of the imports the base cannot satisfy, from the curated map only."""
    needs = []
    py2 = python2_modules() - base.modules
    for imp in imports:
        if imp.top in base.modules or imp.top in py2:
            continue
        dist = distribution_for(imp.top)
        if dist is None:
            notes.append(_unknown(imp, base))
            continue
        needs.append(Need(dist, _canon(dist), imp.origin, imported=imp.top))
    return needs


def _torch_imports(imports: list[Import], declared: list[Need]) -> list[Import]:
    """The imports of PyTorch's family that requirement files do not declare (installed all the same: a
    requirements.txt that lists pandas but not the lightning the script imports is a common push)."""
    names = {n.name for n in declared}
    return [
        i for i in imports if i.top in TORCH_MODULES and _canon(distribution_for(i.top) or i.top) not in names
    ]


def plan(request: Request, builder: Builder) -> Plan:
    script = request.code_dir / request.script
    declared = read_declared(request.code_dir, script.parent, request.policy)
    imports = read_imports(request.code_dir, script)
    notes = list(declared.notes)
    if request.generation is not None:
        generation, why = request.generation, request.why
    else:
        torch = next((i.origin for i in imports if i.top in TORCH_MODULES), "")
        generation, why = choose(list(declared.needs), request.legacy_api, torch)
    base = builder.base(generation, request.image)
    needs = list(declared.needs)
    if declared.files:
        notes.append(f"read {', '.join(declared.files)}: {len(needs)} requirements")
        needs += _from_imports(_torch_imports(imports, needs), base, notes)
    else:
        needs += _from_imports(imports, base, notes)
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


@dataclass(frozen=True)
class Build:
    """How one environment is built: wheels only but for ``from_source``; what the build box must see."""

    cache: Path  # uv's cache: the runtime's shared one, or a private one when anything is built from source
    from_source: tuple[str, ...] = ()  # packages built from source (they have no wheel, or were allowed)
    readable: tuple[Path, ...] = ()  # allowed local sources, mounted read-only
    urls: tuple[str, ...] = ()  # allowed URL sources, whose hosts the proxy lets through

    @property
    def options(self) -> list[str]:
        return [
            "--only-binary",
            ":all:",
            *(arg for name in self.from_source for arg in ("--no-binary", name)),
        ]


MAX_FROM_SOURCE = 10


def _compile(uv: Uv, builder: Builder, base: Base, folder: Path, build: Build) -> str:
    return uv.run(
        builder.box(base),
        "pip", "compile", str(folder / "requirements.in"), "--constraint", str(folder / "base-constraints.txt"),
        "--no-header", "--annotation-style", "line", *builder.uv_target(base), *build.options,
        python=builder.python_in(base), cache=build.cache, readable=(folder, *build.readable), urls=build.urls,
    )  # fmt: skip


def lock(
    uv: Uv, builder: Builder, base: Base, needs: list[Need], folder: Path, build: Build, source_builds: bool
) -> tuple[list[tuple[str, str, str]], Build]:
    """uv's resolution of ``needs`` with the base's versions fixed: (name, version, why) beyond the base,
    from wheels only; a package that has none is built from source (in the box) when ``source_builds``."""
    (folder / "base-constraints.txt").write_text(_constraints(base), encoding="utf-8")
    (folder / "requirements.in").write_text("\n".join(n.requirement for n in needs) + "\n", encoding="utf-8")
    for _ in range(MAX_FROM_SOURCE):
        try:
            out = _compile(uv, builder, base, folder, build)
            break
        except UvFailed as e:
            name = e.from_source
            if name is None or not source_builds or name in build.from_source:
                raise _failed(e, base, needs) from e
            build = replace(build, from_source=(*build.from_source, name), cache=folder / "uv-cache")
    else:
        raise SourceError(
            f"more than {MAX_FROM_SOURCE} packages would be built from source: {build.from_source}"
        )
    have = base.packages
    return [row for row in parse_lock(out) if have.get(_canon(row[0])) != row[1]], build


def _failed(e: UvFailed, base: Base, needs: list[Need]) -> Exception:
    if e.unreachable:
        return RuntimeUnavailable(
            f"the package index could not be reached to install {', '.join(n.requirement for n in needs[:5])}: "
            f"{e.explanation()}; set UV_INDEX_URL (or PIP_INDEX_URL) to a mirror, or run with --no-install"
        )
    if e.from_source:
        return SourceError(
            f"{e.from_source} has no wheel for {base.label} and building from source is off "
            f"(source_builds = false in mlops.toml); asked by {_origins(needs, e.message)}"
        )
    return SourceError(
        f"cannot install what the code asks for over {base.label}: {e.explanation()}; asked by "
        f"{_origins(needs, e.message)}"
    )


def _pin(row: tuple[str, str, str]) -> str:
    """A row of the lock as uv installs it: ``name==version``, or ``name @ url`` (an allowed source)."""
    name, version, _ = row
    return f"{name} {version}" if version.startswith("@") else f"{name}=={version}"


def _why(row: tuple[str, str, str], needs: list[Need]) -> str:
    direct = [n.origin for n in needs if n.name == _canon(row[0])]
    return f"{_pin(row)} ({direct[0] if direct else 'for ' + row[2]})"


def _first_build(request: Request, store: Store, builder: Builder, needs: list[Need], folder: Path) -> Build:
    """Wheels only, the shared cache; allowed sources (built from source unless a wheel) with a cache of
    their own, so that no build backend can leave anything in a cache another build reads."""
    sources = [n.source for n in needs if n.source is not None]
    if not sources:
        return Build(store.root / f".uv-cache-{builder.runtime}")
    return Build(
        folder / "uv-cache",
        from_source=tuple(s.name for s in sources if not (s.path or Path(s.digest)).name.endswith(".whl")),
        readable=tuple(s.path for s in sources if s.path is not None),
        urls=tuple(s.digest for s in sources if s.path is None),
    )


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
    digests = [n.source.digest for n in the_plan.install if n.source is not None]
    key = key_of(builder.runtime, base.identity, wanted, *digests)

    def build(folder: Path) -> dict[str, Any]:
        say(f"   environment {key}: resolving {', '.join(wanted)} over {base.label}, in the build sandbox")
        first = _first_build(request, store, builder, the_plan.install, folder)
        rows, how = lock(uv, builder, base, the_plan.install, folder, first, request.source_builds)
        installed = [_why(row, the_plan.install) for row in rows]
        say(f"   environment {key}: installing {len(rows)} packages with uv")
        made = builder.build(base, [_pin(row) for row in rows], folder, how)
        shutil.rmtree(folder / "uv-cache", ignore_errors=True)
        return {**made, "installed": installed, "requested": wanted, "base": base.label,
                "from_source": list(how.from_source)}  # fmt: skip

    started = time.time()
    manifest, built = store.ensure(key, build, builder.valid)
    return replace(
        env,
        key=key,
        python=str(manifest.get("python") or ""),
        image=str(manifest.get("image") or ""),
        installed=tuple(manifest.get("installed") or ()),
        from_source=tuple(manifest.get("from_source") or ()),
        built_s=round(time.time() - started, 2) if built else None,
    )
