"""``mlops serve`` (GitHub push webhooks, on uvicorn) and ``mlops watch`` (a poller): each pushed commit is
queued in the workspace and run by one worker (the server and queue are :mod:`mlops.webhook`)."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.args import add_common, add_run_flags, settings_from
from mlops.config import Settings
from mlops.errors import ConfigError
from mlops.webhook.limits import Limits

if TYPE_CHECKING:
    from mlops.webhook.server import Tls

DEFAULTS = Limits()


def add_parsers(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    _add_serve(command)
    p = command(
        "watch",
        "poll a repository's branch and run each new commit",
        "mlops watch https://github.com/you/models.git --branch main --interval 60",
    )
    p.add_argument("source", help="a git URL or local repository to poll")
    p.add_argument("--branch", default="main", help="the branch to poll (default main)")
    p.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between two polls (default 60)",
    )
    add_common(p)
    add_run_flags(p)


def _add_serve(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = command(
        "serve",
        "receive GitHub push webhooks and run each pushed commit",
        "MLOPS_WEBHOOK_SECRET=s3cret mlops serve --port 8443 --tls-cert cert.pem --tls-key key.pem",
    )
    p.add_argument(
        "source",
        nargs="?",
        help="train this clone URL instead of the payload's, e.g. an SSH URL (default: the payload's)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)"
    )
    p.add_argument(
        "--port", type=int, default=8080, metavar="PORT", help="the port to listen on (default 8080)"
    )
    p.add_argument("--branch", default="main", help="the branch whose pushes are trained (default main)")
    p.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="serve HTTPS with this certificate (PEM, chain after it), with --tls-key (default: plain HTTP)",
    )
    p.add_argument(
        "--tls-key",
        type=Path,
        metavar="FILE",
        help="the private key of --tls-cert (PEM, not encrypted) (default: none)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULTS.max_connections,
        metavar="N",
        help=f"connections open at once; one more gets 503 (default {DEFAULTS.max_connections})",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULTS.request_timeout_s,
        metavar="SECONDS",
        help="time a client has to send a request's headers, and then its body; a slower one gets 408 "
        f"(default {DEFAULTS.request_timeout_s:g})",
    )
    add_common(p)
    add_run_flags(p)


def _push_runner(
    args: argparse.Namespace, train_from: str | None
) -> tuple[Settings, Callable[[str, str, str], None]]:
    """Settings, and the function the push queue calls: the whole chain on one pushed commit."""
    from jobs.pipeline import run_source

    settings = settings_from(args)

    def run(source: str, ref: str, commit: str) -> None:
        run_source(settings, train_from or source, commit)

    return settings, run


def _tls(args: argparse.Namespace) -> Tls | None:
    from mlops.webhook.server import Tls

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("mlops serve: --tls-cert and --tls-key go together (the certificate and its key)")
    return Tls(args.tls_cert, args.tls_key) if args.tls_cert else None


def _limits(args: argparse.Namespace) -> Limits:
    try:
        return Limits(max_connections=args.max_connections, request_timeout_s=args.request_timeout)
    except ValueError as e:
        raise ConfigError(f"mlops serve: {e}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from mlops.webhook.pushes import PushQueue, Worker
    from mlops.webhook.server import make_server

    settings, runner = _push_runner(args, train_from=args.source)
    queue = PushQueue(settings.workspace)
    worker = Worker(queue, runner)
    server = make_server(
        args.host,
        args.port,
        settings.environment.webhook_secret,
        args.branch,
        queue,
        settings.repositories,
        fixed_source=args.source,
        limits=_limits(args),
        tls=_tls(args),
        health=lambda: None if worker.is_alive() else "the push worker has stopped",
    )
    worker.start()
    print(
        f"mlops: listening on {server.url} for pushes to {args.branch} (health: GET /healthz); "
        f"{len(queue.pending())} push(es) queued from before",
        flush=True,
    )
    try:
        server.run()
    finally:
        worker.stopping.set()
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from mlops.webhook.pushes import PushQueue, Worker, watch

    settings, runner = _push_runner(args, train_from=None)  # the polled source is the one trained
    source = args.source
    queue = PushQueue(settings.workspace)
    worker = Worker(queue, runner)
    worker.start()
    print(f"mlops: polling {source} ({args.branch}) every {args.interval:g} s", flush=True)
    try:
        watch(source, args.branch, queue, args.interval, threading.Event())
    finally:
        worker.stopping.set()
    return 0
