"""The simulator over HTTP: Alpaca's trading and market-data paths on one loopback server,
admin endpoints under /_sim/, and faults injected at the wire.

Stdlib only (http.server). Each connection gets a thread; the simulator's own lock keeps the
book consistent. Faults that stall (latency, timeout) sleep outside that lock, so one slow
answer never blocks the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tecl_pipeline.common.endpoints import is_loopback
from tecl_pipeline.simulator import admin, wire
from tecl_pipeline.simulator.engine import (
    DEMO_API_KEY,
    DEMO_API_SECRET,
    RATE_LIMIT_PER_MINUTE,
    BrokerSimulator,
)
from tecl_pipeline.simulator.faults import Fault, FaultKind, FaultPlanError
from tecl_pipeline.simulator.model import MARKET_BUY_COLLAR, AccountKind, DataPlan, FillMode
from tecl_pipeline.simulator.wire import (
    BAD_REQUEST,
    INTERNAL,
    NOT_FOUND,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNAVAILABLE,
    ApiError,
)

_LOG = logging.getLogger(__name__)


def _too_many_requests() -> dict[str, Any]:
    """Alpaca's 429 body, over the rate limit or as a fault."""
    return {"code": RATE_LIMITED, "message": "too many requests"}


@dataclass(frozen=True)
class Exchange:
    """One request to an Alpaca endpoint and the answer it got, as sent (before a fault that
    garbles or drops it): what an observer of the simulator sees."""

    endpoint: str
    """"METHOD template", e.g. "GET /v2/orders/{id}"."""
    query: Mapping[str, str]
    payload: object
    """The JSON body of a POST (None for other requests)."""
    status: int
    body: Any


# Alpaca's paths (trading and market data share the /v2 prefix), as "METHOD template".
_ENDPOINTS = (
    "GET /v2/account",
    "GET /v2/clock",
    "GET /v2/calendar",
    "GET /v2/assets/{symbol}",
    "GET /v2/positions",
    "GET /v2/positions/{symbol}",
    "POST /v2/orders",
    "GET /v2/orders",
    "DELETE /v2/orders",
    "GET /v2/orders:by_client_order_id",
    "GET /v2/orders/{id}",
    "DELETE /v2/orders/{id}",
    "GET /v2/stocks/bars",
    "GET /v2/stocks/trades/latest",
)

_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_IDLE_CONNECTION_SECONDS = 120


