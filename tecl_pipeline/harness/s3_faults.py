"""An HTTP fault proxy in front of an S3 endpoint (moto) for the failures moto cannot produce:
AccessDenied for chosen operations, 503 SlowDown throttling, a region redirect as AWS sends
it, a connection dropped mid-PUT, a response lost after the write landed, and a corrupted
response body (R3). It records every request it forwards, headers included, so a test or a
drill can check what actually went over the wire.

Standard library only: the state tests and the chaos soak both put it in front of moto.
"""

import contextlib
import http.client
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

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
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # stalls every keep-alive answer by ~40 ms (as the simulator's handler says too).
    disable_nagle_algorithm = True
    # The handler's server is always this proxy's own; narrowed so its fault table is typed.
    server: "_Server"  # pyright: ignore[reportIncompatibleVariableOverride]

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

    def forget(self) -> None:
        """Drop the requests recorded so far (a long soak would otherwise keep them all)."""
        with self._state.lock:
            self._state.seen.clear()

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
