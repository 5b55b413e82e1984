"""The apprise alert sink (TECL_APPRISE_URL): alerts reach a receiver over TLS with its
certificate checked; a URL that would send in clear text, skip the certificate check or
follow redirects is refused when the deployment is configured, in one line naming the
setting and never the URL; a failed delivery is a failed route that names neither the URL
nor its token, and neither do apprise's own log lines (X9, S5, S2, C4)."""

import datetime as dt
import io
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import apprise
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from tecl_pipeline.common.events import Severity
from tecl_pipeline.config.settings import ConfigError, Settings
from tecl_pipeline.defs.deployments import alerts_resource
from tecl_pipeline.observability.alerts import Alert, Alerter, build_alerter
from tecl_pipeline.observability.apprise_sink import (
    APPRISE_LOGGER,
    HTTPS_SERVICES,
    TLS_FORMS,
    apprise_sinks,
    register_apprise_secrets,
)
from tecl_pipeline.observability.logs import EXCHANGE_TZ, configure_logging
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline_tests.app.cli_helpers import tecl
from tecl_pipeline_tests.loopback_http import LoopbackServer
from tecl_pipeline_tests.observability.helpers import LoggerState, read_json_lines

# The receiver's secret path segment, as a webhook token would be.
TOKEN = "apprise-canary-token-3f9a1c7e5b2d"
SESSION = dt.date(2026, 11, 24)


@dataclass
class Received:
    posts: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class TlsReceiver:
    port: int
    ca_file: Path
    received: Received

    def url(self, path: str) -> str:
        return f"jsons://127.0.0.1:{self.port}/{path}"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA: the test trusts exactly it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tecl test receiver")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "receiver.pem", folder / "receiver.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def apprise_logger() -> Iterator[logging.Logger]:
    """The process-wide "apprise" logger and the project's, restored after the test."""
    logger = logging.getLogger(APPRISE_LOGGER)
    handlers, filters = list(logger.handlers), list(logger.filters)
    level, propagate = logger.level, logger.propagate
    project = LoggerState()
    yield logger
    logger.handlers[:] = handlers
    logger.filters[:] = filters
    logger.setLevel(level)
    logger.propagate = propagate
    project.restore()


@pytest.fixture
def receiver(tmp_path, monkeypatch, apprise_logger) -> Iterator[TlsReceiver]:
    """An https server on 127.0.0.1 with a self-signed certificate: /hook/... answers 200,
    /fail/... 500. Its CA is trusted by this process only (REQUESTS_CA_BUNDLE, which
    requests reads when a certificate is verified), and no proxy is asked the way there."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.posts.append((self.path, body))
            self.send_response(200 if self.path.startswith("/hook/") else 500)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return None

    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    with LoopbackServer(Handler, tls=context) as server:
        port = int(server.url.rsplit(":", 1)[1])
        yield TlsReceiver(port, cert_file, received)


def _alert() -> Alert:
    return Alert(
        kind="refused",
        title="session 2026-11-24: refused to trade",
        detail="TECL: no bar for 2026-11-24",
        session=SESSION,
        run_id="run-7",
        severity=Severity.WARNING,
        at=dt.datetime(2026, 11, 24, 15, 45, tzinfo=EXCHANGE_TZ),
    )


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_alert_reaches_the_receiver_over_tls_with_its_certificate_checked(receiver, tmp_path):
    """X9: a real https POST through apprise to a receiver whose CA this process trusts:
    the title with its severity, the detail, and where it comes from."""
    url = receiver.url(f"hook/{TOKEN}")
    alerter = build_alerter(Redactor(), log_dir=tmp_path, apprise_urls=url)

    results = alerter.send(_alert())

    assert [(r.sink, r.ok) for r in results] == [
        ("log", True),
        ("file(alerts.jsonl)", True),
        ("apprise(JSON)", True),
    ]
    [(path, body)] = receiver.received.posts
    assert path == f"/hook/{TOKEN}"
    payload = json.loads(body)
    assert payload["title"] == "[WARNING] session 2026-11-24: refused to trade"
    assert payload["message"].splitlines() == [
        "TECL: no bar for 2026-11-24",
        "kind refused | session 2026-11-24 | run run-7",
    ]
    assert payload["type"] == "warning"


def test_a_receiver_whose_certificate_is_not_trusted_gets_nothing(receiver, monkeypatch):
    """S5: the certificate is checked: without its CA trusted, the handshake fails and the
    route reports a failed delivery (apprise never falls back to an unchecked one)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    redactor = Redactor()
    [sink] = apprise_sinks(receiver.url(f"hook/{TOKEN}"), redactor, timeout=5)

    [result] = Alerter([sink], redactor, stream=io.StringIO()).send(_alert())

    assert not result.ok
    assert receiver.received.posts == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("json://alerts.example.com/hook/{token}", "json:// (JSON) sends in clear text"),
        ("form://alerts.example.com/hook/{token}", "form:// (Form) sends in clear text"),
        ("xml://alerts.example.com/hook/{token}", "xml:// (XML) sends in clear text"),
        ("ntfy://ntfy.example.com/{token}", "ntfy:// (ntfy) sends in clear text"),
        ("gotify://gotify.example.com/{token}", "gotify:// (Gotify) sends in clear text"),
        ("mailto://me:{token}@mail.example.com", "mailto:// (E-Mail) sends in clear text"),
        ("mailtos://me:{token}@mail.example.com?mode=insecure", "with mode=insecure"),
        ("jsons://alerts.example.com/hook/{token}?verify=no", "with verify=no"),
        ("tgram://123456789:{token}/42?verify=no", "with verify=no"),
        ("jsons://alerts.example.com/hook/{token}?redirect=yes", "with redirect=yes"),
        # An https form, but not on the allow-list: unknown is refused, not guessed at.
        ("barks://bark.example.com/{token}", "is not one of the forms known to send only over TLS"),
        ("nosuchservice://{token}", "not a URL apprise can read"),
        ("jsons://alerts.example.com/{token}, json://alerts.example.com/{token}", "URL 2 of 2"),
    ],
)
def test_a_url_that_would_not_travel_over_checked_tls_is_refused_in_one_line(
    url, why, tmp_path, apprise_logger
):
    """S5, C4: refused as the deployment's resources are built (the definitions load),
    in one line naming the setting and saying why, without the URL or its token."""
    settings = Settings(
        state_uri=(tmp_path / "state").as_uri(),
        alert_apprise_url=SecretStr(url.format(token=TOKEN)),
    )

    with pytest.raises(ConfigError) as caught:
        alerts_resource(settings)

    message = str(caught.value)
    assert message.startswith("TECL_APPRISE_URL: ") and why in message
    assert "\n" not in message
    assert TOKEN not in message and "example.com" not in message


