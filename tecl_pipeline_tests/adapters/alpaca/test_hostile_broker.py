"""S2 against a hostile broker: a server on loopback that echoes the credentials it is sent
back in every way a server can (raw, percent-encoded, JSON-escaped, base64 of the secret
and of `key:secret`), in 2xx error bodies, in 401/403/500 bodies, in headers, in the status
line and in the URL of a redirect. `tecl run` (paper mode, a subprocess) trades through it;
afterwards not one of those forms may appear in anything the run wrote: stdout, stderr,
the Dagster instance (SQLite event log and run storage), the state and the logs.

The server stands in front of the broker simulator: what it does not script, it forwards,
so a run that survives the echoes really trades.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tecl_pipeline_tests.app.cli_helpers import tecl
from tecl_pipeline_tests.loopback_http import LoopbackServer
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_SESSION, sim_state

# Characters that every encoding changes: "/" and "+" (percent, base64, JSON's "\/"), a
# space (quote_plus), "~".
KEY = "PKHOSTILE7QX2M9"
SESSION = SIM_SESSION.isoformat()
SECRET = "hostile/Secret+9vQ 2x7Lk~Zr4"


def forms(value: str) -> dict[str, str]:
    """How a server may write `value` back, by name (written out here, independently of
    the product's redactor)."""
    escaped = json.dumps(value)[1:-1]
    b64 = base64.b64encode(value.encode()).decode()
    return {
        "raw": value,
        "quote": quote(value, safe=""),
        "quote-lower": quote(value, safe="").replace("%2F", "%2f").replace("%2B", "%2b"),
        "quote_plus": quote_plus(value),
        "pct-every-byte": "".join(
            f"%{b:02x}" if i % 2 else f"%{b:02X}" for i, b in enumerate(value.encode())
        ),
        "pct-mixed": "".join(f"%{ord(ch):02x}" if i % 3 == 1 else ch for i, ch in enumerate(value)),
        "json-slash": escaped.replace("/", "\\/"),
        "json-unicode": "".join(f"\\u{ord(ch):04x}" for ch in value),
        "json-unicode-twice": "".join(f"\\\\u{ord(ch):04X}" for ch in value),
        "html-entities": "".join(
            (f"&#{ord(ch)};", f"&#X{ord(ch):x};", ch)[i % 3] for i, ch in enumerate(value)
        ),
        "base64": b64,
        "base64-unpadded": b64.rstrip("="),
        "base64-urlsafe": base64.urlsafe_b64encode(value.encode()).decode(),
        # `value` one and two bytes into a larger blob: other characters than at offset 0.
        "base64-offset-1": base64.b64encode(b"x" + value.encode()).decode(),
        "base64-offset-2": base64.urlsafe_b64encode(b"xy" + value.encode()).decode(),
    }


def key_forms(key: str) -> dict[str, str]:
    """A key id's forms, and the key id in other letter cases."""
    mixed = "".join(ch.lower() if i % 2 else ch for i, ch in enumerate(key))
    return forms(key) | {"lower": key.lower(), "mixed-case": mixed}


def pair_blobs(key: str, secret: str) -> dict[str, str]:
    """Encodings that carry both at once."""
    document = json.dumps({"key_id": key, "secret_key": secret}).encode()
    return {
        "basic key:secret": base64.b64encode(f"{key}:{secret}".encode()).decode(),
        "base64 json": base64.b64encode(document).decode(),
    }


def _inner(blob: bytes, part: str, encode: Callable[[bytes], bytes] = base64.b64encode) -> str:
    """The base64 characters of `blob` that carry nothing but `part` (found in `blob`),
    less one on each side: a run every encoder writes the same, whatever surrounds it."""
    start = blob.index(part.encode())
    end = start + len(part.encode())
    return encode(blob).decode()[start * 4 // 3 + 2 : end * 4 // 3 - 1]


def needles() -> dict[str, str]:
    """What the scan looks for. A base64 blob holding a value at an offset starts and ends
    with characters that depend on its neighbours, so the scan looks for its inner run."""
    found = {f"key {name}": text for name, text in key_forms(KEY).items()}
    found |= {f"secret {name}": text for name, text in forms(SECRET).items()}
    found["basic key:secret"] = pair_blobs(KEY, SECRET)["basic key:secret"]
    shifted = (
        ("base64-offset-1", b"x", base64.b64encode),
        ("base64-offset-2", b"xy", base64.urlsafe_b64encode),
    )
    for name, filler, encode in shifted:
        for kind, value in (("key", KEY), ("secret", SECRET)):
            found[f"{kind} {name}"] = _inner(filler + value.encode(), value, encode)
    document = json.dumps({"key_id": KEY, "secret_key": SECRET}).encode()
    found["base64 json: key"] = _inner(document, KEY)
    found["base64 json: secret"] = _inner(document, SECRET)
    return found


@dataclass(frozen=True)
class Echo:
    """One scripted answer built from the request's own APCA headers."""

    status: int
    body: Callable[[str, str], str]  # (key, secret) -> raw body text
    reason: str | None = None
    location: Callable[[str, str], str] | None = None


@dataclass
class Rule:
    endpoint: str  # "METHOD /path", shell-style pattern
    echo: Echo
    times: int | None  # None: every time


def everything(key: str, secret: str) -> str:
    """Every form of both, in one message."""
    texts = [f"key_{kind}={text}" for kind, text in key_forms(key).items()]
    texts += [f"secret_{kind}={text}" for kind, text in forms(secret).items()]
    texts += [f"{kind.replace(' ', '_')}={text}" for kind, text in pair_blobs(key, secret).items()]
    return " ".join(texts)


def json_body(message: str, code: int | None = None) -> str:
    """A JSON error body whose message holds `message` verbatim (escapes included)."""
    body = json.dumps({"code": code, "message": "@"}) if code else json.dumps({"message": "@"})
    return body.replace('"@"', '"' + message.replace('"', "") + '"')


class HostileBroker:
    """Forwards to `upstream`, except where a rule answers with an echo. Every answer also
    carries the credentials in headers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.echoed: dict[str, int] = {}
        self._lock = threading.Lock()
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                key = self.headers.get("APCA-API-KEY-ID", "")
                secret = self.headers.get("APCA-API-SECRET-KEY", "")
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else None
                endpoint = f"{self.command} {self.path.split('?')[0]}"
                echo = hostile._scripted(endpoint)
                if echo is None:
                    status, headers, data = hostile._forward(self, payload)
                    reason = None
                else:
                    status, reason = echo.status, echo.reason
                    data = echo.body(key, secret).encode()
                    headers = {"Content-Type": "application/json"}
                    if echo.location is not None:
                        headers["Location"] = echo.location(key, secret)
                self.send_response(status, reason)
                headers["Content-Length"] = str(len(data))
                headers["X-Echo-Key"] = key
                headers["X-Echo-Secret"] = quote(secret, safe="")
                headers["WWW-Authenticate"] = (
                    "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
                )
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

        self._server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return self._server.url

    def _scripted(self, endpoint: str) -> Echo | None:
        with self._lock:
            for rule in self.rules:
                if fnmatchcase(endpoint, rule.endpoint) and rule.times != 0:
                    if rule.times is not None:
                        rule.times -= 1
                    self.echoed[rule.endpoint] = self.echoed.get(rule.endpoint, 0) + 1
                    return rule.echo
        return None

    def _forward(
        self, handler: BaseHTTPRequestHandler, payload: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.upstream + handler.path, data=payload, method=handler.command
        )
        for name in ("APCA-API-KEY-ID", "APCA-API-SECRET-KEY", "Content-Type"):
            if handler.headers.get(name):
                request.add_header(name, handler.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, {"Content-Type": "application/json"}, answer.read()
        except urllib.error.HTTPError as error:
            headers = {"Content-Type": "application/json"}
            if error.headers.get("Retry-After"):
                headers["Retry-After"] = error.headers["Retry-After"]
            return error.code, headers, error.read()

    def __enter__(self) -> HostileBroker:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


@pytest.fixture
def hostile(simulator) -> Iterator[HostileBroker]:
    simulator.simulator.set_credentials(KEY, SECRET)
    with HostileBroker(simulator.url) as server:
        yield server


def tecl_run(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    return tecl(
        ["run", "--verbose", "--session", SESSION],
        tmp_path,
        TECL_MODE="paper",
        TECL_BROKER_URL=url,
        TECL_DATA_URL=url,
        ALPACA_API_KEY=KEY,
        ALPACA_SECRET_KEY=SECRET,
        DAGSTER_HOME=str(tmp_path / ".dagster"),
    )


def leaks(tmp_path: Path, done: subprocess.CompletedProcess[str]) -> list[str]:
    """Every (form, place) where a credential shows, over everything the run wrote."""
    written = {"stdout": done.stdout.encode(), "stderr": done.stderr.encode()}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            written[str(path.relative_to(tmp_path))] = path.read_bytes()
    return [
        f"{name} in {place}"
        for name, needle in needles().items()
        for place, data in written.items()
        if needle.encode() in data
    ]


def assert_scanned(tmp_path: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert any((tmp_path / ".dagster").rglob("*.db")), "the scan must cover the event log"
    assert leaks(tmp_path, done) == []


def test_echoes_on_the_way_to_a_completed_run_are_written_nowhere(tmp_path, simulator, hostile):
    """Echoes in answers the run retries or refreshes past: a 500 whose status line and
    JSON-escaped body echo both, a 2xx error body echoing them percent-encoded, a 401 and a
    403 echoing them raw and as Basic auth, a garbled order status, and every answer's
    headers. The run still trades; the warnings it logged on the way are masked."""
    simulator.simulator.set_fill_mode("delayed", delay_polls=1)  # so the fill wait polls
    hostile.rules = [
        Rule("GET /v2/stocks/bars", Echo(500, lambda k, s: json_body(everything(k, s)),
                                         reason=f"Broken {KEY}"), times=1),
        Rule("GET /v2/clock", Echo(200, lambda k, s: json_body(
            f"bad request from {quote(k)} with {quote(s, safe='')}", 40010000)), times=1),
        Rule("GET /v2/account", Echo(401, lambda k, s: json_body(
            f"request is not authorized: key {k} secret {s}", 40110000)), times=1),
        Rule("GET /v2/positions", Echo(403, lambda k, s: json_body(
            "forbidden: Authorization: Basic "
            + base64.b64encode(f"{k}:{s}".encode()).decode())), times=1),
        Rule("GET /v2/orders/*", Echo(200, lambda k, s: json.dumps(
            {"Id": k, "Secret": s, "Echo": everything(k, s)})), times=1),
    ]  # fmt: skip

    done = tecl_run(tmp_path, hostile.url)

    assert done.returncode == 0, done.stderr
    assert sim_state(hostile.upstream)["submissions"], "the run must really have traded"
    assert set(hostile.echoed) >= {
        "GET /v2/stocks/bars",
        "GET /v2/clock",
        "GET /v2/account",
        "GET /v2/positions",
        "GET /v2/orders/*",
    }, hostile.echoed
    # The echoes reached what the run wrote, masked: the scan below is not vacuous.
    logs = b"".join(p.read_bytes() for p in tmp_path.rglob("*.jsonl"))
    assert b"***" in logs
    assert_scanned(tmp_path, done)


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(
            Echo(403, lambda k, s: json_body(f"forbidden for {everything(k, s)}", 40310000)),
            id="403-every-form",
        ),
        pytest.param(
            Echo(500, lambda k, s: json_body(everything(k, s)), reason=f"Down {KEY}"),
            id="500-every-form",
        ),
        pytest.param(Echo(200, lambda k, s: json_body(everything(k, s), 1)), id="2xx-error-body"),
        pytest.param(
            Echo(
                302,
                lambda k, s: "",
                location=lambda k, s: f"http://127.0.0.1:9/v2/account?key={k}&s={quote(s)}",
            ),
            id="redirect-url",
        ),
    ],
)
def test_a_run_stopped_by_an_echoing_broker_writes_no_credential(tmp_path, hostile, echo):
    """The broker answers the account with an echo every time: the run fails with exit
    status 1, its error line naming the endpoint, and neither that line, the stored error
    (its cause and context included), the verbose event output nor the logs hold any
    form of the keys."""
    hostile.rules = [Rule("GET /v2/account", echo, times=None)]

    done = tecl_run(tmp_path, hostile.url)

    assert done.returncode == 1, (done.returncode, done.stderr)
    assert hostile.echoed.get("GET /v2/account", 0) >= 1
    said = [line for line in done.stderr.splitlines() if line.startswith("tecl: error:")]
    assert said and "GET /v2/account" in said[-1], done.stderr[-2000:]
    assert sim_state(hostile.upstream)["submissions"] == []
    assert_scanned(tmp_path, done)
