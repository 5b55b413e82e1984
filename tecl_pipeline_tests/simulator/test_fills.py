"""Fill behaviours (immediate, partial, delayed, never) through the real TradingClient: what a
reconciliation loop sees while an order is worked, and how cash and positions follow."""

# The simulator fixtures are imported below; pytest injects them into tests by name.
# ruff: noqa: F811

import json
import urllib.error
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline_tests.simulator.simulator_fixtures import (  # noqa: F401 (fixtures)
    SIM_SESSION,
    amount,
    set_sim_clock,
    sim_admin,
    sim_calendar,
    sim_state,
    simulator,
    trading_client,
)
from tecl_pipeline_tests.simulator.simulator_fixtures import market_order as buy

CENT = Decimal("0.01")


def fills(simulator, mode: str, **extra) -> None:
    sim_admin(simulator.url, "/_sim/fills", {"mode": mode, **extra})


def test_partial_fills_advance_one_chunk_per_read_and_filled_qty_is_cumulative(simulator):
    """T6, B6: filled_qty only grows; each read of the order adds one chunk; cash and the
    position move with every chunk, never with the order as a whole."""
    fills(simulator, "partial", steps=3)
    client = trading_client(simulator.url)
    price = simulator.simulator.price("TECL")
    placed = buy(client, "TECL", 10, "partial-1")
    assert (placed.status, placed.filled_qty, placed.filled_avg_price) == (
        OrderStatus.NEW,
        "0",
        None,
    )
    seen = []
    for _ in range(4):
        current = client.get_order_by_id(placed.id)
        held = client.get_open_position("TECL").qty
        cash = amount(client.get_account().cash)
        seen.append((current.status, current.filled_qty, held, cash))
    spent = [Decimal("100000") - (q * price).quantize(CENT) for q in (3, 6, 10)]
    assert seen == [
        (OrderStatus.PARTIALLY_FILLED, "3", "3", spent[0]),
        (OrderStatus.PARTIALLY_FILLED, "6", "6", spent[1]),
        (OrderStatus.FILLED, "10", "10", spent[2]),
        (OrderStatus.FILLED, "10", "10", spent[2]),
    ]
    assert amount(client.get_order_by_id(placed.id).filled_avg_price) == price


def test_partial_fills_also_advance_through_the_order_list_and_client_id_lookups(simulator):
    fills(simulator, "partial", steps=2)
    client = trading_client(simulator.url)
    buy(client, "BIL", 1.5, "partial-frac")
    (listed,) = client.get_orders()
    assert (listed.status, listed.filled_qty) == (OrderStatus.PARTIALLY_FILLED, "0.75")
    final = client.get_order_by_client_id("partial-frac")
    assert (final.status, final.filled_qty) == (OrderStatus.FILLED, "1.5")


def test_state_reads_never_advance_a_fill(simulator):
    fills(simulator, "partial", steps=2)
    buy(trading_client(simulator.url), "TECL", 2, "partial-quiet")
    for _ in range(3):
        (entry,) = sim_state(simulator.url)["orders"]
        assert entry["filled_qty"] == "0"


def test_delayed_fill_stays_new_for_n_reads_then_fills(simulator):
    """B5: an order that is slow to fill is still open, not lost."""
    fills(simulator, "delayed", delay_polls=2)
    client = trading_client(simulator.url)
    placed = buy(client, "TECL", 5, "delayed-1")
    statuses = [client.get_order_by_id(placed.id).status for _ in range(3)]
    assert statuses == [OrderStatus.NEW, OrderStatus.NEW, OrderStatus.FILLED]
    assert client.get_open_position("TECL").qty == "5"


def test_never_fill_stays_open_until_cancelled(simulator):
    fills(simulator, "never")
    client = trading_client(simulator.url)
    placed = buy(client, "TECL", 5, "never-1")
    assert {client.get_order_by_id(placed.id).status for _ in range(5)} == {OrderStatus.NEW}
    client.cancel_order_by_id(placed.id)
    assert client.get_order_by_id(placed.id).status is OrderStatus.CANCELED
    assert client.get_all_positions() == []
    assert client.get_account().cash == "100000"


