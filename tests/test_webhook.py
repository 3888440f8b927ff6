"""Push triggers without Jenkins: what the GitHub webhook accepts and queues (signatures, payloads, the
allow-list), the durable queue and its worker (each commit once, nothing lost across a restart or kill -9),
and the poller. The server itself under load, TLS and limits: test_webhook_server.py."""

from __future__ import annotations

import json
import signal
import threading

import pytest
import requests

from mlops.errors import ConfigError
from mlops.webhook.pushes import Push, PushQueue, Worker, watch
from mlops.webhook.server import make_server
from tests.support.processes import run_cli
from tests.support.repos import git, make_repo
from tests.support.webhook import (
    CLONE_URL,
    GOOD_MODEL,
    SECRET,
    nothing_else_ran,
    post,
    push_body,
    queued_commits,
    serve_process,
    serving,
    sign,
    wait_for,
)


@pytest.fixture
def server(tmp_path):
    with serving(tmp_path) as (url, runs, queue, _):
        yield url, runs, queue


def test_a_signed_push_is_queued_and_run_once(server):
    url, runs, queue = server
    response = post(url, push_body())
    assert response.status_code == 202 and response.json()["message"] == f"queued {'b' * 12}"
    assert wait_for(lambda: runs == [("https://example.com/t/m.git", "main", "b" * 40)])
    again = post(url, push_body())
    assert again.status_code == 200 and "queued before" in again.json()["message"]
    assert nothing_else_ran(url, runs, queue, before=["b" * 40])


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
    assert nothing_else_ran(url, runs, queue)


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


def raw_post(url: str, payload: object) -> requests.Response:
    body = json.dumps(payload)
    return post(url, body)


@pytest.mark.parametrize(
    "after",
    ["", "b" * 39, "b" * 41, "B" * 40, "bbbb/../" + "b" * 32, "b" * 39 + "\x00", 12345, ["b" * 40], None],
)
def test_an_after_that_is_not_a_commit_id_gets_400_and_nothing_runs(server, after):
    url, runs, queue = server
    payload = {"ref": "refs/heads/main", "after": after, "repository": {"clone_url": CLONE_URL}}
    response = raw_post(url, payload)  # an answer, never a dropped connection
    assert response.status_code == 400 and "'after' must be a commit id" in response.json()["message"]
    assert nothing_else_ran(url, runs, queue)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"ref": "refs/heads/../main", "after": "b" * 40}, "'ref'"),
        ({"ref": "main", "after": "b" * 40}, "'ref'"),
        ({"ref": "refs/heads/ma\x00in", "after": "b" * 40}, "'ref'"),
        ({"ref": ["refs/heads/main"], "after": "b" * 40}, "'ref'"),
        ({"ref": "refs/heads/main", "after": "b" * 40, "repository": {"clone_url": 5}}, "clone_url"),
        ({"ref": "refs/heads/main", "after": "b" * 40, "repository": "t/m"}, "clone_url"),
        ([1, 2], "JSON object"),
    ],
)
def test_a_bad_ref_or_repository_gets_400_naming_the_field(server, payload, field):
    url, runs, queue = server
    if isinstance(payload, dict):
        payload = {"repository": {"clone_url": CLONE_URL}, **payload}
    response = raw_post(url, payload)
    assert response.status_code == 400 and field in response.json()["message"]
    assert nothing_else_ran(url, runs, queue)


def test_a_sha256_commit_id_is_accepted(server):
    url, runs, _ = server
    assert post(url, push_body(after="c" * 64)).status_code == 202
    assert wait_for(lambda: runs == [(CLONE_URL, "main", "c" * 64)])


@pytest.fixture
def by_name(tmp_path):
    """A server whose allow-list names the repository t/m (owner/name) and one local path."""
    listed = str(tmp_path / "listed-repo")
    with serving(tmp_path, repositories=("t/m", listed)) as (url, runs, queue, _):
        yield url, runs, queue, listed


@pytest.mark.parametrize(
    ("clone_url", "full_name"),
    [
        ("https://example.com/other/repo.git", "other/repo"),  # not on the list
        ("/etc", "t/m"),  # a local path under a listed name
        ("file:///etc", "t/m"),
        ("--upload-pack=touch /tmp/pwned", "t/m"),  # an option for git
        ("-u", "x/y"),
        ("https://example.com/other/repo.git", ""),
    ],
)
def test_repositories_not_on_the_allow_list_local_paths_and_options_are_refused(
    by_name, clone_url, full_name
):
    url, runs, queue, _ = by_name
    response = post(url, push_body(clone_url=clone_url, full_name=full_name))
    assert response.status_code == 403 and "not in repositories" in response.json()["message"]
    assert nothing_else_ran(url, runs, queue)


