"""A tiny HTTP fault proxy in front of a moto server: the AWS failures moto cannot produce
(R3, S4, A6) — throttling, access denied, KMS decryption failure, 5xx, dropped connections.

Standard library only and self-contained on purpose (other AWS fakes in the suite keep their
own). It speaks the AWS JSON protocol (Secrets Manager, KMS, ...), where each request is a
POST naming its operation in the `X-Amz-Target` header ("secretsmanager.GetSecretValue");
faults are chosen by that operation name, "*" for every operation. Everything not faulted is
forwarded to the upstream (moto) unchanged, so the proxy also counts what reached AWS.

    proxy = AwsFaultProxy("http://127.0.0.1:5000").start()
    proxy.fail("GetSecretValue", "ThrottlingException", times=2)   # then forward again
    proxy.fail("*", "ServiceUnavailable", status=503)                # until clear()
    proxy.drop("DescribeSecret")             # close the connection without an answer
    proxy.calls("GetSecretValue")            # requests seen, faulted or not
    proxy.stop()
"""

import http.client
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ANY = "*"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


@dataclass
class _Fault:
    operation: str
    status: int
    code: str | None  # None: drop the connection without answering
    message: str
    remaining: int | None  # None: until cleared


class AwsFaultProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"upstream must be http://HOST:PORT, got {upstream!r}")
        self._upstream = (parts.hostname, parts.port)
        self._host = host
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._seen: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "AwsFaultProxy":
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer((self._host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="aws-fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "AwsFaultProxy":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the proxy is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ faults

    def fail(
        self,
        operation: str,
        code: str,
        *,
        status: int = 400,
        message: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer `operation` with an AWS JSON error `{"__type": code, "message": ...}`
        and `status`, the next `times` times (None: until `clear()`)."""
        self._add(_Fault(operation, status, code, message or f"injected {code}", times))

    def drop(self, operation: str, *, times: int | None = None) -> None:
        """Close the connection on `operation` without any answer (a network failure)."""
        self._add(_Fault(operation, 0, None, "", times))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._seen.clear()

    def calls(self, operation: str = ANY) -> int:
        """Requests seen for `operation` (all, by default), faulted or forwarded."""
        with self._lock:
            counts = Counter(self._seen)
        return sum(counts.values()) if operation == ANY else counts[operation]

    @property
    def seen(self) -> list[str]:
        with self._lock:
            return list(self._seen)

    def _add(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining < 1:
            raise ValueError("times must be >= 1 (or None for 'until cleared')")
        with self._lock:
            self._faults.append(fault)

    def _take(self, operation: str) -> _Fault | None:
        """Record the request; the first matching fault that still applies, used up once."""
        with self._lock:
            self._seen.append(operation)
            for fault in self._faults:
                if fault.operation in (ANY, operation) and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    owner: AwsFaultProxy

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the tests assert on what they need

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target") or ""
        operation = target.rsplit(".", 1)[-1] if target else f"{self.command} {self.path}"
        fault = self.owner._take(operation)
        if fault is not None and fault.code is None:
            self.close_connection = True
            return  # nothing written: the client sees the connection closed
        if fault is not None:
            payload = json.dumps({"__type": fault.code, "message": fault.message}).encode()
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(*self.owner._upstream, timeout=10)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay
