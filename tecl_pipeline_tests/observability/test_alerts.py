"""Alerts reach every configured route, redacted, and a broken route is reported
(X9, S2, S7, C1, S5)."""

import io
import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest

from tecl_pipeline.common.events import Event, EventKind, Severity
from tecl_pipeline.config.settings import ConfigError
from tecl_pipeline.observability.alerts import (
    Alert,
    Alerter,
    FileSink,
    LogSink,
    WebhookSink,
    build_alerter,
    sink_name,
)
from tecl_pipeline.observability.logs import EXCHANGE_TZ, Redactor
from tecl_pipeline_tests.loopback_http import LoopbackServer
from tecl_pipeline_tests.observability.helpers import (
    CANARY,
    CaptureSink,
    all_text_under,
    read_json_lines,
)

SESSION = date(2024, 3, 15)
T0 = datetime(2024, 3, 15, 15, 45, tzinfo=EXCHANGE_TZ)


@dataclass
class Received:
    """What the local webhook server was sent."""

    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def bodies(self, path: str = "/hook") -> list[dict[str, object]]:
        return [json.loads(body) for p, _, body in self.posts if p == path]


@pytest.fixture
def webhook() -> Iterator[tuple[str, Received]]:
    """A real HTTP server on 127.0.0.1: /hook answers 200, /fail 500, /moved 302."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.posts.append((self.path, dict(self.headers), body))
            status = {"/hook": 200, "/fail": 500, "/moved": 302}.get(self.path, 404)
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "http://example.com/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return None  # keep the test output clean

    with LoopbackServer(Handler) as server:
        yield server.url, received


def _refused_url() -> str:
    # A port that was just free: nothing listens, so the connection is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def _alert(**changes: object) -> Alert:
    base = Alert(
        kind="run_failure",
        title="daily_trading_job failed in step orders",
        detail="BrokerError: 503 maintenance",
        session=SESSION,
        run_id="run-42",
        severity=Severity.CRITICAL,
        at=T0,
    )
    return replace(base, **changes)


def test_webhook_receives_slack_shaped_json(webhook):
    """X9: a real POST to the configured webhook, Slack's shape (text + blocks)."""
    url, received = webhook
    result = Alerter([WebhookSink(f"{url}/hook")], Redactor()).send(_alert())
    assert [r.ok for r in result] == [True]
    (_, headers, _), body = received.posts[0], received.bodies()[0]
    assert headers["Content-Type"] == "application/json"
    assert "run_failure" in str(body["text"]) and "session 2024-03-15" in str(body["text"])
    blocks = body["blocks"]
    assert isinstance(blocks, list)
    assert [b["type"] for b in blocks] == ["header", "section", "context"]
    assert blocks[0]["text"]["type"] == "plain_text"
    assert "daily_trading_job failed" in blocks[0]["text"]["text"]
    assert blocks[1]["text"]["text"] == "BrokerError: 503 maintenance"
    assert "run-42" in blocks[2]["elements"][0]["text"]


def test_webhook_text_cannot_ping_or_link(webhook):
    """X9: Slack control sequences in an error message are escaped, not interpreted."""
    url, received = webhook
    Alerter([WebhookSink(f"{url}/hook")], Redactor()).send(_alert(detail="<!channel> a<b & c"))
    body = received.bodies()[0]
    assert body["blocks"][1]["text"]["text"] == "&lt;!channel&gt; a&lt;b &amp; c"
    assert "<!channel>" not in json.dumps(body)


@pytest.mark.parametrize("route", ["refused", "/fail", "/moved"])
def test_failing_webhook_does_not_block_the_file_sink_and_is_reported(webhook, tmp_path, route):
    """X9, C1: connection refused, HTTP 500 or a redirect: the webhook fails, the file sink
    after it still gets the alert, and the failure is on stderr and counted."""
    url, _ = webhook
    hook = WebhookSink(_refused_url() if route == "refused" else f"{url}{route}", timeout=2)
    stderr = io.StringIO()
    alerter = Alerter([hook, FileSink(tmp_path / "alerts.jsonl")], Redactor(), stream=stderr)

    results = alerter.send(_alert())

    assert [(r.sink, r.ok) for r in results] == [
        ("webhook(127.0.0.1)", False),
        ("file(alerts.jsonl)", True),
    ]
    expected = {"refused": "Connection refused", "/fail": "HTTP Error 500", "/moved": "302"}
    assert expected[route] in str(results[0].error)
    assert f"sink webhook(127.0.0.1) failed to deliver run_failure: {results[0].error}" in (
        stderr.getvalue()
    )
    assert alerter.failure_counts == {"webhook(127.0.0.1)": 1}
    (line,) = read_json_lines(tmp_path / "alerts.jsonl")
    assert (line["kind"], line["session"], line["run_id"]) == (
        "run_failure",
        "2024-03-15",
        "run-42",
    )


