"""What a GitHub delivery means: its signature, its event, its payload checked field by field (400 names the
field, never trusted), the allow-list of repositories, and the answer. No HTTP here: the server
(:mod:`mlops.webhook.server`) reads the request and sends the :class:`Answer`.

Only signed pushes of repositories on the allow-list (``repositories`` in mlops.toml, by clone URL or
owner/name) are trained.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from mlops.errors import ConfigError
from mlops.webhook.pushes import Push, PushQueue

log = logging.getLogger("mlops.webhook")
COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256
REMOTE_RE = re.compile(r"(https?|ssh|git)://[^\s]+|[\w.-]+@[\w.-]+:[^\s]+")


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to a request: its status and one line saying why. ``close``: end the connection after
    it (the request was cut short, so what follows on the connection is not a request); ``allow``: the
    methods a 405 names; ``extra``: more fields of the JSON answer."""

    status: HTTPStatus
    message: str
    close: bool = False
    allow: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def valid_ref(ref: str) -> bool:
    """A branch's full name as git check-ref-format allows it (refs/heads/..., no .., no control bytes)."""
    if not ref.startswith("refs/heads/") or len(ref) > 255 or ref.endswith(("/", ".", ".lock")):
        return False
    if any(c < " " or c in " ~^:?*[\\\x7f" for c in ref) or ".." in ref or "@{" in ref or "//" in ref:
        return False
    return all(part and not part.startswith(".") for part in ref.split("/"))


def _key(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


def allowed_source(repositories: Sequence[str], clone_url: str, full_name: str) -> str | None:
    """What to train for a push of ``clone_url`` (``full_name`` is owner/name), or None when the repository
    is not on the allow-list. A listed URL or path is trained as listed; a repository listed by name is
    trained from its clone URL only when that is a remote URL (never a local path or an option)."""
    for entry in repositories:
        if _key(entry) == _key(clone_url):
            return entry
    names = {_key(entry) for entry in repositories}
    if full_name and _key(full_name) in names and REMOTE_RE.fullmatch(clone_url):
        return clone_url
    return None


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """GitHub's ``X-Hub-Signature-256``: the body's HMAC-SHA256 with the shared secret, compared in constant
    time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def push_of(payload: Any) -> tuple[str, tuple[str, str, tuple[str, str]] | None]:
    """(what is wrong, None) or ("", (ref, commit, (clone URL, owner/name))) of a push payload."""
    if not isinstance(payload, dict):
        return "not a JSON object", None
    ref, commit, repository = payload.get("ref"), payload.get("after"), payload.get("repository")
    if not isinstance(ref, str) or not valid_ref(ref):
        return "'ref' must be a branch (refs/heads/...)", None
    if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
        return "'after' must be a commit id (40 or 64 hexadecimal digits)", None
    if not isinstance(repository, dict) or not isinstance(repository.get("clone_url"), str):
        return "'repository.clone_url' must be a string", None
    full_name = repository.get("full_name")
    return "", (ref, commit, (repository["clone_url"], full_name if isinstance(full_name, str) else ""))


class GitHubHook:
    """POST /hooks/github: a signed push to the watched branch of an allowed repository is queued; everything
    else is refused or ignored, with the reason. With ``fixed_source`` (mlops serve SOURCE) every accepted
    push trains that source instead of the payload's."""

    def __init__(
        self,
        secret: str | None,
        branch: str,
        queue: PushQueue,
        repositories: Sequence[str] = (),
        fixed_source: str | None = None,
    ) -> None:
        if not secret:
            raise ConfigError(
                "mlops serve needs the webhook's shared secret in MLOPS_WEBHOOK_SECRET "
                "(the same one as in GitHub's webhook settings)"
            )
        if not repositories and not fixed_source:
            raise ConfigError(
                "mlops serve trains only the repositories listed in mlops.toml "
                '(repositories = ["https://github.com/you/model.git"] or ["you/model"]), or the SOURCE given'
            )
        self._secret = secret.encode()
        self.branch = branch
        self.queue = queue
        self.repositories = tuple(repositories)
        self.fixed_source = fixed_source

    def __repr__(self) -> str:  # never the secret, whatever prints this object
        return f"GitHubHook(branch={self.branch!r}, repositories={self.repositories!r})"

    def deliver(self, event: str, signature: str | None, body: bytes) -> Answer:
        """The answer to one delivery whose whole body is ``body``; a push it accepts is queued first."""
        if not signature_ok(self._secret, body, signature):
            return Answer(HTTPStatus.UNAUTHORIZED, "missing or bad X-Hub-Signature-256")
        if event == "ping":
            return Answer(HTTPStatus.OK, "pong")
        if event != "push":
            return Answer(HTTPStatus.ACCEPTED, f"ignored: event {event[:40]!r} is not a push")
        try:
            payload = json.loads(body)
        except ValueError:
            return Answer(HTTPStatus.BAD_REQUEST, "not a GitHub push payload: the body is not JSON")
        problem, push = push_of(payload)
        if push is None:
            return Answer(HTTPStatus.BAD_REQUEST, f"not a GitHub push payload: {problem}")
        return self._queue(*push)

    def _queue(self, ref: str, commit: str, repository: tuple[str, str]) -> Answer:
        if ref != f"refs/heads/{self.branch}":
            return Answer(HTTPStatus.ACCEPTED, f"ignored: a push to {ref}, not to {self.branch}")
        if set(commit) == {"0"}:
            return Answer(HTTPStatus.ACCEPTED, "ignored: the branch was deleted")
        clone_url, full_name = repository
        source = allowed_source(self.repositories, clone_url, full_name)
        if source is None and not (self.fixed_source and not self.repositories):
            shown = full_name or clone_url[:100]
            return Answer(HTTPStatus.FORBIDDEN, f"{shown!r} is not in repositories (mlops.toml)")
        source = self.fixed_source or source or clone_url
        if not self.queue.put(Push(source, self.branch, commit)):
            return Answer(HTTPStatus.OK, f"commit {commit[:12]} was queued before")
        log.info(f"queued {source} at {commit[:12]}")
        return Answer(HTTPStatus.ACCEPTED, f"queued {commit[:12]}")
