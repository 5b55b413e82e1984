"""Alerts: say clearly, somewhere a person looks, why the pipeline stopped.

- C1, A3, D3, B6: run failures, refusals, missed sessions, quarantines and residuals
  become `Alert`s sent to every configured sink.
- X9: `Alerter.self_test` proves each route delivers; a failing sink is reported on
  stderr and counted, and never stops the others.
- S2: every alert is redacted before any sink sees it (webhook URLs are secrets too).
- S7: repeated auth / secret-access failures raise one critical alert per window.

Plain stdlib (urllib) on purpose: alerting must still work when the thing that broke
is a third-party HTTP stack.
"""

import json
import logging
import logging.handlers
import os
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, TextIO, runtime_checkable
from urllib.parse import urlsplit
from urllib.request import (
    HTTPRedirectHandler,
    OpenerDirector,
    ProxyHandler,
    Request,
    build_opener,
)

from tecl_pipeline.common.endpoints import is_loopback, validate_endpoint
from tecl_pipeline.common.events import Event, EventKind, Severity
from tecl_pipeline.config.settings import ENV_KEYS, ConfigError
from tecl_pipeline.observability.logs import EXCHANGE_TZ, LOGGER_NAME
from tecl_pipeline.observability.redaction import Redactor

SEVERITIES: tuple[Severity, ...] = tuple(Severity)
ALERT_FILE_NAME = "alerts.jsonl"
# Slack's limits: header text 150 chars, section text 3000 chars.
_SLACK_HEADER_MAX = 150
_SLACK_SECTION_MAX = 3000
_SEVERITY_MARK: Mapping[Severity, str] = MappingProxyType(
    {Severity.INFO: "[info]", Severity.WARNING: "[WARNING]", Severity.CRITICAL: "[CRITICAL]"}
)


def _now() -> datetime:
    return datetime.now(EXCHANGE_TZ)


@dataclass(frozen=True)
class Alert:
    """One message for a person: what happened, for which session and run, how bad."""

    kind: str
    title: str
    detail: str = ""
    session: date | None = None
    run_id: str | None = None
    severity: Severity = Severity.WARNING
    at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        if not self.kind:
            raise ValueError("an alert needs a kind")
        # A Severity, never its name: every layer passes the typed value, so a misspelt or
        # stringly severity is a bug to surface, not a value to convert.
        if not isinstance(self.severity, Severity):
            raise ValueError(
                f"severity must be a Severity {tuple(map(str, SEVERITIES))}, got {self.severity!r}"
            )
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("Alert.at must be timezone-aware")

    def text(self) -> str:
        """Plain text, for logs, stderr and the webhook's fallback text."""
        where = ", ".join(
            part
            for part in (
                f"session {self.session.isoformat()}" if self.session else "",
                f"run {self.run_id}" if self.run_id else "",
            )
            if part
        )
        head = f"{_SEVERITY_MARK[self.severity]} tecl-pipeline {self.kind}: {self.title}"
        head = f"{head} ({where})" if where else head
        return f"{head}\n{self.detail}" if self.detail else head

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["session"] = self.session.isoformat() if self.session else None
        data["at"] = self.at.isoformat()
        return data

    def redacted(self, redactor: Redactor) -> "Alert":
        return replace(
            self,
            kind=redactor.redact(self.kind),
            title=redactor.redact(self.title),
            detail=redactor.redact(self.detail),
            run_id=None if self.run_id is None else redactor.redact(self.run_id),
        )


@runtime_checkable
class AlertSink(Protocol):
    """Delivers an alert or raises; `name` (optional) identifies it in results."""

    def send(self, alert: Alert) -> None: ...


def sink_name(sink: AlertSink) -> str:
    return str(getattr(sink, "name", None) or type(sink).__name__)


@dataclass(frozen=True)
class DeliveryResult:
    sink: str
    ok: bool
    error: str | None = None


