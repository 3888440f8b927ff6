"""The webhook's server as the internet meets it: a real uvicorn server on loopback and real HTTP clients.
Bodies over the limit, requests that stall, more connections than the cap, 300 slow clients at once, TLS
with a certificate made here, the health endpoint; the log never shows a traceback or the secret."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import pytest
import requests

from mlops.webhook.limits import Limits
from mlops.webhook.pushes import Push
from mlops.webhook.server import Tls
from tests.support.processes import run_cli
from tests.support.repos import make_repo
from tests.support.slow_clients import HELD, SlowClients
from tests.support.webhook import (
    CLONE_URL,
    SECRET,
    nothing_else_ran,
    post,
    push_body,
    read_to_end,
    serve_process,
    serving,
    sign,
    status_of,
    threads_of,
    wait_for,
)


@pytest.fixture
def server(tmp_path):
    with serving(tmp_path) as (url, runs, queue, _):
        yield url, runs, queue


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


def test_a_body_over_the_limit_is_refused_when_it_is_sent_in_chunks_too(server):
    """No Content-Length to trust: the body is read up to the limit and no further."""
    url, runs, queue = server
    chunks = (b"x" * 65536 for _ in range(20))  # 1.25 MB, chunked
    response = requests.post(url, data=chunks, timeout=10, headers={"X-GitHub-Event": "push"})
    assert response.status_code == 413 and "body over 1048576 bytes" in response.json()["message"]
    assert nothing_else_ran(url, runs, queue)


def test_the_health_endpoint_says_the_server_and_its_worker_are_up(tmp_path):
    with serving(tmp_path) as (url, _, queue, worker):
        health = url.replace("/hooks/github", "/healthz")
        answer = requests.get(health, timeout=10)
        assert answer.status_code == 200 and answer.json() == {"message": "ok", "queued": 0}
        assert requests.head(health, timeout=10).status_code == 200
        assert requests.post(health, timeout=10).status_code == 405
        assert requests.get(url, timeout=10).status_code == 405  # the hook takes POST only
        assert requests.get(url.replace("/hooks/github", "/x"), timeout=10).status_code == 404
        worker.stopping.set()
        worker.join(timeout=10)
        queue.put(Push(CLONE_URL, "main", "c" * 40))  # nothing runs it now
        answer = requests.get(health, timeout=10)
        assert answer.status_code == 503
        assert answer.json() == {"message": "the push worker has stopped", "queued": 1}


def test_a_body_that_stalls_gets_408_and_the_connection_ends(tmp_path):
    with serving(tmp_path, limits=Limits(request_timeout_s=0.5)) as (url, runs, queue, _):
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            answer = read_to_end(raw)  # the server closes it: reading ends
        assert answer.startswith(b"HTTP/1.1 408 ") and b"the body did not arrive within 0.5 s" in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"POST /hooks/gi")  # a head that never ends
            assert read_to_end(raw).startswith(b"HTTP/1.1 408 ")
        assert nothing_else_ran(url, runs, queue)


def test_connections_over_the_cap_get_503_and_the_server_serves_again_once_they_end(tmp_path):
    with serving(tmp_path, limits=Limits(max_connections=5)) as (url, runs, queue, _):
        port = int(url.split(":")[2].split("/")[0])
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as one_more:
                answer = read_to_end(one_more)
            assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer
        finally:
            for sock in held:
                sock.close()
        assert wait_for(lambda: status_of(url) in (200, 202), 10)  # queued (or queued before) once they end
        assert wait_for(lambda: [run[2] for run in runs] == ["b" * 40] and queue.pending() == [])


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made by openssl (installed by make test-tools)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_with_a_certificate_the_webhook_is_served_over_tls_only(tmp_path, certificate, caplog):
    cert, key = certificate
    with serving(tmp_path, tls=Tls(cert, key)) as (url, runs, queue, _):
        assert url.startswith("https://127.0.0.1:")
        body = push_body()
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(body)}
        answer = requests.post(url, data=body, headers=headers, timeout=10, verify=str(cert))
        assert answer.status_code == 202
        assert wait_for(lambda: [run[2] for run in runs] == ["b" * 40])
        with pytest.raises(requests.exceptions.SSLError):  # not a certificate the client trusts
            requests.post(url, data=body, headers=headers, timeout=10)
        with pytest.raises(requests.ConnectionError):  # plain HTTP to the TLS port
            requests.post(url.replace("https:", "http:"), data=body, headers=headers, timeout=10)
        assert requests.get(url.replace("/hooks/github", "/healthz"), timeout=10, verify=str(cert)).ok
    assert "Traceback" not in caplog.text and SECRET not in caplog.text


def test_a_certificate_without_its_key_or_a_bad_one_is_a_clear_error(tmp_path, certificate):
    cert, _ = certificate
    (tmp_path / "mlops.toml").write_text('repositories = ["t/m"]\n')
    env = {"MLOPS_WEBHOOK_SECRET": SECRET}
    alone = run_cli("serve", "--port", "0", "--tls-cert", str(cert), cwd=tmp_path, env=env, timeout=60)
    assert alone.returncode == 2 and "--tls-cert and --tls-key go together" in alone.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    wrong = run_cli("serve", "--port", "0", "--tls-cert", str(cert), "--tls-key", str(bad), cwd=tmp_path,
                    env=env, timeout=60)  # fmt: skip
    assert wrong.returncode == 2 and "the TLS certificate or key cannot be used" in wrong.stderr
    assert "Traceback" not in wrong.stderr


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


def test_300_slow_connections_end_within_the_timeout_and_a_real_push_is_answered_meanwhile(tmp_path):
    """300 clients that hold connections (silent, slow-loris, a stalled body, abandoned, reset) against
    `mlops serve`: a signed push is answered and queued meanwhile; each held connection is ended by the
    server with 408 within the request timeout; the server holds no thread per connection; its log has no
    traceback and never the secret."""
    origin = make_repo(tmp_path / "model", {"README.md": "no model yet\n"})
    (tmp_path / "mlops.toml").write_text(f'repositories = ["{origin}"]\n')
    body = push_body(after="d" * 40, clone_url=str(origin), full_name="")  # its pull fails: cheap to run
    with serve_process(tmp_path, "--request-timeout", "5") as (url, serve, log):
        threads_before = threads_of(serve.pid)
        port = int(url.split(":")[2].split("/")[0])
        clients = SlowClients("127.0.0.1", port, 300)
        clients.open()
        try:
            watcher = threading.Thread(target=clients.watch, args=(30,))
            watcher.start()
            answer = post(url, body)
            answered_after_s = time.monotonic() - clients.opened_at
            threads_meanwhile = threads_of(serve.pid)
            watcher.join()
        finally:
            clients.close()
        assert answer.status_code == 202
        # The 2 threads that write the queue and those of the run: none per connection.
        assert threads_meanwhile <= threads_before + 6
        assert clients.still_open() == []
        held = [h for h in clients.held if h.kind in HELD]
        assert len(held) == 180 and all(h.answer.startswith(b"HTTP/1.1 408 ") for h in held)
        ended = [h.ended_after_s for h in held]
        assert answered_after_s < min(ended)  # answered while every one of them was held
        assert max(ended) < 5 + 10  # ended by the server's timeout, not by the clients giving up at 30 s
        assert wait_for(lambda: "pull failed" in run_cli("history", cwd=tmp_path).stdout, 60)
        assert requests.get(url.replace("/hooks/github", "/healthz"), timeout=10).status_code == 200
    text = log.read_text()
    assert "Traceback" not in text and "Exception" not in text, text[-3000:]
    assert SECRET not in text and sign(body) not in text


def test_a_request_half_sent_when_the_server_stops_is_answered_503_and_logs_no_fault(tmp_path, caplog):
    with serving(tmp_path) as (url, _, _, _):
        port = int(url.split(":")[2].split("/")[0])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert requests.get(url.replace("/hooks/github", "/healthz"), timeout=10).ok  # it has read the above
    with raw:
        assert read_to_end(raw).startswith(b"HTTP/1.1 503 ")
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
    assert "Traceback" not in caplog.text
