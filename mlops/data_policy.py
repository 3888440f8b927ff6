"""What ``data:`` may map into a trial, and how an entry is read: the path the script uses, mapped to a
file or folder of the machine that runs the trials.

A push (the repository's ``mlops.yaml``) maps folders of the repository itself, and absolute paths only
under the roots the machine's owner allows (the site's ``data_roots``, none by default); never an mlops
workspace (any: a folder holding ``ledger.db``, one inside it, or one that holds it), the container engine's
state, the system's secrets and devices, or the caller's credentials. The site's own ``data:`` (mlops.toml)
is the owner's: it is kept only from the system's secrets and the credentials. Every problem is a
:class:`~mlops.errors.SourceError` naming the file and the entry.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import SourceError
from mlops.layout import LEDGER  # what makes a folder an mlops workspace

# Where a trial may not see a mapped folder: the system's secrets and devices, the Docker engine, the caller's
# credentials. A source is refused when it is one of these, inside one, or holds one (``/`` holds them all).
HIDDEN = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/run",
    "/var/run",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/lib/docker",  # the engine's state: every image, container and volume (other trials' caches)
    "/var/lib/containerd",
    "/run/containerd",
)
WORKSPACE_SEARCH = 10_000  # folders looked through under a data root for a workspace inside it
CREDENTIALS = (".ssh", ".aws", ".docker", ".gnupg", ".kube", ".netrc", ".config", ".git-credentials")
# Where a script's path may not be mapped to: the system's own folders, and the trial's own mount points.
SYSTEM_TARGETS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sys", "/dev",
                  "/boot", "/run", "/var/run", "/opt", "/code", "/trial", "/cache")  # fmt: skip
EXACT_TARGETS = ("/", "/tmp", "/root", "/home")
RELATIVE_MOUNTS = "/mlops-data"  # where a runtime that mounts puts the folders of relative paths


@dataclass(frozen=True)
class DataPath:
    """One ``data:`` entry: the path the script uses, mapped to a file or folder of the machine that runs
    the trials."""

    target: str  # as the script writes it: absolute, or relative to the script's folder (normalized)
    source: str  # absolute, symbolic links resolved
    writable: bool = False

    @property
    def relative(self) -> bool:
        return not self.target.startswith("/")


def read_data(
    value: object, where: str, root: Path | None, workspace: Path | None = None
) -> tuple[DataPath, ...]:
    """``data:`` entries: the path the script uses -> a path here, or ``{path: ..., writable: true}``.
    Relative sources are inside ``root`` (the repository as pushed); with no ``root`` (mlops.toml) every
    source must be absolute. Every problem is a SourceError naming ``where`` and the entry."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise SourceError(f"{where}: 'data' must map the paths the script uses to paths here")
    out = []
    for key, spec in value.items():
        what = f"{where}: data: {key}"
        if not isinstance(key, str) or not key.strip():
            raise SourceError(f"{where}: data: every key must be a path the script uses, not {key!r}")
        source, writable = spec, False
        if isinstance(spec, dict):
            unknown = sorted(str(k) for k in spec if k not in ("path", "writable"))
            if unknown:
                raise SourceError(f"{what}: unknown key {unknown[0]!r} (known: path, writable)")
            source, writable = spec.get("path"), spec.get("writable", False)
            if not isinstance(writable, bool):
                raise SourceError(f"{what}: 'writable' must be true or false but got {writable!r}")
        if not isinstance(source, str) or not source.strip():
            raise SourceError(f"{what}: the value must be a path here, or {{path: ..., writable: true}}")
        target = _target(key.strip(), what)
        real = _source(source.strip(), what, root, writable)
        check_source(real, what, root, workspace)
        out.append(DataPath(target, str(real), writable))
    return tuple(out)


def _target(key: str, what: str) -> str:
    if ".." in Path(key).parts:
        raise SourceError(f"{what}: a path with '..' is not taken; name the folder the script reads")
    if key.startswith("~"):
        raise SourceError(f"{what}: write the path the script uses in full, without '~'")
    target = posixpath.normpath(key)
    if target.startswith("/"):
        if target in EXACT_TARGETS or any(_within(target, s) for s in SYSTEM_TARGETS):
            raise SourceError(f"{what}: a system folder cannot be replaced; map a folder inside it")
    elif target == ".":
        raise SourceError(f"{what}: the script's own folder cannot be replaced; map a folder inside it")
    return target


def _source(value: str, what: str, root: Path | None, writable: bool) -> Path:
    if ".." in Path(value).parts:
        raise SourceError(f"{what}: a path with '..' is not taken: {value!r}")
    path = Path(value).expanduser()
    relative = not path.is_absolute()
    if relative:
        if root is None:
            raise SourceError(f"{what}: {value!r} must be an absolute path")
        if writable:
            raise SourceError(
                f"{what}: a writable folder must be an absolute path (the checkout is read-only)"
            )
        path = root / path
    if not path.exists():
        where = "in the repository as pushed" if relative else "on this machine"
        raise SourceError(f"{what}: {value} does not exist {where}")
    real = Path(os.path.realpath(path))
    if relative and root is not None and not real.is_relative_to(os.path.realpath(root)):
        raise SourceError(f"{what}: {value} leads out of the repository (a symbolic link)")
    return real


def _within(path: str | Path, folder: str | Path) -> bool:
    return Path(path) == Path(folder) or Path(path).is_relative_to(folder)


def check_source(real: Path, what: str, root: Path | None, workspace: Path | None) -> None:
    """Refuse a source that is, holds or is inside what no trial may see."""
    home = Path.home()
    hidden = [Path(p) for p in HIDDEN] + [home / name for name in CREDENTIALS]
    hidden += [Path(os.path.realpath(p)) for p in hidden]
    if workspace is not None:
        ws = Path(os.path.realpath(workspace))
        inside_checkout = root is not None and real.is_relative_to(os.path.realpath(root))
        if not inside_checkout:
            hidden.append(ws)
    for path in hidden:
        if _within(real, path) or _within(path, real):
            raise SourceError(f"{what}: {real} would expose {path} to the training; map a folder of data")


def check_reach(real: Path, what: str, root: Path, roots: tuple[str, ...]) -> None:
    """A pushed source is the repository's own, or under a root the machine's owner allows; and in no case a
    workspace's (any mlops workspace: its ledger, its runs, its checkouts), nor one that holds a workspace."""
    if real.is_relative_to(os.path.realpath(root)):
        return  # the repository itself (inside the run's own workspace's checkouts)
    allowed = [Path(os.path.realpath(r)) for r in roots]
    if not any(real.is_relative_to(r) for r in allowed):
        listed = ", ".join(roots) or "none"
        raise SourceError(
            f"{what}: {real} is outside the repository and the folders this machine lets a push map "
            f"(data_roots: {listed}); map a folder of the repository, or ask the machine's owner to add its "
            "folder to data_roots (mlops.toml)"
        )
    found = _workspace_at(real)
    if found is not None:
        raise SourceError(f"{what}: {real} would expose the mlops workspace {found} to the training")


def _workspace_at(path: Path) -> Path | None:
    """The mlops workspace (a folder holding ledger.db) that ``path`` is, is inside, or holds (looked for
    through WORKSPACE_SEARCH folders under it, never following a link); None when there is none."""
    for folder in (path, *path.parents):
        if (folder / LEDGER).exists():
            return folder
    pending, seen = [path], 0
    while pending and seen < WORKSPACE_SEARCH:
        folder = pending.pop()
        seen += 1
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name == LEDGER:
                return folder
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
    return None