class LogSink:
    """Alerts as log records ("tecl_pipeline.alerts"), so they are in the JSON log too."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self.name = "log"

    def send(self, alert: Alert) -> None:
        self._logger.log(
            alert.severity.log_level,
            "alert %s: %s%s",
            alert.kind,
            alert.title,
            f" -- {alert.detail}" if alert.detail else "",
            extra={
                "alert_kind": alert.kind,
                "severity": alert.severity,
                "run_id": alert.run_id,
                "session": alert.session,
            },
        )


class FileSink:
    """Alerts as JSON lines in a size-capped file, rotated by the standard
    `RotatingFileHandler` (alerts.jsonl -> .1 -> .2 ..., D7, X7).

    Raises on failure (unlike a logging handler) so the alerter can count and report it.
    Each line is flushed and fsynced: alerts are rare and the one you lose is the one
    written just before the crash.
    """

    def __init__(self, path: Path, *, max_bytes: int = 1_000_000, backups: int = 3) -> None:
        if max_bytes < 1024 or backups < 1:
            raise ValueError("FileSink needs max_bytes >= 1024 and backups >= 1")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.name = f"file({self.path.name})"
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        # Shorter than the cap with its newline, so one line never rotates an empty file.
        line = json.dumps(alert.to_dict(), ensure_ascii=True)[: self.max_bytes - 2]
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Opened per alert, as alerts are rare: no file stays open between them.
            handler = _AlertFile(self.path, self.max_bytes, self.backups)
            try:
                handler.emit(logging.makeLogRecord({"msg": line}))
            finally:
                handler.close()


class _AlertFile(logging.handlers.RotatingFileHandler):
    """The standard rotation, except that a failure raises and every line is fsynced."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="ascii")

    def flush(self) -> None:
        super().flush()
        if self.stream is not None:
            os.fsync(self.stream.fileno())

    def handleError(self, record: logging.LogRecord) -> None:
        # Called inside the handler's own `except`: re-raise its error, out of send().
        raise


class WebhookError(RuntimeError):
    """The webhook answered, but not with success."""


class _NoRedirect(HTTPRedirectHandler):
    # A redirect could send the alert (and whatever the URL carries) to an http:// host;
    # a webhook that redirects is misconfigured, so fail and report it instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _mrkdwn(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); escape them so an error
    # message cannot ping a channel or render a link the pipeline never wrote.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(alert: Alert) -> str:
    """The alert's severity and title on one line: a notification's heading."""
    return f"{_SEVERITY_MARK[alert.severity]} {alert.title}"


def slack_payload(alert: Alert) -> dict[str, object]:
    """Slack incoming-webhook JSON: fallback `text` plus header, detail and context blocks."""
    header = headline(alert)
    context = [f"*kind* {_mrkdwn(alert.kind)}", f"*severity* {alert.severity}"]
    if alert.session:
        context.append(f"*session* {alert.session.isoformat()}")
    if alert.run_id:
        context.append(f"*run* {_mrkdwn(alert.run_id)}")
    context.append(f"*at* {alert.at.isoformat(timespec='seconds')}")
    blocks: list[dict[str, object]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": header[:_SLACK_HEADER_MAX]},
        }
    ]
    if alert.detail:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _mrkdwn(alert.detail)[:_SLACK_SECTION_MAX]},
            }
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " | ".join(context)}]}
    )
    return {"text": _mrkdwn(alert.text())[:_SLACK_SECTION_MAX], "blocks": blocks}


