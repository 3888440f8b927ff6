"""uv, the one installer of environments: its command line, the machine's package index, its errors.

uv comes from PyPI (``uv`` in requirements.txt: its wheel ships the binary). It runs in a build box
(:mod:`mlops.envs.boxes`) with an allow-list of variables: uv's index settings (``UV_INDEX_URL``,
``UV_DEFAULT_INDEX``, ``UV_INDEX``, ``UV_EXTRA_INDEX_URL``, ``UV_FIND_LINKS``), and pip's where uv has none of
its own, so a site mirror configured for pip (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``,
or ``index-url`` in pip.conf) is used behind a firewall; no ``uv.toml`` is read. No index is ever named here.
"""

from __future__ import annotations

import configparser
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlops.config import read_environment
from mlops.envs.boxes import Box, Job
from mlops.envs.proxy import IndexProxy, index_hosts
from mlops.errors import RuntimeUnavailable

# pip's variables and the uv variables they become, when uv has none of its own.
FROM_PIP = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS": "UV_FIND_LINKS",
    "PIP_CERT": "SSL_CERT_FILE",
}
PIP_CONF_KEYS = {
    "index-url": "PIP_INDEX_URL",
    "extra-index-url": "PIP_EXTRA_INDEX_URL",
    "find-links": "PIP_FIND_LINKS",
}
NO_WHEEL = re.compile(r"Wheels are required for `([^`]+)`")
UNREACHABLE = re.compile(
    r"dns error|failed to lookup address|Connection refused|connection error|timed out|Could not connect|"
    r"error sending request|tcp connect error|Network is unreachable",
    re.IGNORECASE,
)


def uv_bin() -> str:
    try:
        from uv import find_uv_bin
    except ImportError as e:
        raise RuntimeUnavailable("uv is not installed: pip install -r requirements.txt (make setup)") from e
    return str(find_uv_bin())


def pip_conf_files(env: Mapping[str, str]) -> list[Path]:
    """pip's configuration files, lowest priority first (as pip reads them)."""
    home = Path(env.get("HOME", "~")).expanduser()
    xdg = Path(env.get("XDG_CONFIG_HOME", home / ".config"))
    files = [
        Path("/etc/pip.conf"),
        Path("/etc/xdg/pip/pip.conf"),
        home / ".pip/pip.conf",
        xdg / "pip/pip.conf",
    ]
    if env.get("PIP_CONFIG_FILE"):
        files.append(Path(env["PIP_CONFIG_FILE"]))
    return files


def _usable(location: str) -> bool:
    """pip skips a ``file://`` index or a folder that is not there; so do we (uv would stop on it)."""
    if location.startswith("file://"):
        return Path(location.removeprefix("file://")).exists()
    if "://" not in location:
        return Path(location).exists()
    return True


def index_environment(env: Mapping[str, str], conf_files: list[Path] | None = None) -> dict[str, str]:
    """The variables that tell uv which index to use: uv's own, else pip's (its variables, then pip.conf)."""
    pip: dict[str, str] = {}
    for path in pip_conf_files(env) if conf_files is None else conf_files:
        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            for key, var in PIP_CONF_KEYS.items():
                if parser.has_option(section, key):
                    pip[var] = parser.get(section, key)
    pip.update({k: env[k] for k in FROM_PIP if env.get(k)})
    out: dict[str, str] = {}
    for pip_var, uv_var in FROM_PIP.items():
        if pip_var not in pip or env.get(uv_var):
            continue
        kept = [loc for loc in pip[pip_var].split() if _usable(loc)]
        if kept:
            out[uv_var] = " ".join(kept)
    if env.get("UV_DEFAULT_INDEX") or env.get("UV_INDEX"):
        out.pop("UV_INDEX_URL", None)
        out.pop("UV_EXTRA_INDEX_URL", None)
    if "UV_EXTRA_INDEX_URL" in out and not env.get("UV_INDEX_STRATEGY"):
        out["UV_INDEX_STRATEGY"] = "unsafe-best-match"  # pip's way: the best version of every index it knows
    return out


# What a build's uv is given of the caller's environment: where the index is, and nothing else (no secret,
# no proxy of the caller's: the build's only way out is the index proxy).
KEPT = (
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_FIND_LINKS",
    "UV_INDEX_STRATEGY",
    "UV_HTTP_TIMEOUT",
    "UV_CONCURRENT_DOWNLOADS",
)


