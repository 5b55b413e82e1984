"""Every fault kind, produced at the wire and observed through the real alpaca-py clients:
what the pipeline's Alpaca adapter will actually see. Delays are short and clients time out
after 1.5 s (room for a loaded machine to answer a normal call), so the module runs in
seconds."""

# The simulator fixtures are imported below; pytest injects them into tests by name.
# ruff: noqa: F811

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment
from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
from alpaca.trading.enums import OrderStatus, QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from pydantic import ValidationError

from tecl_pipeline_tests.simulator.simulator_fixtures import (  # noqa: F401 (fixtures)
    DAILY,
    data_client,
    market_order,
    set_sim_faults,
    sim_admin,
    sim_calendar,
    sim_state,
    simulator,
    trading_client,
)

# These tests are about faults on the wire, not an order's life:
# orders fill in the POST here.
pytestmark = pytest.mark.instant_fills


CLIENT_TIMEOUT = 1.5
STALL = 4.0
SUBMIT = "POST /v2/orders"


def faults(url: str, *rules: dict[str, Any], seed: int = 1) -> None:
    set_sim_faults(url, *rules, seed=seed)


def buy(client, cid: str, qty: float = 2, symbol: str = "TECL"):
    return market_order(client, symbol, qty, cid)


def api_error(call, *args) -> APIError:
    with pytest.raises(APIError) as caught:
        call(*args)
    return caught.value


def response_headers(error: APIError) -> Mapping[str, str]:
    assert error.response is not None, "alpaca-py kept no HTTP response for the error"
    return error.response.headers


def client(url: str, **kwargs):
    return trading_client(url, timeout=CLIENT_TIMEOUT, **kwargs)


def test_latency_delays_then_answers_normally(simulator):
    """B2: a slow answer is still a correct answer."""
    faults(
        simulator.url, {"endpoint": "GET /v2/account", "kind": "latency", "delay": 0.25, "times": 1}
    )
    started = time.monotonic()
    account = trading_client(simulator.url).get_account()
    assert time.monotonic() - started >= 0.25
    assert account.cash == "100000"
    assert sim_state(simulator.url)["faults_injected"] == {"latency": 1}


def test_timeout_stalls_past_the_client_timeout_and_never_answers(simulator):
    """B2: a stalled broker ends in the client's read timeout, well before the stall ends."""
    faults(
        simulator.url, {"endpoint": "GET /v2/clock", "kind": "timeout", "delay": STALL, "times": 1}
    )
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        client(simulator.url).get_clock()
    assert time.monotonic() - started < STALL
    assert client(simulator.url).get_clock().is_open is True


def test_timeout_on_submit_never_reaches_the_book(simulator):
    """B2, B5: a timed-out submit may not have happened; here it did not, and the lookup by
    client order id says so (404) instead of guessing."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "timeout", "delay": STALL, "times": 1})
    broker = client(simulator.url)
    with pytest.raises(requests.exceptions.ReadTimeout):
        buy(broker, "timeout-1")
    assert api_error(broker.get_order_by_client_id, "timeout-1").status_code == 404
    (attempt,) = sim_state(simulator.url)["submissions"]
    assert (attempt["client_order_id"], attempt["outcome"], attempt["fault"]) == (
        "timeout-1",
        "not processed",
        "timeout",
    )
    assert buy(broker, "timeout-1").status is OrderStatus.FILLED


def test_rate_limit_is_429_with_retry_after_and_an_exhausted_budget(simulator):
    """B1: 429 carries Retry-After and X-RateLimit-Remaining 0; the call was not processed."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "rate_limit", "retry_after": 7, "times": 1})
    broker = client(simulator.url)
    error = api_error(buy, broker, "limited-1")
    assert (error.status_code, error.code) == (429, 42910000)
    headers = response_headers(error)
    assert headers["Retry-After"] == "7"
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("200", "0")
    assert int(headers["X-RateLimit-Reset"]) > time.time() - 60
    assert sim_state(simulator.url)["orders"] == []
    assert buy(broker, "limited-1").status is OrderStatus.FILLED


def test_alpaca_py_retries_429_by_itself_unless_told_not_to(simulator):
    """B1, C6: alpaca-py silently resends a 429 (fixed wait, Retry-After ignored). An adapter
    that retries too must turn this off, or the two policies multiply."""
    faults(simulator.url, {"endpoint": "GET /v2/account", "kind": "rate_limit", "times": 2})
    stacked = client(simulator.url, retries=True)
    stacked._retry_wait = 0  # its default is a fixed 3 s per retry
    assert stacked.get_account().cash == "100000"
    state = sim_state(simulator.url)
    assert state["requests"]["GET /v2/account"] == 3
    assert state["faults_injected"] == {"rate_limit": 2}


