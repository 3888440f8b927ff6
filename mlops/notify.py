"""Job 5's messages: email through SMTP and Slack-compatible webhooks, retried, never fatal, never leaky.

Settings come from the environment as Jenkins's credential binding provides them (read once, in
:meth:`Notifier.from_env`): MLOPS_SMTP_HOST, MLOPS_SMTP_PORT, MLOPS_SMTP_USER, MLOPS_SMTP_PASSWORD,
MLOPS_SMTP_SECURITY (ssl, starttls or none), MLOPS_SMTP_CAFILE (a private CA), MLOPS_MAIL_FROM,
MLOPS_MAIL_TO (comma-separated) and MLOPS_WEBHOOK_URL. A server that is down is retried with backoff, then logged; the pipeline goes on.
Every line logged passes through a redactor that hides the values of secret variables.
"""

from __future__ import annotations

import enum
import html
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import requests

from mlops.domain import RunStatus
from mlops.envsafe import Redactor
from mlops.errors import ConfigError
from mlops.ledger import Ledger, RunRecord
from mlops.report import notification

log = logging.getLogger("mlops.notify")


class NotifyEvent(enum.StrEnum):
    REACHED = "reached"
    EXHAUSTED = "exhausted"
    FAILED = "failed"
    GAVE_UP = "gave-up"  # the monitor stopped restarting a trial


class SmtpSecurity(enum.StrEnum):
    SSL = "ssl"  # TLS from the first byte (port 465)
    STARTTLS = "starttls"  # plain connection upgraded before login (port 587)
    NONE = "none"  # no encryption: a relay on the same machine only

    @property
    def default_port(self) -> int:
        return {SmtpSecurity.SSL: 465, SmtpSecurity.STARTTLS: 587, SmtpSecurity.NONE: 25}[self]


# Errors that another attempt cannot fix: retrying a refused login can lock the account.
PERMANENT_SMTP = (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused)
SLACK_TEXT_LIMIT = 3000  # characters in one section block


class PermanentError(Exception):
    """A delivery refused for a reason that does not change on its own (bad credentials, a 4xx answer)."""


@dataclass(frozen=True)
class Delivery:
    channel: str  # "email" or "webhook"
    ok: bool
    attempts: int
    detail: str


def subject_of(summary: dict[str, Any], event: NotifyEvent) -> str:
    metric = summary.get("metric") or "metric"
    best = summary.get("best_metric")
    best_text = f"{best:.4f}" if isinstance(best, int | float) else "none"
    head = {
        NotifyEvent.REACHED: "target reached",
        NotifyEvent.EXHAUSTED: "target not reached",
        NotifyEvent.FAILED: "run failed",
        NotifyEvent.GAVE_UP: "a training keeps dying",
    }[event]
    # Against the script's previous commit (mlops/regression.py), said first: what a reader must see.
    against = {"regression": "REGRESSION: ", "improvement": "improved: "}.get(str(summary.get("change")), "")
    return (
        f"[mlops] {against}{summary.get('script')} ({summary.get('run')}): {head}, best {metric} {best_text} "
        f"(target {summary.get('target')})"
    )


def _cells(trial: dict[str, Any]) -> tuple[str, str, str]:
    metric = f"{trial['metric']:.4f}" if isinstance(trial.get("metric"), int | float) else "-"
    took = f"{trial['duration_s']:.1f} s" if isinstance(trial.get("duration_s"), int | float) else "-"
    return metric, took, str(trial.get("restarts") or 0)


def text_body(summary: dict[str, Any], event: NotifyEvent) -> str:
    lines = [
        subject_of(summary, event).removeprefix("[mlops] "),
        "",
        f"source: {summary.get('source')} at {str(summary.get('commit'))[:12]}",
        f"status: {summary.get('status')}: {summary.get('reason') or ''}",
        *([f"against the previous commit: {summary['comparison']}"] if summary.get("comparison") else []),
        "",
        "trials (number, status, metric, duration, restarts, changes):",
    ]
    for t in summary.get("trials", []):
        metric, took, restarts = _cells(t)
        lines.append(
            f"  {t['number']:>2}  {t['status']:<9}  {metric:>7}  {took:>7}  {restarts:>2}  "
            f"{'; '.join(t.get('changes') or ['as pushed'])}"
        )
    if summary.get("diff"):
        lines += ["", "the best source against what was pushed:", summary["diff"]]
    return "\n".join(lines) + "\n"


