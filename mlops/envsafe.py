"""Which environment variables are secrets: never logged, never handed to the user's training code."""

from __future__ import annotations

from collections.abc import Mapping

SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "ACCESS_KEY", "CREDENTIAL", "WEBHOOK_URL")
MLOPS_PRIVATE = ("MLOPS_SMTP_", "MLOPS_MAIL_", "MLOPS_WEBHOOK")


def is_secret(name: str) -> bool:
    """A variable whose value must never be shown (a password, a token, a webhook URL)."""
    return any(marker in name.upper() for marker in SECRET_MARKERS)


def is_private(name: str) -> bool:
    """A variable the training has no business reading: secrets, and mlops's own mail and webhook settings."""
    return is_secret(name) or name.upper().startswith(MLOPS_PRIVATE)


def scrubbed(env: Mapping[str, str]) -> dict[str, str]:
    """The environment without its secrets, for a process that runs someone else's code."""
    return {key: value for key, value in env.items() if not is_private(key)}
