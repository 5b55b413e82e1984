"""A session without a journal record (an interrupted run, a deleted or quarantined file) is
bridged by the broker's own order history (D4): its fills are no "position changed without an
order", the sessions without a record are named, and a real change is still reported."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BrokerSimulator
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.trading.models import Order, OrderSide, OrderStatus
from tecl_pipeline.trading.reconcile import fills_after_record, unexplained_position_changes

FIRST, SECOND, THIRD = date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24)


def _book(state_dir: Path) -> Path:
    return state_dir / "demo-broker" / "account.json"


def _add_cash(state_dir: Path, amount: Decimal) -> None:
    """A deposit between two sessions: the next session buys more, a real fill of its own."""
    calendar = TradingCalendar()
    moment = calendar.decision_time(SECOND)
    cash = Decimal(json.loads(_book(state_dir).read_text())["account"]["cash"])
    BrokerSimulator(
        DemoMarketData(calendar, now=lambda: moment),
        calendar,
        now=moment,
        book_path=_book(state_dir),
    ).set_account(cash=cash + amount)


def _pre_trade(result):
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "pre_trade_ready"]
    return check


def _target_metadata(result) -> dict:
    [materialization] = result.asset_materializations_for_node("target_allocation")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def _lose_the_second_record(state_dir: Path, how: str) -> None:
    journal = LocalJournal(state_dir / "journal")
    [record] = journal.records(SECOND)
    [path] = (state_dir / "journal" / "sessions" / SECOND.isoformat()).glob("*.json")
    assert record.orders and any(o.filled_qty for o in record.orders), (
        "the second session must have traded, or losing its record proves nothing"
    )
    if how == "deleted":
        path.unlink()
    else:
        path.write_text('{"session": "truncated')


def _two_sessions_then_lose_the_second(run_daily, state_dir: Path, how: str) -> None:
    assert run_daily(FIRST).success
    _add_cash(state_dir, Decimal("50000"))
    assert run_daily(SECOND).success
    _lose_the_second_record(state_dir, how)


@pytest.mark.parametrize("how", ["deleted", "quarantined"])
def test_a_missing_record_is_bridged_by_the_brokers_fills(run_daily, state_dir, how):
    """D4: the second session's record is gone; the third session reconciles from the first
    session's record plus every fill since, reports no position change, and names the
    session without a record in its metadata and check."""
    _two_sessions_then_lose_the_second(run_daily, state_dir, how)

    third = run_daily(THIRD)

    assert third.success
    check = _pre_trade(third)
    assert check.passed, check.description
    assert check.metadata["sessions_without_record"].value == SECOND.isoformat()
    assert third.asset_value("target_allocation").unexplained_changes == ()
    metadata = _target_metadata(third)
    assert metadata["sessions_without_record"] == SECOND.isoformat()
    assert metadata["previous_record"].startswith(FIRST.isoformat())
    if how == "quarantined":
        assert list((state_dir / "journal" / "quarantine").rglob("*.json"))


def test_a_real_change_is_still_reported_across_a_missing_record(run_daily, state_dir):
    """D4/X2: a position edited at the broker (no order at all) while a record is missing is
    still a difference, named with the journal-plus-fills quantity it should have been."""
    _two_sessions_then_lose_the_second(run_daily, state_dir, "deleted")
    book = json.loads(_book(state_dir).read_text())
    symbol, position = next(iter(book["positions"].items()))
    expected = Decimal(position["qty"])
    position["qty"] = str(expected + 1)
    _book(state_dir).write_text(json.dumps(book))

    third = run_daily(THIRD)

    check = _pre_trade(third)
    assert not check.passed and check.severity.value == "WARN"
    assert symbol in check.description and SECOND.isoformat() in check.description
    [change] = third.asset_value("target_allocation").unexplained_changes
    assert (change.symbol, change.expected, change.actual) == (symbol, expected, expected + 1)
    assert _target_metadata(third)["sessions_without_record"] == SECOND.isoformat()


def _order(cid: str, side: OrderSide, qty: str, filled: str) -> Order:
    return Order(
        id=cid,
        client_order_id=cid,
        symbol="TECL",
        side=side,
        qty=Decimal(qty),
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal("10"),
        status=OrderStatus.FILLED if qty == filled else OrderStatus.PARTIALLY_FILLED,
        submitted_at=datetime(2026, 11, 23, 20, 45, tzinfo=UTC),
    )


def test_fills_after_a_record_count_what_the_record_did_not_see():
    """D4: an order the record saw half-filled counts with the other half; an order of the
    record's session sent by a later run (no record of its own) and a later session's order
    count whole; the record's own fills are not counted twice."""
    buy = OrderSide.BUY
    recorded = [_order("tecl-20261123-buy-TECL-1", buy, "10", "4")]
    broker = [
        _order("tecl-20261123-buy-TECL-1", buy, "10", "10"),
        _order("tecl-20261123-buy-TECL-2", buy, "3", "3"),
        _order("tecl-20261124-sell-TECL-1", OrderSide.SELL, "5", "5"),
    ]

    fills = fills_after_record(recorded, broker)

    assert [(o.client_order_id, o.filled_qty) for o in fills] == [
        ("tecl-20261123-buy-TECL-1", Decimal("6")),
        ("tecl-20261123-buy-TECL-2", Decimal("3")),
        ("tecl-20261124-sell-TECL-1", Decimal("5")),
    ]
    held = {"TECL": Decimal("4") + 6 + 3 - 5}
    assert unexplained_position_changes({"TECL": Decimal("4")}, fills, held) == []
    [change] = unexplained_position_changes({"TECL": Decimal("4")}, broker, held)
    assert change.expected == Decimal("12")  # counting whole orders would double the 4