def html_body(summary: dict[str, Any], event: NotifyEvent, plot_cid: str | None) -> str:
    rows = ""
    for t in summary.get("trials", []):
        metric, took, restarts = _cells(t)
        changes = html.escape("; ".join(t.get("changes") or ["as pushed"]))
        rows += (
            f"<tr><td>{t['number']}</td><td>{html.escape(str(t['status']))}</td><td>{metric}</td>"
            f"<td>{took}</td><td>{restarts}</td><td>{changes}</td></tr>"
        )
    plot = f'<p><img src="cid:{plot_cid[1:-1]}" alt="metric per trial"></p>' if plot_cid else ""
    diff = f"<pre>{html.escape(summary['diff'])}</pre>" if summary.get("diff") else ""
    return (
        f"<html><body><h2>{html.escape(subject_of(summary, event).removeprefix('[mlops] '))}</h2>"
        f"<p>{html.escape(str(summary.get('source')))} at {html.escape(str(summary.get('commit'))[:12])}: "
        f"{html.escape(str(summary.get('reason') or ''))}</p>"
        + (f"<p><b>{html.escape(str(summary['comparison']))}</b></p>" if summary.get("comparison") else "")
        + f'<table border="1" cellpadding="4"><tr><th>trial</th><th>status</th><th>metric</th>'
        f"<th>duration</th><th>restarts</th><th>changes</th></tr>{rows}</table>{plot}{diff}</body></html>"
    )


