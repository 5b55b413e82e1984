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
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
import requests
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.models import BarSet, Trade
from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import (
    Asset,
    Calendar,
    Clock,
    Order,
    Position,
    TradeAccount,
)
from alpaca.trading.requests import (
    CancelOrderResponse,
    GetCalendarRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    MarketOrderRequest,
    OrderRequest,
)

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BrokerSimulator, FillMode, SimulatorServer
from tecl_pipeline_tests.simulator.alpaca_contract import ContractRecorder

SIM_SESSION = date(2026, 11, 24)
SIM_KEY = "sim-key"
SIM_SECRET = "sim-secret"
# One bar per session. Not TimeFrame.Day: alpaca-py declares it a classproperty, which a
# type checker sees as the descriptor, and TimeFrameUnit's members as plain str; the unit
# looked up by its value is typed.
DAILY = TimeFrame(1, TimeFrameUnit("Day"))


class TimeoutSession(requests.Session):
    """A requests session whose every call has a timeout (alpaca-py passes none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


Model = TypeVar("Model")


def _parsed(answer: object, model: type[Model]) -> Model:
    """alpaca-py answers `model | RawData`; without raw_data (these clients) it is the model."""
    assert isinstance(answer, model), f"expected {model.__name__}, got {type(answer).__name__}"
    return answer


def _parsed_list(answer: object, model: type[Model]) -> list[Model]:
    assert isinstance(answer, list), f"expected a list of {model.__name__}, got {answer!r}"
    return [_parsed(item, model) for item in answer]


class ModelTradingClient(TradingClient):
    """alpaca-py's TradingClient, typed as it behaves here: every answer is a parsed model
    (its raw_data option is off), so a test reads `account.cash` without narrowing."""

    def submit_order(self, order_data: OrderRequest) -> Order:
        return _parsed(super().submit_order(order_data), Order)

    def get_orders(self, filter: GetOrdersRequest | None = None) -> list[Order]:
        return _parsed_list(super().get_orders(filter), Order)

    def get_order_by_id(
        self, order_id: UUID | str, filter: GetOrderByIdRequest | None = None
    ) -> Order:
        return _parsed(super().get_order_by_id(order_id, filter), Order)

    def get_order_by_client_id(self, client_id: str) -> Order:
        return _parsed(super().get_order_by_client_id(client_id), Order)

    def cancel_orders(self) -> list[CancelOrderResponse]:
        return _parsed_list(super().cancel_orders(), CancelOrderResponse)

    def get_all_positions(self) -> list[Position]:
        return _parsed_list(super().get_all_positions(), Position)

    def get_open_position(self, symbol_or_asset_id: UUID | str) -> Position:
        return _parsed(super().get_open_position(symbol_or_asset_id), Position)

    def get_asset(self, symbol_or_asset_id: UUID | str) -> Asset:
        return _parsed(super().get_asset(symbol_or_asset_id), Asset)

    def get_clock(self) -> Clock:
        return _parsed(super().get_clock(), Clock)

    def get_account(self) -> TradeAccount:
        return _parsed(super().get_account(), TradeAccount)

    def get_calendar(self, filters: GetCalendarRequest | None = None) -> list[Calendar]:
        return _parsed_list(super().get_calendar(filters), Calendar)


R = TypeVar("R", StockBarsRequest, StockLatestTradeRequest)


def _on_iex(request: R) -> R:
    """The request as a client on Alpaca's free plan sends it: naming IEX unless it names a
    feed (with none, Alpaca and the simulator read SIP, refused for the last 15 minutes)."""
    if request.feed is not None:
        return request
    return request.model_copy(update={"feed": DataFeed.IEX})


class ModelDataClient(StockHistoricalDataClient):
    """alpaca-py's StockHistoricalDataClient, typed as it behaves here (parsed models), on the
    IEX feed unless a request names another."""

    def get_stock_bars(self, request_params: StockBarsRequest) -> BarSet:
        return _parsed(super().get_stock_bars(_on_iex(request_params)), BarSet)

    def get_stock_latest_trade(self, request_params: StockLatestTradeRequest) -> dict[str, Trade]:
        answer = super().get_stock_latest_trade(_on_iex(request_params))
        assert isinstance(answer, dict), f"expected trades by symbol, got {answer!r}"
        return {str(symbol): _parsed(trade, Trade) for symbol, trade in answer.items()}


def amount(value: Decimal | str | float | None) -> Decimal:
    """A money or quantity field (of an alpaca-py model, or a simulator price) as Decimal;
    the value must be there."""
    assert value is not None, "the broker left the field out"
    return Decimal(str(value))


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
) -> ModelTradingClient:
    client = ModelTradingClient(key, secret, paper=True, url_override=url)
    _tune(client, timeout, retries)
    return client


def data_client(
    url: str,
    *,
    key: str = SIM_KEY,
    secret: str = SIM_SECRET,
    timeout: float = 5.0,
    retries: bool = False,
) -> ModelDataClient:
    client = ModelDataClient(key, secret, url_override=url)
    _tune(client, timeout, retries)
    return client


def market_order(
    client: ModelTradingClient,
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
def simulator(
    sim_calendar: TradingCalendar, request: pytest.FixtureRequest
) -> Iterator[SimulatorServer]:
    """The simulator at SIM_SESSION's decision time, filling as Alpaca does (async), unless
    the test is marked `instant_fills`."""
    now = sim_calendar.decision_time(SIM_SESSION)
    market_data = DemoMarketData(sim_calendar, now=lambda: now)
    instant = request.node.get_closest_marker("instant_fills") is not None
    engine = BrokerSimulator(
        market_data, sim_calendar, now=now, fills=FillMode.IMMEDIATE if instant else FillMode.ASYNC
    )
    contract = ContractRecorder()
    with SimulatorServer(engine, observer=contract).start() as server:
        yield server
    # Every answer the test got, and every request the simulator accepted, is Alpaca's,
    # unless the test makes the simulator play a server Alpaca is not, on purpose.
    if request.node.get_closest_marker("off_contract") is None:
        assert contract.problems == [], "\n".join(dict.fromkeys(contract.problems))


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
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        assert "listening on" in first, first + process.stderr.read()
        yield first.rsplit(" ", 1)[-1].strip()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def hold_bil(url: str) -> None:
    """The account holds BIL before the session, so its TECL target needs a sell, then a buy."""
    by_hand(url, "BIL", 100, OrderSide.BUY, "manual-bil-1")


def by_hand(url: str, symbol: str, qty: int, side: OrderSide, client_order_id: str) -> None:
    """A market order a person places outside the pipeline, read until it has filled, as a
    person watching it would."""
    client = trading_client(url)
    client.submit_order(
        MarketOrderRequest(
            symbol=symbol,
            qty=qty,
            side=side,
            time_in_force=TimeInForce.DAY,
            client_order_id=client_order_id,
        )
    )
    for _ in range(10):
        if client.get_order_by_client_id(client_order_id).status == "filled":
            return
    raise AssertionError(f"the simulator never filled {client_order_id}")