def test_each_order_keeps_the_fill_mode_it_was_sent_under(simulator):
    fills(simulator, "never")
    client = trading_client(simulator.url)
    stuck = buy(client, "TECL", 1, "mode-never")
    fills(simulator, "immediate")
    assert buy(client, "TECL", 1, "mode-immediate").status is OrderStatus.FILLED
    assert client.get_order_by_id(stuck.id).status is OrderStatus.NEW


def test_a_partially_filled_day_order_expires_at_the_close_keeping_its_fills(simulator):
    """T6, B6: the residual of a partial fill is left for reconciliation, not filled later."""
    fills(simulator, "partial", steps=4)
    client = trading_client(simulator.url)
    placed = buy(client, "TECL", 8, "partial-expire")
    client.get_order_by_id(placed.id)  # 2 of 8
    close = datetime(2026, 11, 24, 16, 1, tzinfo=EXCHANGE_TZ)
    set_sim_clock(simulator.url, close)
    final = client.get_order_by_id(placed.id)
    assert (final.status, final.filled_qty) == (OrderStatus.EXPIRED, "2")
    assert client.get_open_position("TECL").qty == "2"
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.client_order_id for o in closed] == ["partial-expire"]


def test_a_queued_order_works_in_partial_mode_once_the_session_opens(simulator):
    fills(simulator, "partial", steps=2)
    client = trading_client(simulator.url)
    set_sim_clock(simulator.url, datetime(2026, 11, 24, 20, tzinfo=EXCHANGE_TZ))
    placed = buy(client, "TECL", 4, "queued-partial")
    assert client.get_order_by_id(placed.id).status is OrderStatus.ACCEPTED
    set_sim_clock(simulator.url, datetime(2026, 11, 25, 10, tzinfo=EXCHANGE_TZ))
    assert client.get_order_by_id(placed.id).filled_qty == "2"
    assert client.get_order_by_id(placed.id).status is OrderStatus.FILLED


def test_partial_sells_credit_cash_per_chunk(simulator):
    client = trading_client(simulator.url)
    fills(simulator, "immediate")
    buy(client, "SPY", 4, "sell-setup")
    cash_after_buy = amount(client.get_account().cash)
    price = simulator.simulator.price("SPY")
    fills(simulator, "partial", steps=2)
    sold = buy(client, "SPY", 4, "sell-partial", side=OrderSide.SELL)
    client.get_order_by_id(sold.id)
    assert amount(client.get_account().cash) == cash_after_buy + (2 * price).quantize(CENT)
    assert client.get_open_position("SPY").qty == "2"
    client.get_order_by_id(sold.id)
    assert client.get_all_positions() == []
    assert SIM_SESSION.isoformat() in sim_state(simulator.url)["now"]


def _status(simulator, client_order_id: str, status: object) -> Any:
    return sim_admin(simulator.url, f"/_sim/orders/{client_order_id}/status", {"status": status})


def test_a_market_event_moves_an_open_order_to_any_status_and_it_stops_filling(simulator):
    """Alpaca's rarer statuses (held, suspended, done_for_day, ...) and one it does not
    document reach alpaca-py as the broker sends them; an order moved out of new and
    partially_filled fills no further, and can still be cancelled."""
    fills(simulator, "partial", steps=4)
    client = trading_client(simulator.url)
    placed = buy(client, "TECL", 8, "event-1")
    assert client.get_order_by_id(placed.id).filled_qty == "2"

    answer = _status(simulator, "event-1", "held")
    assert (answer["status"], answer["filled_qty"]) == ("held", "2")
    seen = [client.get_order_by_id(placed.id) for _ in range(3)]
    assert {(o.status, o.filled_qty) for o in seen} == {(OrderStatus.HELD, "2")}

    _status(simulator, "event-1", "frozen_for_review")
    listed = sim_state(simulator.url)["orders"]
    assert [o["status"] for o in listed] == ["frozen_for_review"]
    client.cancel_order_by_id(placed.id)
    assert sim_state(simulator.url)["orders"][0]["status"] == "canceled"
    assert client.get_open_position("TECL").qty == "2"