def test_server_error_is_500_with_alpacas_error_body(simulator):
    """B2, B8: a 5xx with a JSON body; alpaca-py raises APIError with its code."""
    faults(simulator.url, {"endpoint": "GET /v2/positions", "kind": "server_error", "times": 1})
    error = api_error(client(simulator.url).get_all_positions)
    assert (error.status_code, error.code) == (500, 50010000)


def test_server_error_status_can_be_a_504(simulator):
    """B5: alpaca-py would resend a 504 on its own, POST included; with its retries off the
    adapter sees it."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "server_error", "status": 504, "times": 1})
    error = api_error(buy, client(simulator.url), "gateway-timeout-1")
    assert error.status_code == 504
    assert sim_state(simulator.url)["submissions"][0]["outcome"] == "not processed"


def test_maintenance_is_503_with_retry_after(simulator):
    """B8: a maintenance window says when to come back."""
    faults(simulator.url, {"endpoint": "*", "kind": "maintenance", "retry_after": 30, "times": 1})
    error = api_error(client(simulator.url).get_clock)
    assert (error.status_code, error.code) == (503, 50310000)
    assert response_headers(error)["Retry-After"] == "30"


def test_bad_gateway_html_is_not_json(simulator):
    """B8: a gateway's HTML 502 page; alpaca-py's APIError.code then fails to parse it."""
    faults(simulator.url, {"endpoint": "GET /v2/account", "kind": "bad_gateway_html", "times": 1})
    error = api_error(client(simulator.url).get_account)
    assert error.status_code == 502
    assert response_headers(error)["Content-Type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in str(error)
    with pytest.raises(json.JSONDecodeError):
        _ = error.code


def test_drop_response_places_the_order_and_loses_the_acknowledgement(simulator):
    """B5: the order is accepted and filled, the answer never arrives; the order is found by
    its client order id, and sending it again is refused as a duplicate."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "drop_response", "times": 1})
    broker = client(simulator.url)
    with pytest.raises(requests.exceptions.ConnectionError):
        buy(broker, "lost-ack-1", qty=3)
    found = broker.get_order_by_client_id("lost-ack-1")
    assert (found.status, found.filled_qty) == (OrderStatus.FILLED, "3")
    assert api_error(buy, broker, "lost-ack-1", 3).message == "client_order_id must be unique"
    assert broker.get_open_position("TECL").qty == "3"
    attempts = [(s["outcome"], s["fault"]) for s in sim_state(simulator.url)["submissions"]]
    assert attempts == [
        ("filled", "drop_response"),
        ("rejected: client_order_id must be unique", None),
    ]


def test_error_body_on_market_data_is_not_data(simulator):
    """X4: alpaca-py finds no "bars" key in {"code", "message"} and raises a bare ValueError."""
    faults(simulator.url, {"endpoint": "GET /v2/stocks/bars", "kind": "error_body", "times": 1})
    request = StockBarsRequest(
        symbol_or_symbols="SPY",
        timeframe=DAILY,
        adjustment=Adjustment.ALL,
    )
    with pytest.raises(ValueError, match="does not match any known keys"):
        data_client(simulator.url).get_stock_bars(request)


def test_error_body_under_200_does_not_parse_as_success(simulator):
    """X4: 200 with {"code", "message"}: alpaca-py's models refuse it; nothing was placed."""
    faults(simulator.url, {"endpoint": "*", "kind": "error_body", "times": 2})
    broker = client(simulator.url)
    with pytest.raises(ValidationError):
        broker.get_account()
    with pytest.raises(ValidationError):
        buy(broker, "error-body-1")
    state = sim_state(simulator.url)
    assert state["orders"] == []
    assert state["submissions"][0]["fault"] == "error_body"
    raw = requests.get(
        f"{simulator.url}/v2/account",
        headers={"APCA-API-KEY-ID": "sim-key", "APCA-API-SECRET-KEY": "sim-secret"},
        timeout=5,
    )
    assert raw.status_code == 200 and "account_number" in raw.json()  # times: 2 used up