class WebhookSink:
    """POSTs Slack-compatible JSON; https anywhere, plain http only to loopback (S5).

    The URL is a credential (anyone holding a Slack webhook URL can post to the channel),
    so it is never part of the sink's name, repr or errors.
    """

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self._url = validate_endpoint(url, "webhook URL")
        host = urlsplit(self._url).hostname or ""
        self.name = f"webhook({host})"
        self.timeout = timeout
        handlers: list[object] = [_NoRedirect()]
        if is_loopback(host):
            # Never route a loopback request through an HTTP(S)_PROXY from the environment.
            handlers.append(ProxyHandler({}))
        self._opener: OpenerDirector = build_opener(*handlers)  # pyright: ignore[reportArgumentType]

    def __repr__(self) -> str:
        return f"WebhookSink({self.name})"

    def send(self, alert: Alert) -> None:
        body = json.dumps(slack_payload(alert), ensure_ascii=True).encode("ascii")
        request = Request(
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "tecl-pipeline-alerts"},
        )
        # The scheme is https, or http to loopback only (validate_endpoint in __init__).
        with self._opener.open(request, timeout=self.timeout) as response:  # nosec B310
            status = response.status
            response.read(4096)
        # 4xx/5xx raise HTTPError inside open(); this catches 1xx/3xx oddities.
        if not 200 <= status < 300:
            raise WebhookError(f"webhook answered HTTP {status}")


