"""The caller's environment and the training's: which variables are secrets, what a training is given.

A training's environment is built from an allow-list (:func:`trial_env`): what Python, the frameworks and
the harness need, the variables the operator names in ``mlops.toml`` (``pass_env``) and the constants the
pushed repository sets in its ``mlops.yaml``. Nothing else of the caller's environment is handed over, so a
variable with a secret under an innocent name (``DATABASE_URL``, ``DB_PASSWD``) never reaches the script.

Every log mlops writes goes through a :class:`Redactor` holding the values of the caller's secrets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MASK = "********"
MIN_SECRET_LEN = 4  # shorter values would blank out ordinary text; no real secret is that short
# Words that make a variable a secret, matched against the words of its name (DB_PASSWD, MY_APIKEY).
SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "PWD", "PASSPHRASE", "SECRET", "SECRETS", "TOKEN", "TOKENS", "KEY"}
    | {"APIKEY", "CREDENTIAL", "CREDENTIALS", "AUTH", "COOKIE", "DSN", "PRIVATE", "SIGNATURE"}
)
# The same words run into other words (GITHUBTOKEN, MYPASSWORD).
SECRET_PARTS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "API_KEY", "CREDENTIAL", "WEBHOOK_URL")
NOT_SECRET = frozenset({"PWD", "OLDPWD"})  # the working directory
MLOPS_PRIVATE = ("MLOPS_SMTP_", "MLOPS_MAIL_", "MLOPS_WEBHOOK")
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@", re.IGNORECASE)

# Variables a training may see from the caller's environment: locale, time zone, and which devices and
# how many threads to use. Nothing that can hold a secret.
PASSED = (
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_MESSAGES",
    "TZ",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_ENABLE_ONEDNN_OPTS",
    "KERAS_BACKEND",
)
# Variables the sandbox sets itself; neither the operator nor the pushed repository may override them.
RESERVED = frozenset({"PATH", "HOME", "TMPDIR", "PYTHONPATH", "PYTHONHOME", "LD_PRELOAD", "LD_LIBRARY_PATH"})


def is_secret(name: str) -> bool:
    """A variable whose value must never be shown (a password, a token, a key, a webhook URL)."""
    upper = name.upper()
    if upper in NOT_SECRET:
        return False
    words = set(re.split(r"[^A-Z0-9]+", upper))
    return bool(words & SECRET_WORDS) or any(part in upper for part in SECRET_PARTS)


def is_private(name: str) -> bool:
    """A variable the training has no business reading: secrets, and mlops's own mail and webhook settings."""
    return is_secret(name) or name.upper().startswith(MLOPS_PRIVATE)


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The values to hide: those of secret-named variables, and passwords written into URLs (DATABASE_URL)."""
    values: list[str] = []
    for key, value in env.items():
        if is_secret(key) and len(value) >= MIN_SECRET_LEN:
            values.append(value)
            values += [line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_SECRET_LEN]
            parts = urlsplit(value)
            if parts.scheme and parts.netloc:  # errors quote a URL's parts, not always all of it
                values += [p for p in (parts.path, parts.query) if len(p) >= MIN_SECRET_LEN]
                values += [seg for seg in parts.path.split("/") if len(seg) >= 6]
        for password in URL_PASSWORD.findall(value):
            if len(password) >= MIN_SECRET_LEN:
                values += [password, value]
    return sorted(set(values), key=len, reverse=True)


@dataclass(frozen=True)
class Redactor:
    """Replaces every secret value in a text with a mask; built once from the caller's environment."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Redactor:
        return cls(tuple(secret_values(env)))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks the secrets in every record it lets through."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def check_names(names: Iterable[str], where: str) -> list[str]:
    """Variable names a setting lists, checked: a name, not one the sandbox sets itself."""
    checked = []
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{where}: {name!r} is not an environment variable name")
        if name.upper() in RESERVED:
            raise ValueError(f"{where}: {name} is set by the sandbox and cannot be passed or changed")
        checked.append(name)
    return checked


def trial_env(
    caller: Mapping[str, str], spec_env: Mapping[str, str], own: Mapping[str, str]
) -> dict[str, str]:
    """The training's environment: the harmless part of ``caller`` (:data:`PASSED`), then the trial's own
    variables (seed, the repository's constants, what the operator passes), then ``own`` (what the runtime
    sets: paths, caches), which nothing overrides."""
    env = {name: caller[name] for name in PASSED if name in caller}
    env.update({k: v for k, v in spec_env.items() if k.upper() not in RESERVED})
    env.update(own)
    return env