@pytest.mark.parametrize(
    "call",
    [
        lambda url: client(url).get_account(),
        lambda url: client(url).get_clock(),
        lambda url: client(url).get_asset("TECL"),
        lambda url: client(url).get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)),
        lambda url: client(url).get_all_positions(),
        lambda url: client(url).get_open_position("TECL"),
        lambda url: client(url).get_calendar(),
        lambda url: client(url).cancel_orders(),
        lambda url: data_client(url).get_stock_latest_trade(
            StockLatestTradeRequest(symbol_or_symbols="SPY")
        ),
        lambda url: data_client(url).get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols="SPY",
                timeframe=DAILY,
                adjustment=Adjustment.ALL,
            )
        ),
    ],
    ids=[
        "account",
        "clock",
        "asset",
        "orders",
        "positions",
        "position",
        "calendar",
        "cancel_all",
        "latest_trade",
        "bars",
    ],
)
def test_malformed_bodies_fail_alpaca_pys_models(simulator, call):
    """B3: renamed fields (a schema change) never parse into the documented models. alpaca-py
    raises pydantic's ValidationError, or a bare ValueError when a market data answer lacks
    its top-level key; both are ValueErrors."""
    broker = client(simulator.url)
    buy(broker, "malformed-filled")
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    buy(broker, "malformed-open", qty=1)  # empty lists have no shape to get wrong
    faults(simulator.url, {"endpoint": "*", "kind": "malformed"})
    with pytest.raises(ValueError):
        call(simulator.url)
    assert sim_state(simulator.url)["faults_injected"] == {"malformed": 1}


def test_malformed_answer_to_a_submit_still_placed_the_order(simulator):
    """B3, B5: the broker acted; only its answer is unreadable."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "malformed", "times": 1})
    broker = client(simulator.url)
    with pytest.raises(ValidationError):
        buy(broker, "malformed-1")
    assert broker.get_order_by_client_id("malformed-1").status is OrderStatus.FILLED


def test_unauthorized_is_401_with_valid_credentials(simulator):
    """B4: the broker refuses a key that is still configured (expired session); once."""
    faults(simulator.url, {"endpoint": "GET /v2/account", "kind": "unauthorized", "times": 1})
    broker = client(simulator.url)
    error = api_error(broker.get_account)
    assert (error.status_code, error.code, error.message) == (
        401,
        40110000,
        "request is not authorized",
    )
    assert broker.get_account().status.value == "ACTIVE"


def _scenario(url: str) -> list[str]:
    """A fixed sequence of calls; each outcome is recorded, whatever the faults do."""
    broker = client(url)
    calls = [
        broker.get_account,
        broker.get_clock,
        lambda: broker.get_asset("TECL"),
        broker.get_all_positions,
        broker.get_orders,
    ]
    outcomes = []
    for i in range(30):
        try:
            calls[i % len(calls)]()
            outcomes.append("ok")
        except APIError as exc:
            outcomes.append(str(exc.status_code))
        except ValidationError:
            outcomes.append("invalid")
    return outcomes


@pytest.mark.parametrize("seed", [11, 2026])
def test_the_same_seed_replays_the_same_faults_over_http(simulator, seed):
    """R2: the same plan and seed over the same requests inject the same faults in the same
    places; reset and replay gives an identical record."""
    plan = [
        {"endpoint": "GET /v2/account", "kind": "rate_limit", "probability": 0.5},
        {"endpoint": "GET *", "kind": "server_error", "probability": 0.2},
        {"endpoint": "*", "kind": "error_body", "probability": 0.1},
    ]
    runs = []
    for _ in range(2):
        sim_admin(simulator.url, "/_sim/reset", {})
        faults(simulator.url, *plan, seed=seed)
        outcomes = _scenario(simulator.url)
        state = sim_state(simulator.url)
        runs.append((outcomes, state["fault_plan"]["log"], state["faults_injected"]))
    assert runs[0] == runs[1]
    assert set(runs[0][0]) - {"ok"}  # some faults did happen


def test_injections_are_counted_per_kind_and_admin_is_never_faulted(simulator):
    faults(
        simulator.url,
        {"endpoint": "GET /v2/clock", "kind": "server_error", "times": 2},
        {"endpoint": "GET /v2/account", "kind": "unauthorized", "times": 1},
        {"endpoint": "*", "kind": "maintenance", "after": 5},
    )
    broker = client(simulator.url)
    for call in (broker.get_clock, broker.get_clock, broker.get_account, broker.get_clock):
        with contextlib.suppress(APIError):
            call()
    state = sim_state(simulator.url)  # an admin call with a "*" rule active: never faulted
    assert state["faults_injected"] == {"server_error": 2, "unauthorized": 1}
    assert state["requests"] == {"GET /v2/clock": 3, "GET /v2/account": 1}
    sim_admin(simulator.url, "/_sim/faults", method="DELETE")
    for _ in range(6):
        broker.get_clock()
    assert sim_state(simulator.url)["faults_injected"] == {"server_error": 2, "unauthorized": 1}
