"""Pytest fixtures and helpers for tests that talk to the broker simulator over HTTP.

`simulator`: a started `SimulatorServer` on a free loopback port, over demo data, with its
clock at the decision time of session 2026-11-24 (15:45 New York), stopped after the test.
`sim_admin(url, path, payload)` drives its /_sim/ admin endpoints; `trading_client` and
`data_client` build the real alpaca-py clients against it, with a request timeout (alpaca-py
sets none) and, by default, without alpaca-py's own 429/504 retries so a test sees each answer;
`market_order` sends a market order through such a client. `simulator_process`: a `tecl
simulator` process on a free port (session CLI_SESSION), its URL; `hold_bil` gives its
account a BIL position, so a TECL target needs a sell, then a buy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import MarketOrderRequest

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BrokerSimulator, SimulatorServer

SIM_SESSION = date(2026, 11, 24)
SIM_KEY = "sim-key"
SIM_SECRET = "sim-secret"


class TimeoutSession(requests.Session):
    """A requests session whose every call has a timeout (alpaca-py passes none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def _tune(client: Any, timeout: float, retries: bool) -> None:
    # alpaca-py exposes neither knob; both live on its RESTClient base.
    client._session = TimeoutSession(timeout)
    if not retries:
        client._retry = 0


def trading_client(
    url: str,
    *,
    key: str = SIM_KEY,
    secret: str = SIM_SECRET,
    timeout: float = 5.0,
    retries: bool = False,
) -> TradingClient:
    client = TradingClient(key, secret, paper=True, url_override=url)
    _tune(client, timeout, retries)
    return client


def data_client(
    url: str,
    *,
    key: str = SIM_KEY,
    secret: str = SIM_SECRET,
    timeout: float = 5.0,
    retries: bool = False,
) -> StockHistoricalDataClient:
    client = StockHistoricalDataClient(key, secret, url_override=url)
    _tune(client, timeout, retries)
    return client


def market_order(
    client: TradingClient,
    symbol: str,
    qty: float,
    cid: str,
    side: OrderSide = OrderSide.BUY,
    tif: TimeInForce = TimeInForce.DAY,
) -> Order:
    """POST /v2/orders through the real alpaca-py client: a market order, DAY unless told."""
    return client.submit_order(
        MarketOrderRequest(
            symbol=symbol, qty=qty, side=side, time_in_force=tif, client_order_id=cid
        )
    )


def sim_admin(url: str, path: str, payload: Any = None, *, method: str = "POST") -> Any:
    """Call an admin endpoint (e.g. "/_sim/clock") with a JSON body; return its JSON answer.
    Raises urllib.error.HTTPError on a 4xx/5xx answer."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def sim_state(url: str) -> dict[str, Any]:
    """GET /_sim/state: orders, submissions, positions, cash, request and fault counts."""
    return sim_admin(url, "/_sim/state", method="GET")


def set_sim_clock(url: str, moment: datetime) -> None:
    sim_admin(url, "/_sim/clock", {"now": moment.isoformat()})


def set_sim_faults(url: str, *rules: dict[str, Any], seed: int) -> None:
    """POST /_sim/faults: replace the fault plan (no rules: none); its draws start from `seed`,
    which is printed so that a failing run can be replayed (R2)."""
    print(f"fault plan seed={seed}")
    sim_admin(url, "/_sim/faults", {"seed": seed, "rules": list(rules)})


def sim_requests(url: str, endpoint: str) -> int:
    """How many requests the simulator counted for `endpoint` (e.g. "GET /v2/clock")."""
    return sim_state(url)["requests"].get(endpoint, 0)


@pytest.fixture(scope="session")
def sim_calendar() -> TradingCalendar:
    return TradingCalendar(start=date(2018, 1, 1), end=date(2027, 12, 31))


@pytest.fixture
def simulator(sim_calendar: TradingCalendar) -> Iterator[SimulatorServer]:
    now = sim_calendar.decision_time(SIM_SESSION)
    market_data = DemoMarketData(sim_calendar, now=lambda: now)
    with SimulatorServer(BrokerSimulator(market_data, sim_calendar, now=now)).start() as server:
        yield server


CLI_SESSION = "2026-11-24"


@pytest.fixture
def simulator_process(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECL_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tecl_pipeline.app.cli",
            "simulator",
            "--port",
            "0",
            "--session",
            CLI_SESSION,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert "listening on" in first, first + process.stderr.read()
        yield first.rsplit(" ", 1)[-1].strip()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def hold_bil(url: str) -> None:
    """The account holds BIL before the session, so its TECL target needs a sell, then a buy."""
    trading_client(url).submit_order(
        MarketOrderRequest(
            symbol="BIL",
            qty=100,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id="manual-bil-1",
        )
    )
