"""A loopback HTTP server that answers with canned responses, for the body and status
shapes the broker simulator never produces (a position listed twice, an order echoed for
another id, a page token that repeats, a status that is not ACTIVE, ...).

The real alpaca-py clients talk to it over HTTP, as they talk to Alpaca: only the answers
are scripted. `answer(method, path, *responses)` queues responses for one route; the last
one repeats. A route without answers is a 404 naming it, so a test never silently reads
something it did not script. Every request is recorded with its parsed query.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tecl_pipeline_tests.loopback_http import LoopbackServer


@dataclass
class Canned:
    """One scripted answer: a JSON body (or raw text) with a status and headers."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: str | None = None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class CannedServer:
    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], list[Canned | Callable[[Seen], Canned]]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    json.loads(raw) if raw else None,
                )
                canned = server._next(seen)
                text = canned.raw if canned.raw is not None else json.dumps(canned.body)
                data = text.encode()
                self.send_response(canned.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

        self._server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return self._server.url

    def answer(self, method: str, path: str, *responses: Canned | Callable[[Seen], Canned]):
        """Queue `responses` for `method path` (e.g. "GET", "/v2/clock"); the last repeats.
        A callable is asked for each answer with the request it answers."""
        with self._lock:
            self._routes[(method, path)] = list(responses)
        return self

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if (s.method, s.path) == (method, path)]

    def _next(self, seen: Seen) -> Canned:
        with self._lock:
            self.seen.append(seen)
            queue = self._routes.get((seen.method, seen.path))
            if not queue:
                return Canned({"message": f"no answer scripted for {seen.method} {seen.path}"}, 404)
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(seen) if callable(answer) else answer

    def start(self) -> CannedServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server = CannedServer().start()
    try:
        yield server
    finally:
        server.stop()
