"""A threaded HTTP server on a free loopback port, for tests that need a server of their own
(scripted answers, an echoing proxy, a webhook receiver): started, addressed and stopped one
way everywhere. With a TLS context it serves https (a receiver that must be reached over
TLS, with a certificate the test makes and trusts)."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Serves `handler` on 127.0.0.1 from `start()` until `stop()`; also a context manager.
    `tls`: a server-side context, to serve https instead of http."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, tls: ssl.SSLContext | None = None
    ) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._scheme = "http" if tls is None else "https"
        if tls is not None:
            # The handshake on first read, in the connection's own thread: in accept() it
            # would hold up the server's one accepting thread behind a slow or failing client.
            self._httpd.socket = tls.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        # A short poll: stop() returns at once rather than after half a second.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