@pytest.mark.parametrize(
    "url",
    [
        "tgram://123456789:{token}/42",
        "discord://1234567890/{token}",
        "https://discord.com/api/webhooks/1234567890/{token}",
        # Slack checks its tokens' form: the last one is 24 letters and digits.
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        "ntfys://ntfy.example.com/{token}",
        # A topic on ntfy.sh, which apprise reaches at https://ntfy.sh.
        "ntfy://{token}",
        # Gmail's template: STARTTLS on port 587.
        "mailto://me:{token}@gmail.com",
        "mailtos://me:{token}@mail.example.com",
        "jsons://alerts.example.com/hook/{token}",
    ],
)
def test_the_https_forms_are_accepted(url, apprise_logger):
    """The allow-list's forms, and the forms apprise itself sends over https (a native
    Discord URL, an ntfy.sh topic, Gmail) pass; the sink is named by its service only."""
    [sink] = apprise_sinks(url.format(token=TOKEN), Redactor())
    assert TOKEN not in repr(sink) and TOKEN not in sink.name


def test_the_allow_list_agrees_with_apprise():
    """Each TLS form is the secure protocol of a service that also has a clear-text one;
    each https service has no clear-text form at all in apprise."""
    manager = apprise.NotificationManager()
    for scheme in sorted(TLS_FORMS):
        plugin = manager[scheme]
        secure = plugin.secure_protocol
        assert scheme in ((secure,) if isinstance(secure, str) else tuple(secure)), scheme
        assert plugin.protocol and scheme not in plugin.protocol, scheme
    for scheme in sorted(HTTPS_SERVICES):
        assert manager[scheme].protocol is None, scheme


def test_a_clear_text_apprise_url_stops_tecl_run_in_one_line(tmp_path, market_dir):
    """C4, S2: `tecl run` exits 1 before anything runs, with one line naming
    TECL_APPRISE_URL; the URL's token is nowhere the run wrote; the configuration error is
    alerted through the routes that work (the alert file)."""
    done = tecl(
        ["run", "--session", "2026-07-31"],
        tmp_path,
        TECL_DATA_DIR=str(market_dir),
        TECL_APPRISE_URL=f"json://alerts.example.com/hook/{TOKEN}",
    )

    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "configuration error" in lines[0] and "TECL_APPRISE_URL" in lines[0]
    assert "clear text" in lines[0]
    assert not (tmp_path / ".tecl" / "state" / "journal").exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(TOKEN.encode() not in p.read_bytes() for p in written)
    [alert] = read_json_lines(tmp_path / ".tecl" / "logs" / "alerts.jsonl")
    assert alert["kind"] == "config_error" and "TECL_APPRISE_URL" in str(alert["detail"])