def test_a_market_event_is_refused_for_a_fill_a_final_order_or_a_bad_status(simulator):
    client = trading_client(simulator.url)
    fills(simulator, "never")
    buy(client, "TECL", 1, "event-open")
    fills(simulator, "immediate")
    buy(client, "TECL", 1, "event-filled")
    refused = {
        ("event-open", "filled"): "fills through /_sim/fills",
        ("event-open", "Held!"): "not in the form of partially_filled",
        ("event-open", None): 'order status needs {"status"',
        ("event-filled", "held"): "order event-filled is already filled",
        ("no-such-order", "held"): "no order with client order id 'no-such-order'",
    }
    for (client_order_id, status), reason in refused.items():
        with pytest.raises(urllib.error.HTTPError) as answer:
            _status(simulator, client_order_id, status)
        assert answer.value.code == 400
        assert reason in json.loads(answer.value.read())["error"]
    assert [o["status"] for o in sim_state(simulator.url)["orders"]] == ["new", "filled"]


# -- async: Alpaca's way, and the default ----------------------------------------------------------


def _life(client, placed) -> list[tuple[OrderStatus, str]]:
    """(status, filled_qty) at each read until the order is final (at most 10 reads)."""
    seen = []
    for _ in range(10):
        current = client.get_order_by_id(placed.id)
        seen.append((current.status, current.filled_qty))
        if current.status in (OrderStatus.FILLED, OrderStatus.CANCELED):
            break
    return seen


def test_an_order_is_accepted_with_nothing_filled_then_turns_new_then_fills(simulator):
    """B5/T6 as Alpaca does it: the POST's answer is `accepted` and nothing is filled; the
    first read finds it `new`; fills arrive over the next reads, the cumulative quantity
    only growing, and the position and cash follow each fill, never the order as a whole."""
    client = trading_client(simulator.url)
    placed = buy(client, "TECL", 10, "async-1")
    assert (placed.status, placed.filled_qty, placed.filled_avg_price) == (
        OrderStatus.ACCEPTED,
        "0",
        None,
    )
    assert client.get_all_positions() == []

    life = _life(client, placed)

    assert life[0] == (OrderStatus.NEW, "0")
    assert life[-1] == (OrderStatus.FILLED, "10")
    filled = [Decimal(qty) for _, qty in life]
    assert filled == sorted(filled)
    assert client.get_open_position("TECL").qty == "10"


def test_an_orders_way_to_its_fill_depends_only_on_its_client_order_id(simulator):
    """Seeded by the client order id: the same order fills the same way on a fresh account,
    and across ids the delays and the parts vary (some fill in one part, some in two)."""
    client = trading_client(simulator.url)
    lives = {cid: _life(client, buy(client, "SPY", 4, cid)) for cid in ("a-1", "a-2", "a-3", "a-4")}
    sim_admin(simulator.url, "/_sim/reset")
    again = _life(client, buy(client, "SPY", 4, "a-3"))

    assert again == lives["a-3"]
    assert len({len(life) for life in lives.values()}) > 1, lives
    assert any((OrderStatus.PARTIALLY_FILLED, "2") in life for life in lives.values()), lives


def test_a_cancel_passes_through_pending_cancel(simulator):
    """DELETE is answered at once; the order reads pending_cancel, then canceled, keeping
    what had filled."""
    client = trading_client(simulator.url)
    placed = buy(client, "TECL", 10, "async-cancel")
    client.get_order_by_id(placed.id)  # new

    client.cancel_order_by_id(placed.id)

    statuses = [client.get_order_by_id(placed.id).status for _ in range(3)]
    assert statuses == [OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED, OrderStatus.CANCELED]


def test_a_cancel_still_pending_at_the_close_ends_canceled_not_expired(simulator):
    client = trading_client(simulator.url)
    placed = buy(client, "TECL", 10, "async-late-cancel")
    client.cancel_order_by_id(placed.id)

    set_sim_clock(simulator.url, datetime(2026, 11, 24, 16, 5, tzinfo=EXCHANGE_TZ))

    closed = client.get_order_by_id(placed.id)
    assert closed.status is OrderStatus.CANCELED
    assert closed.canceled_at == datetime(2026, 11, 24, 16, tzinfo=EXCHANGE_TZ)