class Alerter:
    """Sends each alert to every sink, redacted; counts and reports sink failures.

    Sinks are tried in order, each with its own error handling; put local sinks (log,
    file) before network ones so a slow webhook does not delay the durable record.
    """

    def __init__(
        self,
        sinks: Iterable[AlertSink],
        redactor: Redactor,
        *,
        auth_failure_threshold: int = 3,
        auth_failure_window: timedelta = timedelta(minutes=15),
        clock: Callable[[], datetime] = _now,
        stream: TextIO | None = None,
    ) -> None:
        if auth_failure_threshold < 1:
            raise ValueError("auth_failure_threshold must be at least 1")
        self.sinks: tuple[AlertSink, ...] = tuple(sinks)
        self.redactor = redactor
        self.auth_failure_threshold = auth_failure_threshold
        self.auth_failure_window = auth_failure_window
        self._clock = clock
        self._stream = stream
        self._lock = threading.Lock()
        self._failures: Counter[str] = Counter()
        self._auth_failures: deque[tuple[datetime, str]] = deque()
        self._auth_alerted_at: datetime | None = None

    @property
    def failure_counts(self) -> Mapping[str, int]:
        """Delivery failures per sink name since this alerter was made."""
        with self._lock:
            return MappingProxyType(dict(self._failures))

    def _report(self, text: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(self.redactor.redact(text).rstrip("\n") + "\n")
            stream.flush()
        except Exception:  # reporting must not raise into the trading path
            return

    def send(self, alert: Alert) -> tuple[DeliveryResult, ...]:
        """Deliver to every sink; never raises. Returns one result per sink, in order."""
        alert = alert.redacted(self.redactor)
        results = []
        for sink in self.sinks:
            name = sink_name(sink)
            try:
                sink.send(alert)
            except Exception as exc:
                error = self.redactor.redact(f"{type(exc).__name__}: {exc}")
                with self._lock:
                    self._failures[name] += 1
                self._report(f"tecl alert: sink {name} failed to deliver {alert.kind}: {error}")
                results.append(DeliveryResult(name, ok=False, error=error))
            else:
                results.append(DeliveryResult(name, ok=True))
        if not any(result.ok for result in results):
            # Every route failed (or none is configured): stderr is the last place left.
            self._report(f"tecl alert (undelivered): {alert.text()}")
        return tuple(results)

    def self_test(self) -> tuple[DeliveryResult, ...]:
        """Send a test alert through every sink and say which delivered (X9)."""
        return self.send(
            Alert(
                kind="self_test",
                title="alert route self-test",
                detail="If you can read this, this alert route works.",
                severity=Severity.INFO,
                at=self._clock(),
            )
        )

    def notify(
        self, event: Event, *, session: date | None = None, run_id: str | None = None
    ) -> None:
        """An event of the journal or the secrets provider, for the run `run_id` of
        `session` (used when the event names no session): a secret-access failure counts
        towards the repeated-failure alert (S7); any other event is an alert at once, with
        the event's kind and severity. Never raises."""
        session = event.session or session
        if event.kind is EventKind.SECRET_ACCESS_FAILURE:
            self.record_auth_failure(event.source, event.message, session=session, run_id=run_id)
            return
        title = f"session {session.isoformat()}: {event.title}" if session else event.title
        self.send(
            Alert(
                event.kind,
                title,
                event.message,
                session=session,
                run_id=run_id,
                severity=event.severity,
            )
        )

    def record_auth_failure(
        self,
        source: str,
        detail: str = "",
        *,
        session: date | None = None,
        run_id: str | None = None,
    ) -> Alert | None:
        """Count an auth or secret-access failure; alert once when N fall within the window.

        Returns the alert when this failure tripped the rule (S7). After an alert, further
        failures stay quiet until a full window has passed, then counting starts afresh:
        one alert per burst, not one per failure.
        """
        now = self._clock()
        with self._lock:
            window_start = now - self.auth_failure_window
            if self._auth_alerted_at is not None and self._auth_alerted_at <= window_start:
                self._auth_alerted_at = None
            self._auth_failures.append((now, source))
            while self._auth_failures and self._auth_failures[0][0] <= window_start:
                self._auth_failures.popleft()
            if (
                self._auth_alerted_at is not None
                or len(self._auth_failures) < self.auth_failure_threshold
            ):
                return None
            sources = Counter(src for _, src in self._auth_failures)
            count = len(self._auth_failures)
            self._auth_failures.clear()
            self._auth_alerted_at = now
        minutes = self.auth_failure_window.total_seconds() / 60
        summary = ", ".join(f"{src} x{n}" for src, n in sorted(sources.items()))
        alert = Alert(
            kind="auth_failures",
            title=f"{count} authentication / secret-access failures within {minutes:g} min",
            detail=f"sources: {summary}" + (f"\nlatest: {detail}" if detail else ""),
            session=session,
            run_id=run_id,
            severity=Severity.CRITICAL,
            at=now,
        )
        self.send(alert)
        return alert.redacted(self.redactor)


def build_alerter(
    redactor: Redactor,
    *,
    log_dir: Path | None,
    alert_file: Path | None = None,
    webhook_url: str | None = None,
    apprise_urls: str | None = None,
    auth_failure_threshold: int = 3,
    auth_failure_window: timedelta = timedelta(minutes=15),
    stream: TextIO | None = None,
) -> Alerter:
    """Log sink always; file sink at `alert_file` or <log_dir>/alerts.jsonl; webhook at
    `webhook_url` if set; one apprise sink per URL of `apprise_urls` if set. A malformed
    URL raises ConfigError naming TECL_ALERT_WEBHOOK_URL, an apprise URL that is not https
    one naming TECL_APPRISE_URL, before anything runs (C4, S5).

    Every sink gets every alert, INFO ones included (the daily summary, a spooled record
    written): INFO alerts are a few a session, and a route that left them out would leave
    a person who reads only that route without the day's summary."""
    sinks: list[AlertSink] = [LogSink(logging.getLogger(f"{LOGGER_NAME}.alerts"))]
    if alert_file is not None:
        sinks.append(FileSink(alert_file))
    elif log_dir is not None:
        sinks.append(FileSink(log_dir / ALERT_FILE_NAME))
    url = (webhook_url or "").strip()
    if url:
        # Before validation: the error message quotes the URL, and it is a credential.
        redactor.register(url)
        path = urlsplit(url).path
        if len(path) >= 16:  # a Slack webhook's secret part is its path
            redactor.register(path)
        try:
            sinks.append(WebhookSink(url))
        except ValueError as exc:
            raise ConfigError(
                f"{ENV_KEYS['alert_webhook_url']}: {redactor.redact(str(exc))}"
            ) from None
    if (apprise_urls or "").strip():
        # Imported only when configured: the other sinks need nothing but the stdlib.
        from tecl_pipeline.observability.apprise_sink import apprise_sinks

        # Last: sinks run in turn, and a slow apprise service (up to its own timeout) must
        # not hold up the local record or the webhook.
        sinks.extend(apprise_sinks(apprise_urls or "", redactor))
    return Alerter(
        sinks,
        redactor,
        auth_failure_threshold=auth_failure_threshold,
        auth_failure_window=auth_failure_window,
        stream=stream,
    )
