"""The contract every simulator exchange is held to (`alpaca_contract`, checked by the
`simulator` fixture in every test that uses it): it agrees with alpaca-py's models, it is
really applied, and it catches what real Alpaca would not send or accept."""

from decimal import Decimal

import pytest
from alpaca.trading.enums import OrderStatus
from alpaca.trading.models import Asset, Clock, Order, Position, TradeAccount

from tecl_pipeline.simulator import SimulatorServer
from tecl_pipeline.simulator.server import Exchange
from tecl_pipeline_tests.simulator.alpaca_contract import (
    ACCOUNT,
    ASSET,
    CLOCK,
    ORDER,
    ORDER_STATUSES,
    POSITION,
    ContractRecorder,
    answer_problems,
    request_problems,
)
from tecl_pipeline_tests.simulator.simulator_fixtures import market_order, trading_client

pytestmark = pytest.mark.instant_fills


def test_the_order_statuses_are_alpaca_pys_both_ways():
    assert set(ORDER_STATUSES) == {status.value for status in OrderStatus}
    assert len(ORDER_STATUSES) == 18


@pytest.mark.parametrize(
    ("fields", "model"),
    [(ACCOUNT, TradeAccount), (CLOCK, Clock), (ASSET, Asset), (POSITION, Position), (ORDER, Order)],
    ids=["account", "clock", "asset", "position", "order"],
)
def test_every_documented_field_is_one_alpaca_py_knows(fields, model):
    known = set(model.model_fields) | {
        f.alias for f in model.model_fields.values() if f.alias is not None
    }
    assert set(fields) - known == set()


def test_the_simulator_fixture_checks_every_exchange(simulator):
    """The recorder is the fixture's own: a recorder on a second server of the same
    simulator sees each exchange and finds them all Alpaca's."""
    recorder = ContractRecorder()
    with SimulatorServer(simulator.simulator, observer=recorder).start() as server:
        client = trading_client(server.url)
        client.get_account()
        client.get_clock()
        market_order(client, "BIL", 3, "contract-1")
        client.get_all_positions()
        client.get_orders()
    assert recorder.exchanges >= 5
    assert recorder.problems == []


def _order_body(**changes) -> dict:
    body = {
        "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "client_order_id": "tecl-20261124-buy-TECL-1",
        "created_at": "2026-11-24T20:45:00Z",
        "updated_at": "2026-11-24T20:45:00Z",
        "submitted_at": "2026-11-24T20:45:00Z",
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "symbol": "TECL",
        "asset_class": "us_equity",
        "notional": None,
        "qty": "10",
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "",
        "order_type": "limit",
        "type": "limit",
        "side": "buy",
        "time_in_force": "day",
        "limit_price": "80.4",
        "stop_price": None,
        "status": "accepted",
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v != "<absent>"}


def test_a_right_order_answer_passes():
    assert answer_problems(Exchange("GET /v2/orders/{id}", {}, None, 200, _order_body())) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"status": "working"}, "status: 'working' is not one of"),
        ({"qty": 10}, "qty: 10 is not a decimal string"),
        ({"filled_qty": "<absent>"}, "lacks 'filled_qty'"),
        ({"created_at": "2026-11-24T15:45:00"}, "created_at: '2026-11-24T15:45:00' is not an RFC"),
        ({"side": "short"}, "side: 'short' is not one of buy, sell"),
    ],
)
def test_an_answer_real_alpaca_would_not_send_is_named(changes, problem):
    problems = answer_problems(
        Exchange("GET /v2/orders/{id}", {}, None, 200, _order_body(**changes))
    )
    assert any(problem in p for p in problems), problems


def test_a_simulator_failure_is_never_an_answer_alpacas_shape_excuses():
    failed = Exchange("GET /v2/account", {}, None, 500, {"code": 50010000, "message": "boom"})
    assert answer_problems(failed) == [
        "GET /v2/account answer (500): the simulator failed: {'code': 50010000, 'message': 'boom'}"
    ]


def test_an_error_answer_needs_code_and_message():
    assert answer_problems(Exchange("GET /v2/account", {}, None, 403, {"error": "no"})) == [
        "GET /v2/account answer (403): lacks 'code'",
        "GET /v2/account answer (403): lacks 'message'",
    ]


@pytest.mark.parametrize(
    ("endpoint", "query", "payload", "problem"),
    [
        ("GET /v2/orders", {"prefix": "tecl-"}, None, "parameter 'prefix' is not one Alpaca"),
        ("GET /v2/orders", {"limit": "1000"}, None, "limit: '1000' is not a limit from 1 to 500"),
        ("GET /v2/stocks/bars", {"feed": "nasdaq"}, None, "feed: 'nasdaq' is not one of"),
        (
            "POST /v2/orders",
            {},
            {
                "symbol": "TECL",
                "qty": "1",
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
                "tag": "x",
            },
            "field 'tag' is not one Alpaca accepts",
        ),
        (
            "POST /v2/orders",
            {},
            {"symbol": "TECL", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day"},
            "a limit order lacks limit_price",
        ),
        (
            "POST /v2/orders",
            {},
            {
                "symbol": "TECL",
                "qty": Decimal("1"),
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
                "limit_price": "80.4",
            },
            "a market order carries limit_price",
        ),
    ],
)
def test_a_request_real_alpaca_would_refuse_is_named_when_accepted(
    endpoint, query, payload, problem
):
    accepted = Exchange(endpoint, query, payload, 200, None)
    assert any(problem in p for p in request_problems(accepted)), request_problems(accepted)
    refused = Exchange(endpoint, query, payload, 422, {"code": 42210000, "message": "no"})
    assert request_problems(refused) == []