def test_a_failed_delivery_is_a_failed_route_naming_neither_url_nor_token(receiver, tmp_path):
    """X9, S2: a receiver answering 500, and one that refuses the connection: each route
    fails on its own, the others still deliver; the results and the report on stderr say
    which service failed and apprise's reason, never the URL, its path or the token."""
    failing = receiver.url(f"fail/{TOKEN}")
    refused = f"jsons://127.0.0.1:{_refused_port()}/hook/{TOKEN}"
    report = io.StringIO()
    alerter = build_alerter(
        Redactor(), log_dir=tmp_path, apprise_urls=f"{failing} {refused}", stream=report
    )

    results = alerter.send(_alert())

    by_sink = {r.sink: r for r in results}
    assert by_sink["file(alerts.jsonl)"].ok
    assert not by_sink["apprise(JSON)"].ok and not by_sink["apprise(JSON #2)"].ok
    assert "error=500" in str(by_sink["apprise(JSON)"].error)
    assert "did not deliver" in str(by_sink["apprise(JSON #2)"].error)
    said = " ".join(str(r.error) for r in results) + report.getvalue()
    assert "apprise(JSON) failed" in report.getvalue()
    for needle in (TOKEN, f"fail/{TOKEN}", failing, refused, "://"):
        assert needle not in said
    assert alerter.failure_counts == {"apprise(JSON)": 1, "apprise(JSON #2)": 1}


def test_apprise_log_lines_reach_the_project_log_without_url_or_token(receiver, tmp_path, caplog):
    """S2: what apprise logs (its DEBUG lines carry whole request URLs; a warning can quote
    a rejected token) reaches no handler of its own: only WARNING and above, masked, any
    URL replaced, in the project's JSON log. The root logger's handlers (here pytest's)
    see no raw apprise record."""
    caplog.set_level(logging.DEBUG, logger="tecl_pipeline")
    redactor = Redactor()
    configure_logging(tmp_path / "logs", redactor=redactor, stream=io.StringIO())
    alerter = build_alerter(redactor, log_dir=None, apprise_urls=receiver.url(f"fail/{TOKEN}"))
    # The URL as apprise requests it: not the configured form the redactor knows whole.
    sent_to = f"https://127.0.0.1:{receiver.port}/fail/{TOKEN}"

    alerter.send(_alert())
    # Checking a URL whose token apprise rejects: apprise quotes the token (too short for
    # the redactor to take it for one) but says nothing while a URL is being checked.
    with pytest.raises(ConfigError):
        build_alerter(redactor, log_dir=None, apprise_urls="tgram://7:zq$w/7")
    # As apprise words some of its lines: a token quoted whole, a URL, a request at DEBUG.
    logging.getLogger(APPRISE_LOGGER).warning("The Bot Token specified (%s) is invalid.", TOKEN)
    logging.getLogger(APPRISE_LOGGER).error("Could not reach %s", sent_to)
    logging.getLogger(APPRISE_LOGGER).debug("JSON POST URL: %s", sent_to)

    assert not logging.getLogger(APPRISE_LOGGER).isEnabledFor(logging.DEBUG)
    assert [r for r in caplog.records if r.name == APPRISE_LOGGER] == []
    forwarded = [r.getMessage() for r in caplog.records if r.name.endswith(".apprise")]
    assert any("Failed to send JSON POST notification" in m for m in forwarded), forwarded
    assert "apprise: The Bot Token specified (***) is invalid." in forwarded
    assert "apprise: Could not reach <url>" in forwarded
    logged = (tmp_path / "logs" / "tecl_pipeline.jsonl").read_text()
    assert "The Bot Token specified (***) is invalid." in logged
    for text in (*[r.getMessage() for r in caplog.records], logged):
        assert TOKEN not in text and f"fail/{TOKEN}" not in text and "7:zq$w" not in text


def test_a_token_in_a_url_is_masked_wherever_it_appears_but_common_words_are_not():
    """S2: the parts of an apprise URL that can be credentials are registered (a Telegram
    bot token in the host, a Discord webhook token in the path, a password, a token query
    value); the words of the path a service always has stay readable."""
    bot = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    redactor = Redactor()
    register_apprise_secrets(
        f"tgram://{bot}/42 https://discord.com/api/webhooks/1234567890/{TOKEN} "
        "mailtos://me:hunter22@mail.example.com ntfys://ntfy.example.com/alerts?token=tk_77",
        redactor,
    )

    for secret in (bot, TOKEN, "hunter22", "tk_77", "1234567890"):
        assert redactor.redact(f"saw {secret} here") == "saw *** here"
    assert redactor.redact("api webhooks alerts discord.com") == "api webhooks alerts discord.com"