@dataclass(frozen=True)
class Uv:
    """Runs uv commands in a build box (:mod:`mlops.envs.boxes`), with the machine's index settings and no
    other network; a failure raises :class:`UvFailed`."""

    env: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Uv:
        base = dict(read_environment().variables if env is None else env)  # read once: mlops/config.py
        base.update(index_environment(base))
        return cls(base)

    @property
    def index(self) -> dict[str, str]:
        return {name: self.env[name] for name in KEPT if self.env.get(name)}

    def cert(self) -> Path | None:
        """The CA bundle uv checks the index with (the machine re-signs TLS: it must be this one)."""
        path = self.env.get("SSL_CERT_FILE") or ""
        return Path(path) if path and Path(path).is_file() else None

    def local_sources(self) -> tuple[Path, ...]:
        """Folders of packages on this machine the index settings name (find-links, file:// indexes)."""
        found = []
        for name in ("UV_FIND_LINKS", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX"):
            for word in self.env.get(name, "").split():
                location = word.split("=", 1)[1] if "=" in word.split("://")[0] else word
                if location.startswith("file://") or "://" not in location:
                    path = Path(location.removeprefix("file://"))
                    if name != "UV_FIND_LINKS" and path.name == "simple":
                        path = path.parent  # a local index's pages link to its files beside them
                    if path.exists():
                        found.append(path)
        return tuple(found)

    def box_env(self, cache: Path) -> dict[str, str]:
        """The build's whole environment: an allow-list, as a trial's (mlops/envsafe.py); the box adds the
        CA bundle's path and its PATH."""
        return {
            **self.index,
            "UV_CACHE_DIR": str(cache),
            "UV_NO_PROGRESS": "1",
            "UV_NO_CONFIG": "1",  # no uv.toml or pyproject.toml found on the way up is read
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_PYTHON_PREFERENCE": "only-system",
            "HOME": "/tmp",  # noqa: S108 (the box's private /tmp)
            "TMPDIR": "/tmp",  # noqa: S108
            "LANG": "C.UTF-8",
        }

    def run(
        self,
        box: Box,
        *args: str,
        python: str,
        cache: Path,
        writable: tuple[Path, ...] = (),
        readable: tuple[Path, ...] = (),
        urls: tuple[str, ...] = (),
    ) -> str:
        """``uv args...`` in ``box`` (``python``: the interpreter there that runs the forwarder); its output.
        ``urls``: direct references the owner allowed, whose hosts the build may reach too."""
        inside = any(cache.is_relative_to(folder) for folder in writable)  # one mount: uv hard-links
        job = Job(
            (uv_bin(), *args),
            python,
            writable=(*writable, *(() if inside else (cache,))),
            readable=(*readable, *self.local_sources()),
            cert=self.cert(),
        )
        with (
            tempfile.TemporaryDirectory(prefix="mlops-proxy-") as tmp,
            IndexProxy(Path(tmp), index_hosts(self.index, urls)) as proxy,
        ):
            done = box.run(job, self.box_env(cache), proxy.folder)
            refused = proxy.refused
        if done.code != 0:
            raise UvFailed(args[:2], done.stderr.strip() or done.stdout.strip(), refused)
        return done.stdout


class UvFailed(Exception):
    """A uv command failed; ``message`` is what uv said. Converted to our errors by the caller."""

    def __init__(self, verb: tuple[str, ...], message: str, refused: set[str] | None = None) -> None:
        super().__init__(f"uv {' '.join(verb)}: {message}")
        self.message = message
        self.refused = sorted(refused or ())

    @property
    def unreachable(self) -> bool:
        return bool(UNREACHABLE.search(self.message))

    def explanation(self) -> str:
        """uv's reasoning, on one line: its 'Because ...' sentence when it gave one."""
        lines = [line.strip() for line in self.message.splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith(("×", "╰", "help:"))] or lines
        text = re.sub(r"\s+", " ", " ".join(line.lstrip("╰─▶ ") for line in lines))[:900]
        if self.refused:
            text += (
                f" (the build tried to reach {', '.join(self.refused[:5])}: a build reaches the package "
                "index only)"
            )
        return text

    @property
    def from_source(self) -> str | None:
        """The package uv would have to build from source, when wheels only were allowed."""
        found = NO_WHEEL.search(self.message)
        return found.group(1) if found else None


def parse_lock(text: str) -> list[tuple[str, str, str]]:
    """``uv pip compile --annotation-style line`` output as (name, version, why) rows."""
    rows = []
    for line in text.splitlines():
        body, _, comment = line.partition("#")
        body = body.strip()
        if " @ " in body and not body.startswith("-"):  # an allowed direct reference: name @ url
            name, _, url = body.partition(" @ ")
            rows.append((name.strip(), f"@ {url.strip()}", comment.strip().removeprefix("via").strip()))
            continue
        if not body or body.startswith("-") or "==" not in body:
            continue
        name, _, version = body.partition("==")
        why = comment.strip().removeprefix("via").strip()
        rows.append((name.strip().split("[")[0], version.split(";")[0].strip(), why))
    return rows
