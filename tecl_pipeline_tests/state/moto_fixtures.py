"""A real S3 endpoint for tests: moto in server mode on 127.0.0.1, and a fault proxy.

`moto_server` runs one ThreadedMotoServer per test session on a free loopback port. Every
client the fixtures hand out talks to it by `endpoint_url`, with dummy credentials, and
`aws_sandbox` points the AWS_* environment at it too, so that nothing in a test (not even
a client built from the environment) can reach real AWS or read real credentials.

`FaultProxy` is a small HTTP proxy in front of moto for the failures moto cannot produce:
AccessDenied for chosen operations, 503 SlowDown throttling, a region redirect as AWS
sends it, a connection dropped mid-PUT, a response lost after the write landed, and a
corrupted response body. It also records every request it forwards, headers included, so
tests can check what actually went over the wire.

`session_record()` builds a plausible journal record for the state tests.

Register with `pytest_plugins = ["tecl_pipeline_tests.state.moto_fixtures"]`.
"""

import contextlib
import http.client
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.session
import pytest
from botocore.config import Config

from tecl_pipeline.state.journal import SessionRecord

REGION = "us-east-1"
FaultKind = Literal[
    "access_denied",  # 403 AccessDenied, as IAM would answer
    "slow_down",  # 503 SlowDown, S3's throttling answer
    "wrong_region",  # 301 PermanentRedirect with x-amz-bucket-region, as AWS answers
    "no_such_bucket",  # 404 NoSuchBucket
    "drop_mid_put",  # read half the request body, then close without answering
    "drop_after_forward",  # forward (the write lands), then close without answering
    "corrupt_body",  # forward, then replace the response body
]


@dataclass
class Fault:
    """Inject `kind` into requests for `operation` ("*" for all) whose path contains
    `key_contains`; `times` limits how many (None: every one). `injected` counts them."""

    operation: str
    kind: FaultKind
    times: int | None = None
    key_contains: str = ""
    region: str = "eu-west-1"
    body: bytes = b"{ this is not a journal record"
    injected: int = 0

    def matches(self, operation: str, path: str) -> bool:
        return (
            self.operation in ("*", operation)
            and self.key_contains in path
            and (self.times is None or self.injected < self.times)
        )


@dataclass(frozen=True)
class SeenRequest:
    operation: str
    method: str
    path: str
    headers: dict[str, str]
    fault: FaultKind | None


@dataclass
class _ProxyState:
    faults: list[Fault] = field(default_factory=list)
    seen: list[SeenRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def s3_operation(method: str, path: str, headers: dict[str, str]) -> str:
    """The S3 operation of a path-style request (enough of S3's REST mapping for tests)."""
    parts = urlsplit(path)
    bucket_and_key = parts.path.lstrip("/").split("/", 1)
    query = parse_qs(parts.query, keep_blank_values=True)
    if len(bucket_and_key) == 1 or not bucket_and_key[1]:
        if method == "HEAD":
            return "HeadBucket"
        if method == "GET":
            if "location" in query:
                return "GetBucketLocation"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "GetBucket"
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method, method)
    if method == "PUT":
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    return {
        "GET": "GetObject",
        "HEAD": "HeadObject",
        "DELETE": "DeleteObject",
    }.get(method, method)


def _error_xml(code: str, message: str, extra: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message>{extra}<RequestId>FAULTPROXY</RequestId></Error>"
    ).encode()


