"""uv, the one installer of environments: its command line, the machine's package index, its errors.

uv comes from PyPI (``uv`` in requirements.txt: its wheel ships the binary). It reads its own settings
(``UV_INDEX_URL``, ``UV_DEFAULT_INDEX``, ``UV_INDEX``, ``UV_FIND_LINKS``, ``uv.toml``, ``UV_CACHE_DIR``)
by itself; the pip settings of the machine are passed on where uv has none of its own, so a site mirror
configured for pip (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``, or ``index-url`` in
pip.conf) is used behind a firewall. No index is ever named here.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlops.errors import RuntimeUnavailable

TIMEOUT_S = 1800.0
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


@dataclass(frozen=True)
class Uv:
    """Runs uv commands with the machine's index settings; a failure raises :class:`UvFailed`."""

    env: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Uv:
        base = dict(os.environ if env is None else env)
        base.update(index_environment(base))
        base.setdefault("UV_NO_PROGRESS", "1")
        base.pop("VIRTUAL_ENV", None)  # uv would install there instead of where it is told
        return cls(base)

    def run(self, *args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
        command = [uv_bin(), *args]
        try:
            done = subprocess.run(  # noqa: S603 (our own command line)
                command,
                input=stdin,
                capture_output=True,
                text=True,
                env=dict(self.env),
                cwd=cwd,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise UvFailed(args[:2], f"took more than {TIMEOUT_S:g} s") from e
        if done.returncode != 0:
            raise UvFailed(args[:2], done.stderr.strip() or done.stdout.strip())
        return done.stdout


class UvFailed(Exception):
    """A uv command failed; ``message`` is what uv said. Converted to our errors by the caller."""

    def __init__(self, verb: tuple[str, ...], message: str) -> None:
        super().__init__(f"uv {' '.join(verb)}: {message}")
        self.message = message

    @property
    def unreachable(self) -> bool:
        return bool(UNREACHABLE.search(self.message))

    def explanation(self) -> str:
        """uv's reasoning, on one line: its 'Because ...' sentence when it gave one."""
        lines = [line.strip() for line in self.message.splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith(("×", "╰", "help:"))] or lines
        text = " ".join(line.lstrip("╰─▶ ") for line in lines)
        return re.sub(r"\s+", " ", text)[:900]


def parse_lock(text: str) -> list[tuple[str, str, str]]:
    """``uv pip compile --annotation-style line`` output as (name, version, why) rows."""
    rows = []
    for line in text.splitlines():
        body, _, comment = line.partition("#")
        body = body.strip()
        if not body or body.startswith("-") or "==" not in body:
            continue
        name, _, version = body.partition("==")
        why = comment.strip().removeprefix("via").strip()
        rows.append((name.strip().split("[")[0], version.split(";")[0].strip(), why))
    return rows