def _route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The endpoint template matching a request, with the path's parameters."""
    parts = path.rstrip("/").split("/")
    for endpoint in _ENDPOINTS:
        verb, template = endpoint.split(" ", 1)
        pattern = template.split("/")
        if verb != method or len(pattern) != len(parts):
            continue
        params: dict[str, str] = {}
        for expected, actual in zip(pattern, parts, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                if not actual:
                    break
                params[expected[1:-1]] = actual
            elif expected != actual:
                break
        else:
            return endpoint, params
    return None


def _call(
    simulator: BrokerSimulator,
    endpoint: str,
    params: Mapping[str, str],
    query: Mapping[str, str],
) -> tuple[int, Any]:
    match endpoint:
        case "GET /v2/account":
            return 200, simulator.account()
        case "GET /v2/clock":
            return 200, simulator.clock()
        case "GET /v2/calendar":
            return 200, simulator.calendar_days(query)
        case "GET /v2/assets/{symbol}":
            return 200, simulator.asset(params["symbol"])
        case "GET /v2/positions":
            return 200, simulator.positions()
        case "GET /v2/positions/{symbol}":
            return 200, simulator.position(params["symbol"])
        case "GET /v2/orders":
            return 200, simulator.orders(query)
        case "DELETE /v2/orders":
            return 207, simulator.cancel_all()
        case "GET /v2/orders:by_client_order_id":
            return 200, simulator.order_by_client_id(query.get("client_order_id"))
        case "GET /v2/orders/{id}":
            return 200, simulator.order(params["id"])
        case "DELETE /v2/orders/{id}":
            simulator.cancel_order(params["id"])
            return 204, None
        case "GET /v2/stocks/bars":
            return 200, simulator.bars(query)
        case "GET /v2/stocks/trades/latest":
            return 200, simulator.latest_trades(query)
    raise ApiError(404, NOT_FOUND, "endpoint not found")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as alpaca-py's requests session expects
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # stalls every keep-alive answer by ~40 ms.
    disable_nagle_algorithm = True
    server_version = "AlpacaSimulator/1.0"
    timeout = _IDLE_CONNECTION_SECONDS
    # Narrower than BaseRequestHandler's BaseServer: socketserver hands each handler the
    # _HTTPServer that accepted its connection, and nothing assigns the attribute after.
    server: _HTTPServer  # pyright: ignore[reportIncompatibleVariableOverride]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("%s %s", self.address_string(), format % args)

    # -- plumbing ---------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        if url.path.startswith("/_sim/"):
            self._handle_admin(method, url.path, raw)
        else:
            self._handle_broker(method, url.path, query, raw)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body, default=str).encode()
        self._send(status, data, headers=headers)

    def _hang_up(self) -> None:
        """Close the connection without an answer: the client sees the socket close."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- admin ------------------------------------------------------------------------------

    def _handle_admin(self, method: str, path: str, raw: bytes) -> None:
        try:
            payload = json.loads(raw) if raw.strip() else {}
            if not isinstance(payload, dict):
                raise admin.AdminError(400, "the body must be a JSON object")
            body = admin.handle(self.server.simulator, method, path, payload)
        except admin.AdminError as exc:
            self._send_json(exc.status, {"error": str(exc)})
        except (ValueError, TypeError, ArithmeticError, FaultPlanError) as exc:
            self._send_json(400, {"error": f"{type(exc).__name__}: {exc}"})
        except Exception as exc:
            _LOG.exception("simulator admin failed on %s %s", method, path)
            self._send_json(500, {"error": f"{type(exc).__name__}: {exc}"})
        else:
            self._send_json(200, body)

    # -- broker -----------------------------------------------------------------------------

    def _handle_broker(self, method: str, path: str, query: Mapping[str, str], raw: bytes) -> None:
        simulator = self.server.simulator
        routed = _route(method, path)
        endpoint = routed[0] if routed else f"{method} {path}"
        key = self._rate_key(path)
        fault, throttled = simulator.begin_request(endpoint, key)
        payload: object = None
        if endpoint == "POST /v2/orders":
            try:
                payload = json.loads(raw, parse_float=Decimal) if raw.strip() else None
            except ValueError:
                payload = raw.decode(errors="replace")
        if throttled:
            # As Alpaca: not carried out, and no Retry-After; X-RateLimit-Reset says when.
            if endpoint == "POST /v2/orders":
                simulator.record_unprocessed_submission(payload, "rate_limited", 429)
            self._observe(Exchange(endpoint, query, payload, 429, _too_many_requests()))
            self._send_json(429, _too_many_requests(), simulator.rate_limit_headers(key))
            return
        if fault is not None and fault.kind is FaultKind.LATENCY:
            self._sleep(fault.delay)
        elif fault is not None and not fault.kind.performs_request:
            if endpoint == "POST /v2/orders":
                simulator.record_unprocessed_submission(
                    payload, fault.kind.value, fault.status or 0
                )
            self._send_fault(fault, simulator.rate_limit_headers(key))
            return
        status, body = self._answer(simulator, routed, endpoint, query, payload, fault)
        if routed is not None:
            self._observe(Exchange(endpoint, query, payload, status, body))
        headers = simulator.rate_limit_headers(key)
        if fault is not None and fault.kind is FaultKind.DROP_RESPONSE:
            self._hang_up()
            return
        if fault is not None and fault.kind is FaultKind.MALFORMED and 200 <= status < 300:
            status, body = fault.status or 200, wire.malform(body)
        self._send_json(status, body, headers)

    def _answer(
        self,
        simulator: BrokerSimulator,
        routed: tuple[str, dict[str, str]] | None,
        endpoint: str,
        query: Mapping[str, str],
        payload: object,
        fault: Fault | None,
    ) -> tuple[int, Any]:
        try:
            simulator.authenticate(
                self.headers.get("APCA-API-KEY-ID"), self.headers.get("APCA-API-SECRET-KEY")
            )
            if routed is None:
                raise ApiError(404, NOT_FOUND, "endpoint not found")
            if endpoint == "POST /v2/orders":
                if isinstance(payload, str):
                    raise ApiError(400, BAD_REQUEST, "request body format is invalid")
                hidden = fault.kind.value if fault is not None else None
                return 200, simulator.submit_order(payload, fault=hidden)
            return _call(simulator, endpoint, routed[1], query)
        except ApiError as exc:
            return exc.status, exc.body()
        except Exception as exc:
            # A simulator bug or a clock outside the calendar: say so, as a 500 would.
            _LOG.exception("simulator failed on %s", endpoint)
            return 500, {"code": INTERNAL, "message": f"simulator error: {exc}"}

    def _observe(self, exchange: Exchange) -> None:
        observer = self.server.observer
        if observer is None:
            return
        try:
            observer(exchange)
        except Exception:  # an observer's failure must not become a lost answer
            _LOG.exception("simulator observer failed on %s", exchange.endpoint)

    def _sleep(self, seconds: float) -> None:
        self.server.stopping.wait(seconds)

    def _rate_key(self, path: str) -> str:
        """Whose budget a request spends: its API key's, one for trading and one for market
        data, as Alpaca counts them."""
        api = "data" if path.startswith("/v2/stocks") else "trading"
        return f"{api}:{self.headers.get('APCA-API-KEY-ID') or ''}"

    def _send_fault(self, fault: Fault, limits: Mapping[str, str]) -> None:
        retry = {"Retry-After": str(fault.retry_after)}
        status = fault.status or 500
        match fault.kind:
            case FaultKind.TIMEOUT:
                # Longer than the client waits; then the connection goes without an answer.
                self._sleep(fault.delay)
                self._hang_up()
            case FaultKind.RATE_LIMIT:
                headers = {**limits, "X-RateLimit-Remaining": "0", **retry}
                self._send_json(status, _too_many_requests(), headers)
            case FaultKind.SERVER_ERROR:
                body = {"code": INTERNAL, "message": "internal server error occurred"}
                self._send_json(status, body, limits)
            case FaultKind.MAINTENANCE:
                body = {
                    "code": UNAVAILABLE,
                    "message": "service unavailable: scheduled maintenance",
                }
                self._send_json(status, body, {**limits, **retry})
            case FaultKind.BAD_GATEWAY_HTML:
                self._send(status, _GATEWAY_HTML, "text/html", limits)
            case FaultKind.ERROR_BODY:
                body = {"code": INTERNAL, "message": "internal error"}
                self._send_json(status, body, limits)
            case FaultKind.UNAUTHORIZED:
                body = {"code": UNAUTHORIZED, "message": "request is not authorized"}
                self._send_json(status, body, limits)
            case _:
                raise AssertionError(f"fault {fault.kind} performs the request")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a burst of clients (a
    # concurrency test, a soak) connects at once.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        simulator: BrokerSimulator,
        stopping: threading.Event,
        observer: Callable[[Exchange], None] | None,
    ) -> None:
        self.simulator = simulator
        self.stopping = stopping
        self.observer = observer
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections, so their threads end with the server (C8)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (its own timeout, a dropped-response fault) is not an error.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class SimulatorServer:
    """The simulator on `host:port` (port 0: a free port, known from `url` at once).
    `observer` is shown every exchange with an Alpaca endpoint (the contract tests check
    each one against Alpaca's reference)."""

    def __init__(
        self,
        simulator: BrokerSimulator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        observer: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.simulator = simulator
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), simulator, self._stopping, observer)
        bound_port = self._httpd.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound_port}"
        self._thread: threading.Thread | None = None
        self._serving = False
        self._closed = False

    def start(self) -> SimulatorServer:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"broker-simulator {self.url}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop` (from another thread) or Ctrl-C."""
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._serving = False

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()  # wakes handlers sleeping in a latency or timeout fault
        if self._serving:
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._serving = False
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(
    host: str,
    port: int,
    *,
    data_dir: Path | None,
    seed: int | None,
    now: datetime | None,
    allow_remote: bool = False,
    book_path: Path | None = None,
    data_plan: DataPlan = DataPlan.BASIC,
    account_kind: AccountKind = AccountKind.MARGIN,
    rate_limit: int | None = RATE_LIMIT_PER_MINUTE,
    fills: FillMode = FillMode.ASYNC,
    market_buy_collar: Decimal = MARKET_BUY_COLLAR,
) -> None:
    """`tecl simulator`: serve demo data (or CSV replay from `data_dir`) until Ctrl-C.

    `seed` seeds the demo data (default: the demo's own seed); `now` sets the simulated clock
    (default: the decision time of the data's latest session). Plain HTTP, so only loopback
    unless `allow_remote`. `book_path`: keep the simulated account in that file, so that it
    outlives the server (see `BrokerSimulator`).
    """
    if not allow_remote and not is_loopback(host):
        raise ValueError(
            f"refusing to serve the broker simulator on non-loopback host {host!r}: it speaks "
            "plain HTTP and accepts a fixed demo key; pass allow_remote=True to do it anyway"
        )
    # Imported here: the server module stays light for code that only wants the classes.
    from tecl_pipeline.core.calendar import TradingCalendar
    from tecl_pipeline.marketdata.csv_source import CsvMarketData
    from tecl_pipeline.marketdata.demo import DEMO_SEED, DemoMarketData

    calendar = TradingCalendar()
    if data_dir is None:
        fixed = now
        market = DemoMarketData(
            calendar,
            now=(lambda: fixed) if fixed is not None else (lambda: datetime.now(UTC)),
            seed=DEMO_SEED if seed is None else seed,
        )
    else:
        market = CsvMarketData(data_dir)
    simulator = BrokerSimulator(
        market,
        calendar,
        now=now,
        api_key=DEMO_API_KEY,
        api_secret=DEMO_API_SECRET,
        book_path=book_path,
        data_plan=data_plan,
        account_kind=account_kind,
        rate_limit=rate_limit,
        fills=fills,
        market_buy_collar=market_buy_collar,
    )
    server = SimulatorServer(simulator, host, port)
    clock = simulator.clock()
    print(f"Alpaca-compatible broker simulator listening on {server.url}", flush=True)
    print(f"  market data: {market.description} ({data_plan.value} data plan)", flush=True)
    state = "open" if clock["is_open"] else "closed"
    print(f"  simulated clock: {clock['timestamp']} (market {state})", flush=True)
    print(
        f"  account: {account_kind.value}; market buys checked at {market_buy_collar:%} above "
        "the price",
        flush=True,
    )
    limit = "none" if rate_limit is None else f"{rate_limit} requests a minute per API key"
    print(f"  rate limit: {limit}", flush=True)
    print(f"  fills: {fills.value}", flush=True)
    if book_path is not None:
        print(f"  account book: {book_path}", flush=True)
    print(
        f"  point the pipeline at it: TECL_BROKER_URL={server.url} TECL_DATA_URL={server.url} "
        f"ALPACA_API_KEY={DEMO_API_KEY} ALPACA_SECRET_KEY={DEMO_API_SECRET} "
        "(the simulator's fixed demo secret)",
        flush=True,
    )
    print(f"  controls: GET {server.url}/_sim/state, POST {server.url}/_sim/clock ...", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nsimulator stopped", flush=True)
    finally:
        server.stop()