_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te"}
)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: botocore sends `Expect: 100-continue` on PUTs and keeps connections alive.
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        operation = s3_operation(self.command, self.path, headers)
        fault = self.server.proxy.take_fault(operation, self.path)
        self.server.proxy.record(
            SeenRequest(operation, self.command, self.path, headers, fault.kind if fault else None)
        )
        length = int(headers.get("content-length", "0") or 0)
        if fault is not None and fault.kind == "drop_mid_put":
            self.rfile.read(length // 2)
            self._drop()
            return
        body = self._read_body(headers, length)
        if fault is not None and fault.kind in ("access_denied", "slow_down", "no_such_bucket"):
            status, code, message = {
                "access_denied": (403, "AccessDenied", "Access Denied"),
                "slow_down": (503, "SlowDown", "Please reduce your request rate."),
                "no_such_bucket": (404, "NoSuchBucket", "The specified bucket does not exist"),
            }[fault.kind]
            self._answer(status, {"Content-Type": "application/xml"}, _error_xml(code, message))
            return
        if fault is not None and fault.kind == "wrong_region":
            extra = f"<Endpoint>s3.{fault.region}.amazonaws.com</Endpoint>"
            self._answer(
                301,
                {"Content-Type": "application/xml", "x-amz-bucket-region": fault.region},
                _error_xml(
                    "PermanentRedirect",
                    "The bucket you are attempting to access must be addressed using the "
                    "specified endpoint.",
                    extra,
                ),
            )
            return
        status, reason_headers, answer = self.server.proxy.forward(
            self.command, self.path, headers, body
        )
        if fault is not None and fault.kind == "drop_after_forward":
            self._drop()
            return
        if fault is not None and fault.kind == "corrupt_body" and self.command != "HEAD":
            answer = fault.body
        self._answer(status, reason_headers, answer)

    def _read_body(self, headers: dict[str, str], length: int) -> bytes:
        if headers.get("transfer-encoding", "").lower() != "chunked":
            return self.rfile.read(length) if length else b""
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() in _HOP_BY_HOP or name.lower() == "content-length":
                continue
            self.send_header(name, value)
        if self.command == "HEAD":
            # HEAD answers carry the object's length but no body.
            self.send_header("Content-Length", headers.get("content-length", "0"))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: "FaultProxy"


class FaultProxy:
    """An HTTP proxy to `upstream` (moto) that injects `Fault`s and records requests."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._state = _ProxyState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        # A short poll interval: stop() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def add(self, fault: Fault) -> Fault:
        with self._state.lock:
            self._state.faults.append(fault)
        return fault

    def inject(self, operation: str, kind: FaultKind, **options: Any) -> Fault:
        return self.add(Fault(operation, kind, **options))

    def clear(self) -> None:
        with self._state.lock:
            self._state.faults.clear()

    def requests(self, operation: str | None = None) -> list[SeenRequest]:
        with self._state.lock:
            return [r for r in self._state.seen if operation in (None, r.operation)]

    def take_fault(self, operation: str, path: str) -> Fault | None:
        with self._state.lock:
            for fault in self._state.faults:
                if fault.matches(operation, path):
                    fault.injected += 1
                    return fault
        return None

    def record(self, request: SeenRequest) -> None:
        with self._state.lock:
            self._state.seen.append(request)

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=10)
        try:
            outgoing = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
            if body or method in ("PUT", "POST"):
                outgoing["content-length"] = str(len(body))
            connection.request(method, path, body=body or None, headers=outgoing)
            response = connection.getresponse()
            answer = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, answer
        finally:
            connection.close()


def s3_client(
    endpoint: str,
    *,
    region: str = REGION,
    max_attempts: int = 2,
    session: boto3.session.Session | None = None,
) -> Any:
    """A boto3 S3 client for `endpoint` only: dummy credentials, bounded standard retries
    (`max_attempts` in all, first try included), short timeouts, path-style addressing.
    Pass the `boto_session` fixture as `session` to skip reloading botocore's models."""
    return (session or boto3.session.Session()).client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=2,
            read_timeout=5,
            s3={"addressing_style": "path"},
        ),
    )


class Events:
    """An on_event sink that remembers (kind, message) pairs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, kind: str, message: str) -> None:
        self.seen.append((kind, message))

    def of(self, kind: str) -> list[str]:
        return [message for k, message in self.seen if k == kind]


@pytest.fixture
def journal_events() -> Events:
    return Events()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 (and the rest of AWS) in server mode on a free loopback port: its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_sandbox(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The AWS_* environment pointed at moto with dummy credentials, for one test; no
    profile, config file or instance metadata can supply real ones. Returns moto's URL."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_server


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One boto3 session for the whole run (loading botocore's models once saves ~0.1 s
    per client), blind to the machine's AWS config and credentials files."""
    core = botocore.session.Session()
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    return boto3.session.Session(botocore_session=core, region_name=REGION)


@pytest.fixture
def make_s3_client(aws_sandbox: str, boto_session: boto3.session.Session) -> Callable[..., Any]:
    """make_s3_client(endpoint=moto, *, region, max_attempts): a sandboxed test client."""

    def make(endpoint: str | None = None, *, region: str = REGION, max_attempts: int = 2) -> Any:
        return s3_client(
            endpoint or aws_sandbox, region=region, max_attempts=max_attempts, session=boto_session
        )

    return make


@pytest.fixture
def moto_s3(make_s3_client: Callable[..., Any]) -> Any:
    """A client straight to moto (no proxy): for setting up and inspecting buckets."""
    return make_s3_client()


@pytest.fixture
def s3_bucket(moto_s3: Any) -> str:
    """A fresh, empty bucket in us-east-1, unique to the test (no moto reset needed)."""
    name = f"journal-{uuid.uuid4().hex[:20]}"
    moto_s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def fault_proxy(aws_sandbox: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of moto, started for one test."""
    proxy = FaultProxy(aws_sandbox).start()
    yield proxy
    proxy.stop()


_EPOCH = date(2024, 1, 1)


def session_record(
    session: date,
    run_id: str = "run-1",
    *,
    written_at: datetime | None = None,
    reason: str = "TECL above its 200-day average",
    tecl_qty: str = "12.5",
) -> SessionRecord:
    """A plausible journal record (Decimal money, tz-aware time) for the state tests."""
    return SessionRecord(
        session=session,
        run_id=run_id,
        written_at=written_at or datetime(2024, 1, 1, 21, 0, tzinfo=UTC) + (session - _EPOCH),
        data_source="csv replay",
        broker="simulator",
        leaf="risk-on",
        reason=reason,
        weights={"TECL": Decimal("1")},
        orders=[],
        positions={"TECL": Decimal(tecl_qty)},
        cash=Decimal("12.34"),
        equity=Decimal("10012.34"),
    )