def test_self_test_reports_each_route(webhook, tmp_path):
    """X9: the self-test sends through every sink and says which delivered."""
    url, received = webhook
    logger = logging.getLogger("tecl_pipeline_tests.alerts.selftest")
    sinks = [
        LogSink(logger),
        FileSink(tmp_path / "alerts.jsonl"),
        WebhookSink(f"{url}/hook"),
        WebhookSink(f"{url}/fail"),
    ]
    alerter = Alerter(sinks, Redactor(), stream=io.StringIO())
    results = alerter.self_test()
    assert [(r.sink, r.ok) for r in results] == [
        ("log", True),
        ("file(alerts.jsonl)", True),
        ("webhook(127.0.0.1)", True),
        ("webhook(127.0.0.1)", False),
    ]
    assert received.bodies()[0]["blocks"][0]["text"]["text"].endswith("alert route self-test")
    assert read_json_lines(tmp_path / "alerts.jsonl")[0]["kind"] == "self_test"


def test_canary_never_reaches_alert_payloads(webhook, tmp_path, caplog):
    """S2: a secret in an alert's title, detail or run id is masked before any sink: the
    webhook body, the alert file, the log record and the stderr report."""
    url, received = webhook
    redactor = Redactor([CANARY])
    stderr = io.StringIO()
    alerter = Alerter(
        [
            LogSink(logging.getLogger("tecl_pipeline_tests.alerts.canary")),
            FileSink(tmp_path / "alerts.jsonl"),
            WebhookSink(f"{url}/hook"),
            WebhookSink(f"{url}/fail"),
        ],
        redactor,
        stream=stderr,
    )
    caplog.set_level(logging.INFO)
    leaky = _alert(title=f"auth with {CANARY}", detail=f"headers: {CANARY}", run_id=CANARY)
    alerter.send(leaky)
    alerter.record_auth_failure("secrets", f"GetSecretValue returned {CANARY}")

    payloads = [body.decode() for _, _, body in received.posts]
    assert len(payloads) == 2 and "***" in payloads[0]
    for text in (*payloads, all_text_under(tmp_path), caplog.text, stderr.getvalue()):
        assert CANARY not in text


def test_webhook_url_is_a_secret_and_never_echoed(tmp_path):
    """S2, C4: build_alerter registers the webhook URL with the redactor, and a bad URL
    fails at load naming the variable, not the URL."""
    secret_url = "https://hooks.example.com/services/T000/B000/XXXXXXXXXXXXXXXX"
    redactor = Redactor()
    alerter = build_alerter(redactor, log_dir=tmp_path, webhook_url=secret_url)
    assert [type(s).__name__ for s in alerter.sinks] == ["LogSink", "FileSink", "WebhookSink"]
    webhook = alerter.sinks[2]
    assert secret_url not in repr(webhook) and secret_url not in sink_name(webhook)
    assert redactor.redact(f"posting to {secret_url}") == "posting to ***"
    assert "/services/" not in redactor.redact("path /services/T000/B000/XXXXXXXXXXXXXXXX")

    bad = "http://hooks.example.com/services/T000/B000/YYYYYYYYYYYYYYYY"
    with pytest.raises(ConfigError, match="TECL_ALERT_WEBHOOK_URL") as caught:
        build_alerter(Redactor(), log_dir=tmp_path, webhook_url=bad)
    assert "YYYY" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/services/T/B/X",
        "http://10.0.0.5:8080/hook",
        "ftp://127.0.0.1/hook",
        "https://user:pw@hooks.slack.com/x",
    ],
)
def test_non_loopback_http_and_odd_webhook_urls_are_refused(url):
    """S5: alert text (which names runs and accounts) travels over https, or plain http to
    this machine only."""
    with pytest.raises(ValueError, match="webhook URL"):
        WebhookSink(url)


def test_webhook_accepts_https_and_loopback_http():
    """S5: the two allowed shapes."""
    assert WebhookSink("https://hooks.slack.com/services/T/B/X").name == "webhook(hooks.slack.com)"
    assert WebhookSink("http://localhost:9/hook").name == "webhook(localhost)"


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


class _Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


def test_auth_failure_rule_fires_once_per_burst():
    """S7: three auth / secret-access failures within 15 minutes raise one critical
    "auth_failures" alert, not one per failure; a fresh burst after the window alerts again."""
    clock, sink = _Clock(), _Recorder()
    alerter = Alerter([sink], Redactor(), clock=clock)

    assert alerter.record_auth_failure("broker", "401 unauthorized") is None
    clock.advance(5)
    assert alerter.record_auth_failure("secrets", "AccessDenied") is None
    clock.advance(5)
    fired = alerter.record_auth_failure("broker", "401 unauthorized")
    for _ in range(10):  # the burst goes on: still one alert
        clock.advance(0.5)
        assert alerter.record_auth_failure("broker") is None

    assert fired is not None and len(sink.alerts) == 1
    (alert,) = sink.alerts
    assert (alert.kind, alert.severity) == ("auth_failures", "critical")
    assert "3 authentication" in alert.title
    assert "broker x2" in alert.detail and "secrets x1" in alert.detail

    clock.advance(60)  # quiet for an hour, then a new burst
    for _ in range(3):
        alerter.record_auth_failure("broker")
    assert len(sink.alerts) == 2


