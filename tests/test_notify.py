"""Notifications against a real SMTP server (aiosmtpd, STARTTLS and login) and a real HTTP server."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from mlops.errors import ConfigError
from mlops.ledger import Ledger
from mlops.notify import Notifier, NotifyEvent

SECRET = "s3cr3t-Pa55word-never-logged"
SUMMARY = {
    "run": "3-cnn",
    "source": "git@example.com:team/models.git",
    "commit": "a" * 40,
    "script": "cnn.py",
    "kind": "cnn",
    "metric": "accuracy",
    "target": 0.8,
    "best_metric": 0.9644,
    "status": "reached",
    "reason": "trial 1 reached 0.9644 >= target 0.8",
    "diff": "-    epochs=1\n+    epochs=20\n",
    "trials": [
        {"number": 0, "status": "succeeded", "metric": 0.1756, "changes": []},
        {"number": 1, "status": "succeeded", "metric": 0.9644, "changes": ["epochs 1 -> 20"]},
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001
        self.messages.append(envelope.original_content)
        return "250 OK"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def smtp_server(certificate):
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = auth_data.login == b"mlops" and auth_data.password == SECRET.encode()
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield inbox, port, cert
    controller.stop()


def env_for(port: int, cert: Path, **extra: str) -> dict[str, str]:
    return {
        "MLOPS_SMTP_HOST": "127.0.0.1",
        "MLOPS_SMTP_PORT": str(port),
        "MLOPS_SMTP_USER": "mlops",
        "MLOPS_SMTP_PASSWORD": SECRET,
        "MLOPS_SMTP_SECURITY": "starttls",
        "MLOPS_SMTP_CAFILE": str(cert),
        "MLOPS_MAIL_FROM": "mlops@example.com",
        "MLOPS_MAIL_TO": "ada@example.com, team@example.com",
        **extra,
    }


def test_the_email_arrives_with_subject_parts_plot_and_report(smtp_server, tmp_path, caplog):
    inbox, port, cert = smtp_server
    plot, report = tmp_path / "metric.png", tmp_path / "report.html"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    report.write_text("<html>the report</html>")
    caplog.set_level(logging.DEBUG, logger="mlops.notify")
    notifier = Notifier.from_env(env_for(port, cert))
    (delivery,) = notifier.notify(
        {**SUMMARY, "plot_png": str(plot), "report_path": str(report)}, NotifyEvent.REACHED
    )
    assert delivery.ok and delivery.channel == "email" and delivery.attempts == 1
    (raw,) = inbox.messages
    message = message_from_bytes(raw, policy=policy.default)
    assert (
        message["Subject"].strip()
        == "[mlops] cnn.py (3-cnn): target reached, best accuracy 0.9644 (target 0.8)"
    )
    assert message["To"] == "ada@example.com, team@example.com"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "epochs 1 -> 20" in text and "+    epochs=20" in text
    assert "<table" in html and "cid:" in html
    parts = {part.get_content_type() for part in message.walk()}
    assert "image/png" in parts
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "mlops-3-cnn-report.html"
    assert SECRET not in raw.decode(errors="replace") and SECRET not in caplog.text


def test_a_mail_server_that_is_down_never_fails_and_is_logged(tmp_path, caplog, certificate):
    caplog.set_level(logging.INFO, logger="mlops.notify")
    waits: list[float] = []
    notifier = Notifier.from_env(env_for(free_port(), certificate[0]))
    notifier.sleep = waits.append
    (delivery,) = notifier.notify(SUMMARY, NotifyEvent.FAILED)
    assert not delivery.ok and delivery.attempts == 3
    assert waits == [1.0, 2.0]  # backoff between the attempts
    assert "email not sent after 3 attempts" in caplog.text
    assert SECRET not in caplog.text


def test_a_wrong_password_is_reported_without_the_password(smtp_server, caplog):
    inbox, port, cert = smtp_server
    caplog.set_level(logging.INFO, logger="mlops.notify")
    wrong = "Wrong-" + SECRET
    notifier = Notifier.from_env(env_for(port, cert, MLOPS_SMTP_PASSWORD=wrong))
    notifier.sleep = lambda _: None
    (delivery,) = notifier.notify(SUMMARY, NotifyEvent.REACHED)
    assert not delivery.ok and "SMTPAuthenticationError" in delivery.detail
    assert delivery.attempts == 1  # a refused login is not tried again (it could lock the account)
    assert inbox.messages == []
    assert wrong not in caplog.text and SECRET not in caplog.text


@pytest.fixture
def smtps_server(certificate):
    """Implicit TLS from the first byte (SMTPS), as on port 465."""
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    yield inbox, port, cert
    controller.stop()


def test_implicit_tls_delivers_the_gave_up_message(smtps_server):
    inbox, port, cert = smtps_server
    env = env_for(port, cert, MLOPS_SMTP_SECURITY="ssl", MLOPS_SMTP_USER="", MLOPS_SMTP_PASSWORD="")
    summary = {**SUMMARY, "trials": [{**SUMMARY["trials"][1], "duration_s": 12.34, "restarts": 3}]}
    (delivery,) = Notifier.from_env(env).notify(summary, NotifyEvent.GAVE_UP)
    assert delivery.ok, delivery.detail
    (raw,) = inbox.messages
    message = message_from_bytes(raw, policy=policy.default)
    assert "a training keeps dying" in message["Subject"]
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "<td>12.3 s</td><td>3</td>" in html


def test_the_same_message_over_plain_tls_is_refused_by_an_smtps_server(smtps_server, caplog):
    inbox, port, cert = smtps_server
    notifier = Notifier.from_env(env_for(port, cert, MLOPS_SMTP_USER="", MLOPS_SMTP_PASSWORD=""))
    notifier.sleep = lambda _: None
    notifier.timeout_s = 0.5  # the server waits for a TLS hello that never comes
    (delivery,) = notifier.notify(SUMMARY, NotifyEvent.REACHED)
    assert not delivery.ok and inbox.messages == []


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MLOPS_SMTP_SECURITY", "tls", "MLOPS_SMTP_SECURITY must be one of ssl, starttls, none, not 'tls'"),
        ("MLOPS_SMTP_PORT", "smtp", "MLOPS_SMTP_PORT must be a port number"),
        ("MLOPS_SMTP_PORT", "70000", "MLOPS_SMTP_PORT must be a port number"),
    ],
)
def test_settings_that_cannot_work_are_refused_by_name(name, value, says):
    # A mistyped security must never fall back to sending the password in clear.
    with pytest.raises(ConfigError) as raised:
        Notifier.from_env({"MLOPS_SMTP_HOST": "127.0.0.1", name: value})
    assert says in str(raised.value)


def test_a_summary_that_cannot_be_rendered_is_a_failed_delivery_not_an_exception(smtp_server, caplog):
    inbox, port, cert = smtp_server
    caplog.set_level(logging.INFO, logger="mlops.notify")
    (delivery,) = Notifier.from_env(env_for(port, cert)).notify(
        {**SUMMARY, "trials": [{}]}, NotifyEvent.FAILED
    )
    assert not delivery.ok and "could not be made" in caplog.text and inbox.messages == []


class Flaky(BaseHTTPRequestHandler):
    """Answers with the statuses queued in ``plan``, then 200."""

    plan: list[int] = []
    hits: list[dict] = []

    def do_POST(self):  # noqa: N802
        Flaky.hits.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(Flaky.plan.pop(0) if Flaky.plan else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("plan", "ok", "attempts"), [([503], True, 2), ([404], False, 1), ([500] * 3, False, 3)]
)
def test_the_webhook_retries_a_server_error_and_not_a_refusal(plan, ok, attempts):
    Flaky.plan, Flaky.hits = list(plan), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    waits: list[float] = []
    try:
        notifier = Notifier.from_env({"MLOPS_WEBHOOK_URL": f"http://127.0.0.1:{server.server_address[1]}/h"})
        notifier.sleep = waits.append
        (delivery,) = notifier.notify(SUMMARY, NotifyEvent.EXHAUSTED)
    finally:
        server.shutdown()
    assert (delivery.ok, delivery.attempts, len(Flaky.hits)) == (ok, attempts, attempts)
    assert waits == [1.0, 2.0][: attempts - 1]
    assert "target not reached" in Flaky.hits[0]["text"]


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_webhook_gets_slack_json_and_a_dead_one_is_only_logged(caplog):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "T0KEN-in-the-url-1234"
    url = f"http://127.0.0.1:{server.server_address[1]}/services/{token}"
    try:
        (delivery,) = Notifier.from_env({"MLOPS_WEBHOOK_URL": url}).notify(SUMMARY, NotifyEvent.REACHED)
    finally:
        server.shutdown()
    assert delivery.ok
    (payload,) = Hook.received
    assert payload["text"].startswith("[mlops] cnn.py (3-cnn): target reached")
    assert "1: succeeded 0.9644 epochs 1 -> 20" in payload["blocks"][-1]["text"]["text"]
    assert payload["blocks"][1]["elements"][0]["text"] == f"{SUMMARY['source']} at {'a' * 12}"
    caplog.set_level(logging.INFO, logger="mlops.notify")
    dead = Notifier.from_env({"MLOPS_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/services/{token}"})
    dead.sleep = lambda _: None
    (delivery,) = dead.notify(SUMMARY, NotifyEvent.FAILED)
    assert not delivery.ok and "webhook not sent after 3 attempts" in caplog.text
    assert token not in caplog.text and token not in delivery.detail


@pytest.mark.slow
def test_a_run_mails_its_result_and_a_dead_server_never_fails_it(smtp_server, repo_factory, tmp_path):
    from tests.support.processes import run_cli
    from tests.support.scripts import KMEANS_LABELLED as KMEANS

    inbox, port, cert = smtp_server
    repo = repo_factory({"clusters.py": KMEANS})
    env = env_for(port, cert, MLOPS_API_TOKEN="planted-token-" + SECRET)
    done = run_cli(
        "run", str(repo), "--runtime", "local", "--workspace", str(tmp_path / "ws"), cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "email sent" in done.stdout
    (raw,) = inbox.messages
    assert "target reached" in message_from_bytes(raw, policy=policy.default)["Subject"]

    down = env_for(free_port(), cert, MLOPS_API_TOKEN="planted-token-" + SECRET)
    again = run_cli(
        "run", str(repo), "--runtime", "local", "--workspace", str(tmp_path / "ws2"), cwd=tmp_path, env=down
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "email NOT sent" in again.stdout
    everything = (
        again.stdout
        + again.stderr
        + "".join(
            p.read_text(errors="replace")
            for p in (tmp_path / "ws2").rglob("*")
            if p.is_file() and p.suffix != ".db"
        )
    )
    everything += "".join(str(e) for e in Ledger(tmp_path / "ws2" / "ledger.db").events())
    assert SECRET not in everything
