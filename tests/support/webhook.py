"""The webhook as the tests use it: signed GitHub push deliveries, a server on loopback in the test's process
(its queue and a worker that records runs), and ``mlops serve`` as a separate process."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from mlops.webhook.pushes import PushQueue, Worker
from mlops.webhook.server import make_server
from tests.support.repos import ROOT

SECRET = "webhook-shared-secret"
CLONE_URL = "https://example.com/t/m.git"
SENTINEL = "f" * 40  # a commit pushed after a request, to know that the request's push would have run by then


def push_body(ref="refs/heads/main", after="b" * 40, clone_url=CLONE_URL, full_name="t/m"):
    return json.dumps(
        {"ref": ref, "after": after, "repository": {"clone_url": clone_url, "full_name": full_name}}
    )


def sign(body: str, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


@contextlib.contextmanager
def serving(tmp_path, runner=None, repositories=(CLONE_URL,), **kwargs):
    """A webhook server on loopback in this process, its queue, and a worker that records each run (or calls
    ``runner``); yields (url, runs, queue, worker)."""
    runs: list[tuple[str, str, str]] = []
    queue = PushQueue(tmp_path / "ws")
    worker = Worker(queue, runner or (lambda *push: runs.append(push)))
    worker.start()
    httpd = make_server(
        "127.0.0.1",
        0,
        SECRET,
        "main",
        queue,
        repositories=repositories,
        health=lambda: None if worker.is_alive() else "the push worker has stopped",
        **kwargs,
    )
    httpd.start()
    try:
        yield httpd.url, runs, queue, worker
    finally:
        worker.stopping.set()
        httpd.stop()


def nothing_else_ran(url, runs, queue, before=()) -> bool:
    """Whether only ``before`` ran: the worker runs pushes in order, so once a sentinel push sent now has run,
    any push that the earlier requests queued has run too (no fixed wait for "nothing happened")."""
    assert post(url, push_body(after=SENTINEL)).status_code == 202
    assert wait_for(lambda: any(run[2] == SENTINEL for run in runs) and queue.pending() == [])
    return [run[2] for run in runs] == [*before, SENTINEL]


def post(url, body, event="push", signature=None, extra=None):
    headers = {"X-GitHub-Event": event, "Content-Type": "application/json", **(extra or {})}
    if signature is not False:
        headers["X-Hub-Signature-256"] = signature or sign(body)
    return requests.post(url, data=body.encode(), headers=headers, timeout=10)


def wait_for(predicate, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def status_of(url: str) -> int:
    try:
        return post(url, push_body()).status_code
    except requests.ConnectionError:
        return 0


def read_to_end(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    return answer


GOOD_MODEL = """
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
X, y = load_iris(return_X_y=True)
print(DecisionTreeClassifier(random_state=0).fit(X, y).score(X, y))
"""


@contextlib.contextmanager
def serve_process(folder: Path, *flags: str):
    """``mlops serve --port 0 FLAGS`` as a person starts it, in ``folder`` (its mlops.toml), everything it
    prints in ``folder/serve.log``; yields (url, process, log path) once it listens."""
    log = folder / "serve.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLOPS_WEBHOOK_SECRET=SECRET, MLOPS_RUNTIME="local")
    with log.open("a") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "serve", "--port", "0", *flags],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    start = log.stat().st_size
    listening = re.compile(r"listening on (\S+)")
    try:
        assert wait_for(lambda: listening.search(log.read_text()[start:]) or serve.poll() is not None, 60)
        found = listening.search(log.read_text()[start:])
        assert found, log.read_text()
        yield found.group(1), serve, log
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGINT)
            serve.wait(timeout=60)


def queued_commits(workspace: Path) -> list[str]:
    return [json.loads(p.read_text())["commit"] for p in PushQueue(workspace).pending()]


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