def test_events_become_alerts_by_kind_and_severity():
    """S7, D1, S1: a secret-access failure is counted, not alerted, until the burst rule
    fires; any other event is an alert with the event's kind and severity, titled with its
    own session, else the run's."""
    sink = CaptureSink()
    alerter = Alerter([sink], Redactor(), auth_failure_threshold=2)
    run_session, record_session = date(2026, 11, 24), date(2026, 11, 23)
    denied = Event(
        EventKind.SECRET_ACCESS_FAILURE, Severity.CRITICAL, "secrets manager", "AccessDenied"
    )
    alerter.notify(denied, session=run_session, run_id="run-1")
    assert sink.sent == []
    replayed = Event(EventKind.REPLAYED, Severity.INFO, "journal", "written", record_session)
    alerter.notify(replayed, session=run_session, run_id="run-1")
    overdue = Event(EventKind.SECRET_ROTATION_OVERDUE, Severity.WARNING, "secrets manager", "old")
    alerter.notify(overdue, session=run_session, run_id="run-1")
    alerter.notify(denied, session=run_session, run_id="run-1")

    first, second, burst = sink.sent
    assert (first.kind, first.severity, first.session) == ("replayed", "info", record_session)
    assert first.title == "session 2026-11-23: journal replayed"
    assert (second.kind, second.severity, second.session, second.run_id) == (
        "secret_rotation_overdue",
        "warning",
        run_session,
        "run-1",
    )
    assert (burst.kind, burst.severity, burst.session) == ("auth_failures", "critical", run_session)
    assert "secrets manager x2" in burst.detail


def test_auth_failures_spread_beyond_the_window_do_not_fire():
    """S7: occasional failures (one every 10 minutes) are not a burst."""
    clock, sink = _Clock(), _Recorder()
    alerter = Alerter([sink], Redactor(), clock=clock)
    for _ in range(6):
        alerter.record_auth_failure("broker")
        clock.advance(10)
    assert sink.alerts == []


def test_alerter_defaults_and_override(tmp_path):
    """X9: log sink always, file sink at <log_dir>/alerts.jsonl or TECL_ALERT_FILE."""
    default = build_alerter(Redactor(), log_dir=tmp_path)
    assert [sink_name(s) for s in default.sinks] == ["log", "file(alerts.jsonl)"]
    default.send(_alert(severity=Severity.INFO))
    assert read_json_lines(tmp_path / "alerts.jsonl")[0]["severity"] == "info"

    custom = tmp_path / "elsewhere" / "custom.jsonl"
    chosen = build_alerter(Redactor(), log_dir=tmp_path, alert_file=custom)
    assert [sink_name(s) for s in chosen.sinks] == ["log", "file(custom.jsonl)"]
    assert [sink_name(s) for s in build_alerter(Redactor(), log_dir=None).sinks] == ["log"]


def test_no_working_route_leaves_the_alert_on_stderr(tmp_path):
    """X9, C5: when every sink fails, the alert text itself is written to stderr."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    stderr = io.StringIO()
    alerter = Alerter([FileSink(blocker / "alerts.jsonl")], Redactor(), stream=stderr)
    (result,) = alerter.send(_alert())
    assert not result.ok
    assert "tecl alert (undelivered): [CRITICAL] tecl-pipeline run_failure" in stderr.getvalue()


def test_alert_file_is_size_capped(tmp_path):
    """D7, X7: the alert file rotates; total size stays within (backups + 1) * max_bytes."""
    sink = FileSink(tmp_path / "alerts.jsonl", max_bytes=2048, backups=2)
    for index in range(200):
        sink.send(_alert(detail=f"residual {index} " + "z" * 50))
    files = list(tmp_path.glob("alerts.jsonl*"))
    assert len(files) == 3
    assert sum(f.stat().st_size for f in files) <= 3 * 2048
    assert "residual 199" in (tmp_path / "alerts.jsonl").read_text()


def test_alert_validation():
    """T2: alert times are tz-aware; severity is one of the three `Severity` values."""
    with pytest.raises(ValueError, match="timezone-aware"):
        _alert(at=datetime(2024, 3, 15, 15, 45))  # noqa: DTZ001 -- the point of the test
    with pytest.raises(ValueError, match="severity"):
        _alert(severity="fatal")
    with pytest.raises(ValueError, match="severity must be a Severity"):
        _alert(severity="critical")  # its name is not the typed value
