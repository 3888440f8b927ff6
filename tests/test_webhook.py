"""Push triggers without Jenkins: the GitHub webhook receiver on a real HTTP server, and the poller."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import pytest
import requests

from mlops.errors import ConfigError
from mlops.webhook import Push, PushQueue, Worker, make_server, watch
from tests.support.repos import git, make_repo

SECRET = "webhook-shared-secret"


def push_body(ref="refs/heads/main", after="b" * 40):
    return json.dumps(
        {"ref": ref, "after": after, "repository": {"clone_url": "https://example.com/t/m.git"}}
    )


def sign(body: str, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def server(tmp_path):
    runs: list[tuple[str, str, str]] = []
    queue = PushQueue(tmp_path / "ws")
    httpd = make_server("127.0.0.1", 0, SECRET, "main", queue)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    worker = Worker(queue, lambda *push: runs.append(push))
    worker.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks/github"
    yield url, runs, queue
    worker.stopping.set()
    httpd.shutdown()


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


def test_a_signed_push_is_queued_and_run_once(server):
    url, runs, queue = server
    response = post(url, push_body())
    assert response.status_code == 202 and response.json()["message"] == f"queued {'b' * 12}"
    assert wait_for(lambda: runs == [("https://example.com/t/m.git", "main", "b" * 40)])
    again = post(url, push_body())
    assert again.status_code == 200 and "queued before" in again.json()["message"]
    time.sleep(0.3)
    assert len(runs) == 1 and queue.pending() == []


@pytest.mark.parametrize(
    ("body", "kwargs", "status"),
    [
        (push_body(), {"signature": False}, 401),
        (push_body(), {"signature": sign(push_body(), "not-the-secret")}, 401),
        (push_body(), {"signature": "sha1=abc"}, 401),
        (push_body(ref="refs/heads/feature"), {}, 202),
        (push_body(), {"event": "issues"}, 202),
        ("{not json", {}, 400),
    ],
)
def test_bad_or_foreign_requests_are_refused_or_ignored_and_nothing_runs(server, body, kwargs, status):
    url, runs, queue = server
    assert post(url, body, **kwargs).status_code == status
    time.sleep(0.2)
    assert runs == [] and queue.pending() == []


def test_ping_and_an_oversized_body(server):
    url, runs, _ = server
    assert post(url, "{}", event="ping").status_code == 200
    big = json.dumps({"pad": "x" * (1024 * 1024 + 10)})
    response = requests.post(
        url,
        data=big.encode(),
        timeout=10,
        headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(big)},
    )
    assert response.status_code == 413 and runs == []


def test_a_lying_content_length_is_refused_and_a_stalled_client_does_not_block_others(server):
    import socket
    from urllib.parse import urlsplit

    url, runs, _ = server
    address = urlsplit(url)
    for declared in ("-5", "12x"):
        with socket.create_connection((address.hostname, address.port), timeout=5) as raw:
            raw.sendall(
                f"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode()
            )
            assert raw.recv(200).split(b" ")[1] == b"400"
    with socket.create_connection((address.hostname, address.port), timeout=5) as stalled:
        stalled.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert post(url, push_body()).status_code == 202  # served while the other one waits
    assert wait_for(lambda: len(runs) == 1)


def test_a_server_without_a_secret_refuses_to_start(tmp_path):
    for secret in (None, ""):
        with pytest.raises(ConfigError, match="MLOPS_WEBHOOK_SECRET"):
            make_server("127.0.0.1", 0, secret, "main", PushQueue(tmp_path))


def test_pushes_queued_while_nothing_runs_them_survive_a_restart(tmp_path):
    queue = PushQueue(tmp_path / "ws")
    queue.put(Push("src", "main", "c" * 40))
    queue.put(Push("src", "main", "d" * 40))
    runs = []
    worker = Worker(
        PushQueue(tmp_path / "ws"), lambda *push: runs.append(push[2][0])
    )  # a new process's queue
    worker.start()
    assert wait_for(lambda: runs == ["c", "d"])
    worker.stopping.set()


def test_watch_queues_each_new_commit_of_the_branch(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train.py": "v = 1\n"})
    queue = PushQueue(tmp_path / "ws")
    stop = threading.Event()
    poller = threading.Thread(target=watch, args=(str(repo), "main", queue, 0.1, stop), daemon=True)
    poller.start()
    first = git(repo, "rev-parse", "HEAD")
    assert wait_for(lambda: len(queue.pending()) == 1)
    make_repo(repo, {"train.py": "v = 2\n"})
    assert wait_for(lambda: len(queue.pending()) == 2)
    stop.set()
    poller.join(timeout=5)
    commits = [json.loads(p.read_text())["commit"] for p in queue.pending()]
    assert commits[0] == first and commits[1] == git(repo, "rev-parse", "HEAD")