def test_a_listed_name_trains_its_clone_url_and_a_listed_path_is_trained_as_listed(by_name):
    url, runs, _, listed = by_name
    assert post(url, push_body(clone_url="https://github.com/T/M.git", full_name="T/M")).status_code == 202
    assert post(url, push_body(after="e" * 40, clone_url=listed + "/", full_name="")).status_code == 202
    assert wait_for(lambda: len(runs) == 2)
    assert runs == [("https://github.com/T/M.git", "main", "b" * 40), (listed, "main", "e" * 40)]


def test_a_server_without_an_allow_list_or_a_source_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="repositories"):
        make_server("127.0.0.1", 0, SECRET, "main", PushQueue(tmp_path))


def test_a_push_whose_pull_failed_is_recorded_and_runs_when_delivered_again(tmp_path):
    """The runner pulls for real: the first delivery's pull fails (the repository is not there yet), the
    failure is a ledger event that mlops history shows, and the same delivery again is pulled and run."""
    from mlops.ledger import Ledger
    from mlops.pull import failed_pulls, pull

    source = str(tmp_path / "model")
    ledger = Ledger(tmp_path / "ws" / "ledger.db")
    pulled: list[str] = []

    def runner(src: str, ref: str, commit: str) -> None:
        pulled.append(pull(src, commit, tmp_path / "ws", ledger).commit)

    with serving(tmp_path, runner=runner, repositories=(source,)) as (url, _, queue, _):
        commit = "a" * 40
        assert post(url, push_body(after=commit, clone_url=source, full_name="")).status_code == 202
        assert wait_for(lambda: queue.pending() == [] and failed_pulls(ledger))
        assert failed_pulls(ledger)[0]["source"] == source and pulled == []
        repo = make_repo(tmp_path / "model", {"train.py": "print(1)\n"})
        commit = git(repo, "rev-parse", "HEAD")
        body = push_body(after=commit, clone_url=source, full_name="")
        assert post(url, body).status_code == 202  # the first try of this commit
        assert wait_for(lambda: pulled == [commit])
        assert post(url, body).status_code == 200  # recorded now: a redelivery is not run twice
        failed = post(url, push_body(after="a" * 40, clone_url=source, full_name=""))
        assert failed.status_code == 202  # the commit whose pull failed is tried again
        assert wait_for(lambda: queue.pending() == [])


@pytest.mark.slow
def test_mlops_serve_trains_a_redelivery_of_a_push_whose_pull_failed(tmp_path):
    """End to end: `mlops serve` gets a push of a commit its repository does not have yet; the failed pull
    is in `mlops history`; the commit arrives, the same delivery comes again, and it is trained."""
    work = make_repo(tmp_path / "work", {"train.py": GOOD_MODEL})
    commit = git(work, "rev-parse", "HEAD")
    origin = make_repo(tmp_path / "origin", {"README.md": "not yet\n"})  # listed, without the commit
    (tmp_path / "mlops.toml").write_text(f'repositories = ["{origin}"]\nmax_trials = 1\ntarget = 0.5\n')
    body = push_body(after=commit, clone_url=str(origin), full_name="")

    def history() -> str:
        return run_cli("history", cwd=tmp_path).stdout

    with serve_process(tmp_path) as (url, _, _):
        assert post(url, body).status_code == 202
        assert wait_for(lambda: f"pull failed: {origin} at {commit}" in history(), 60), history()
        git(origin, "fetch", "-q", str(work), "main:refs/heads/arrived")
        assert post(url, body).status_code == 202  # the same delivery again: not seen, so queued
        assert wait_for(lambda: "reached" in history(), 120), history()
        assert "pull failed" not in history()
        assert post(url, body).status_code == 200  # now it has run: never twice


@pytest.mark.slow
def test_a_push_accepted_before_kill_9_of_the_server_is_trained_once_after_a_restart(tmp_path):
    """The 202 is sent once the push is in the queue on disk: `kill -9` of the server right after it loses
    nothing; the next `mlops serve` trains the commit, once, and a redelivery is not trained again."""
    origin = make_repo(tmp_path / "model", {"train.py": GOOD_MODEL})
    commit = git(origin, "rev-parse", "HEAD")
    (tmp_path / "mlops.toml").write_text(f'repositories = ["{origin}"]\nmax_trials = 1\ntarget = 0.5\n')
    body = push_body(after=commit, clone_url=str(origin), full_name="")

    def history() -> str:
        return run_cli("history", "--json", cwd=tmp_path).stdout

    with serve_process(tmp_path) as (url, serve, _):
        assert post(url, body).status_code == 202
        serve.send_signal(signal.SIGKILL)
        serve.wait(timeout=30)
    assert queued_commits(tmp_path / ".mlops") == [commit]  # taken or not, a push leaves only when it ran
    with serve_process(tmp_path) as (url, _, log):
        assert wait_for(lambda: '"reached": true' in history(), 180), log.read_text()
        assert post(url, body).status_code == 200  # it has run: never twice
        assert wait_for(lambda: queued_commits(tmp_path / ".mlops") == [])
    runs = [json.loads(line) for line in history().splitlines()]
    assert [run["commit"] for run in runs] == [commit]