@dataclass
class Notifier:
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    mail_from: str | None = None
    mail_to: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    cafile: str | None = None  # a private CA that signed the mail server's certificate
    redact: Redactor = field(default_factory=Redactor)
    attempts: int = 3
    base_delay_s: float = 1.0
    timeout_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Notifier:
        """Settings from the environment; a value that cannot work is a ConfigError naming the variable."""
        raw = env.get("MLOPS_SMTP_SECURITY") or "starttls"
        try:
            security = SmtpSecurity(raw.strip().lower())
        except ValueError:
            choices = ", ".join(s.value for s in SmtpSecurity)
            raise ConfigError(f"MLOPS_SMTP_SECURITY must be one of {choices}, not {raw!r}") from None
        port = env.get("MLOPS_SMTP_PORT") or str(security.default_port)
        if not port.strip().isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"MLOPS_SMTP_PORT must be a port number (1 to 65535), not {port!r}")
        return cls(
            smtp_host=env.get("MLOPS_SMTP_HOST") or None,
            smtp_port=int(port),
            smtp_user=env.get("MLOPS_SMTP_USER") or None,
            smtp_password=env.get("MLOPS_SMTP_PASSWORD") or None,
            security=security,
            mail_from=env.get("MLOPS_MAIL_FROM") or env.get("MLOPS_SMTP_USER") or "mlops@localhost",
            mail_to=[a.strip() for a in env.get("MLOPS_MAIL_TO", "").split(",") if a.strip()],
            webhook_url=env.get("MLOPS_WEBHOOK_URL") or None,
            cafile=env.get("MLOPS_SMTP_CAFILE") or None,
            redact=Redactor.from_env(env),
        )

    @property
    def configured(self) -> bool:
        return bool((self.smtp_host and self.mail_to) or self.webhook_url)

    def notify(self, summary: dict[str, Any], event: NotifyEvent) -> list[Delivery]:
        deliveries = []
        if self.smtp_host and self.mail_to:
            deliveries.append(self._retry("email", lambda: self._send_email(summary, event)))
        if self.webhook_url:
            deliveries.append(self._retry("webhook", lambda: self._post_webhook(summary, event)))
        return deliveries

    def _retry(self, channel: str, send: Callable[[], str]) -> Delivery:
        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                detail = send()
                log.info(self.redact(f"{channel} sent: {detail}"))
                return Delivery(channel, True, attempt, self.redact(detail))
            except (PermanentError, *PERMANENT_SMTP) as e:
                error = self.redact(f"{type(e).__name__}: {e}")
                log.error(f"{channel} not sent, refused (not retried): {error}")
                return Delivery(channel, False, attempt, error)
            except (OSError, smtplib.SMTPException, requests.RequestException) as e:
                error = self.redact(f"{type(e).__name__}: {e}")
                log.warning(f"{channel} attempt {attempt}/{self.attempts} failed: {error}")
                if attempt < self.attempts:
                    self.sleep(self.base_delay_s * 2 ** (attempt - 1))
            except Exception as e:  # noqa: BLE001 (a message that cannot be built must not stop the pipeline)
                error = self.redact(f"{type(e).__name__}: {e}")
                log.error(f"{channel} not sent, the message could not be made: {error}")
                return Delivery(channel, False, attempt, error)
        log.error(f"{channel} not sent after {self.attempts} attempts: {error}")
        return Delivery(channel, False, self.attempts, error)

    def build_email(self, summary: dict[str, Any], event: NotifyEvent) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = subject_of(summary, event)
        message["From"] = self.mail_from
        message["To"] = ", ".join(self.mail_to)
        message.set_content(text_body(summary, event))
        plot = summary.get("plot_png")
        cid = make_msgid() if plot and Path(plot).exists() else None
        message.add_alternative(html_body(summary, event, cid), subtype="html")
        if cid and plot:
            html_part = list(message.iter_parts())[-1]  # the HTML alternative just added
            html_part.add_related(Path(plot).read_bytes(), "image", "png", cid=cid)
        report = summary.get("report_path")
        if report and Path(report).exists():
            message.add_attachment(
                Path(report).read_bytes(),
                maintype="text",
                subtype="html",
                filename=f"mlops-{summary.get('run')}-report.html",
            )
        return message

    def _send_email(self, summary: dict[str, Any], event: NotifyEvent) -> str:
        message = self.build_email(summary, event)
        context = ssl.create_default_context(cafile=self.cafile)
        host = self.smtp_host or "localhost"  # notify() sends mail only when a host is set
        if self.security is SmtpSecurity.SSL:
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                host, self.smtp_port, timeout=self.timeout_s, context=context
            )
        else:
            server = smtplib.SMTP(host, self.smtp_port, timeout=self.timeout_s)
        with server:
            if self.security is SmtpSecurity.STARTTLS:
                server.starttls(context=context)
            if self.smtp_user and self.smtp_password:
                server.login(self.smtp_user, self.smtp_password)
            server.send_message(message)
        return f"{message['Subject']} to {', '.join(self.mail_to)} via {self.smtp_host}:{self.smtp_port}"

    def _post_webhook(self, summary: dict[str, Any], event: NotifyEvent) -> str:
        subject = subject_of(summary, event)
        trials = "\n".join(
            f"{t['number']}: {t['status']} {_cells(t)[0]} " + "; ".join(t.get("changes") or ["as pushed"])
            for t in summary.get("trials", [])
        )
        where = f"{summary.get('source')} at {str(summary.get('commit'))[:12]}"
        payload = {
            "text": subject,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{subject}*"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": where}]},
                {"type": "section", "text": {"type": "mrkdwn", "text": _fenced(trials)}},
            ],
        }
        response = requests.post(self.webhook_url or "", json=payload, timeout=self.timeout_s)
        if 400 <= response.status_code < 500 and response.status_code != 429:
            raise PermanentError(f"HTTP {response.status_code}: {response.text[:200]}")
        response.raise_for_status()
        return f"{subject} (HTTP {response.status_code})"


def _fenced(text: str) -> str:
    """A code block that fits in one Slack section (long tables lose their tail, not the whole message)."""
    room = SLACK_TEXT_LIMIT - 8
    if len(text) > room:
        text = text[: room - 4] + "\n..."
    return f"```{text}```"


def notify_run(ledger: Ledger, run: RunRecord, notifier: Notifier) -> list[str]:
    """Send what a finished run calls for, once per event: a run shown again (the same commit pushed
    twice) is not sent again. Each delivery is recorded in the ledger; returns one line per delivery."""
    if not notifier.configured:
        return []
    event = {RunStatus.REACHED: NotifyEvent.REACHED, RunStatus.EXHAUSTED: NotifyEvent.EXHAUSTED}.get(
        run.status, NotifyEvent.FAILED
    )
    kinds = [event] + ([NotifyEvent.GAVE_UP] if ledger.gave_up(run.id) else [])
    sent = ledger.notified(run.id)
    lines: list[str] = []
    for kind in kinds:
        if kind.value in sent:
            continue
        for delivery in notifier.notify(notification(ledger, run.id), kind):
            state = "sent" if delivery.ok else f"NOT sent ({delivery.detail})"
            lines.append(f"{delivery.channel} {state}")
            ledger.record_notification(
                run.id, kind.value, delivery.channel, delivery.ok, f"{kind.value}: {state}"
            )
    return lines
