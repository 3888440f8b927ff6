"""What a pushed requirement may be: a name and a version from the machine's index, never a location.

A requirement file is data written by whoever pushed: a line that names a location instead of a package
(``evil @ file:///srv/x``, ``git+https://...``, ``./vendor/pkg``, ``-e .``) or that changes where packages
come from (``--index-url``, ``--extra-index-url``, ``--find-links``, ``--trusted-host``) would make the build
fetch, and run the build backend of, whatever the pusher chose. Every such line is refused before anything
is built, as a :class:`~mlops.errors.SourceError` naming the file and the line (job 2 exits 2, the run fails
as ``environment``).

Only the machine's owner can allow more: ``allow_sources`` in ``mlops.toml`` lists patterns (``fnmatch``) of
direct references that may be installed: a path relative to the repository (``vendor/*.tar.gz``, the file
must be inside the repository) or a URL (``https://files.example/wheels/*``). An allowed one is still built
in the build sandbox, like any other package.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from mlops.errors import RequirementRefused, SourceError

# Options of pip's requirement format that say where packages come from, or hand settings to build
# backends: refused. Anything else that starts with "-" (``--pre``, ``--prefer-binary``) is ignored, and said.
REFUSED_OPTIONS = {
    "-i": "an index",
    "--index-url": "an index",
    "--extra-index-url": "an index",
    "--no-index": "an index",
    "-f": "a place to find packages",
    "--find-links": "a place to find packages",
    "--trusted-host": "a host whose TLS is not checked",
    "-e": "an editable path",
    "--editable": "an editable path",
    "--global-option": "options for a build backend",
    "--install-option": "options for a build backend",
    "-C": "options for a build backend",
    "--config-settings": "options for a build backend",
    "--config-setting": "options for a build backend",
}
ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")
HOW = "publish it on the package index, or the machine's owner may allow it (allow_sources in mlops.toml)"


@dataclass(frozen=True)
class Source:
    """A direct reference the owner allowed: what uv is given, and the file to show the build (if local)."""

    requirement: str  # "name @ file:///abs/path" or "name @ https://..."
    name: str
    path: Path | None  # a file inside the repository, mounted read-only into the build sandbox
    digest: str  # the file's sha256 (a local file), or the URL: part of the environment's key


def refused_option(line: str) -> str | None:
    """What a requirement-file option line asks for, when it is one mlops refuses; None otherwise."""
    word = line.split()[0].split("=", 1)[0]
    if word in REFUSED_OPTIONS:
        return REFUSED_OPTIONS[word]
    for short in ("-i", "-f", "-e", "-C"):  # -ihttps://..., -e./pkg
        if word.startswith(short) and not word.startswith("--"):
            return REFUSED_OPTIONS[short]
    return None


def _is_location(text: str) -> bool:
    """A bare path or URL (``./pkg``, ``/srv/x.whl``, ``git+https://...``, ``pkg-1.0.tar.gz``)."""
    return (
        "://" in text
        or text.startswith((".", "/", "~", "file:"))
        or text.endswith(ARCHIVES)
        or "/" in text.split(";")[0]
        or "\\" in text
    )


@dataclass(frozen=True)
class SourcePolicy:
    """The owner's ``allow_sources`` patterns, applied to the requirements of one repository."""

    allowed: tuple[str, ...] = ()

    def check(self, text: str, root: Path, rel: Path, line: int | None) -> Requirement | Source:
        """``text`` as a requirement by name, or as an allowed :class:`Source`; else SourceError."""
        try:
            req = Requirement(text)
        except InvalidRequirement as e:
            if not _is_location(text):
                raise SourceError(f"{text!r} is not a requirement: {e}", rel, line) from e
            return self._allowed(None, text, root, rel, line)
        if req.url is None:
            return req
        return self._allowed(req, req.url, root, rel, line)

    def _allowed(
        self, req: Requirement | None, location: str, root: Path, rel: Path, line: int | None
    ) -> Source:
        shown = str(req) if req is not None else location
        refused = RequirementRefused(
            f"{shown!r} names a location, not a package (requirements from a push are names and versions "
            f"from the machine's index): {HOW}",
            rel,
            line,
        )
        scheme = urlsplit(location).scheme
        if scheme and scheme != "file" and len(scheme) > 1:  # a URL (C:\ is not one)
            if not self._matches(location):
                raise refused
            name = req.name if req is not None else _name_of(Path(urlsplit(location).path).name)
            if not name:
                raise refused
            return Source(f"{name} @ {location}", str(canonicalize_name(name)), None, location)
        path = _local_path(location, root)
        inside = path is not None and path.is_relative_to(root.resolve()) and path.is_file()
        if path is None or not inside:
            raise refused
        relative = path.relative_to(root.resolve()).as_posix()
        name = req.name if req is not None else _name_of(path.name)
        if not self._matches(relative) or not name:
            raise refused
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return Source(f"{name} @ {path.as_uri()}", str(canonicalize_name(name)), path, digest)

    def _matches(self, location: str) -> bool:
        return any(fnmatch.fnmatchcase(location, pattern) for pattern in self.allowed)


def _local_path(location: str, root: Path) -> Path | None:
    """The file a ``file:`` URL or a path names, resolved (links followed), relative ones from the root."""
    if location.startswith("file:"):
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost"):
            return None
        location = unquote(parts.path)
    if location.startswith("~"):
        return None
    path = Path(location)
    return (path if path.is_absolute() else root / path).resolve()


def _name_of(filename: str) -> str:
    """The distribution a wheel's or an sdist's file name is of; empty when it is neither."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        return str(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return ""
