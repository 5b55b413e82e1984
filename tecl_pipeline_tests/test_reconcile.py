"""Reconciliation: corporate actions are recognised, price disagreements refused (X2, D4)."""

from datetime import UTC, datetime
from decimal import Decimal

from tecl_pipeline.broker.models import Order, OrderSide, OrderStatus, Position
from tecl_pipeline.reconcile import price_disagreements, unexplained_position_changes

D = Decimal


def fill(symbol: str, side: OrderSide, qty: str) -> Order:
    return Order(
        id=f"{symbol}-{side}",
        client_order_id=f"c-{symbol}-{side}",
        symbol=symbol,
        side=side,
        qty=D(qty),
        filled_qty=D(qty),
        filled_avg_price=D("10"),
        status=OrderStatus.FILLED,
        submitted_at=datetime(2026, 11, 24, 20, 45, tzinfo=UTC),
    )


def test_fills_explain_position_changes():
    previous = {"TECL": D("10"), "BIL": D("5")}
    fills = [fill("TECL", OrderSide.SELL, "10"), fill("UVXY", OrderSide.BUY, "3.5")]
    current = {"BIL": D("5"), "UVXY": D("3.5")}
    assert unexplained_position_changes(previous, fills, current) == []


def test_a_split_is_a_change_no_order_explains():
    """X2: 2-for-1 on TECL with no order: reported, with the ratio."""
    [change] = unexplained_position_changes({"TECL": D("10")}, [], {"TECL": D("20")})
    assert (change.symbol, change.expected, change.actual) == ("TECL", D("10"), D("20"))
    assert "x2" in str(change)


def test_a_position_that_vanished_or_appeared_is_reported():
    """D4: journal and broker disagree in both directions; each symbol is named."""
    changes = unexplained_position_changes({"TECL": D("10")}, [], {"SQQQ": D("4")})
    assert {c.symbol for c in changes} == {"TECL", "SQQQ"}


def test_sub_quantum_differences_are_not_changes():
    assert unexplained_position_changes({"TECL": D("1.0000000001")}, [], {"TECL": D("1")}) == []


def position(symbol: str, price: str) -> Position:
    return Position(symbol=symbol, qty=D("1"), avg_entry_price=D(price), current_price=D(price))


def test_prices_far_apart_are_named():
    """X2/T4: a broker price half the decision price (an unadjusted split) is flagged."""
    problems = price_disagreements(
        {"TECL": D("868.46"), "BIL": D("91.50")},
        {"TECL": position("TECL", "434.23"), "BIL": position("BIL", "91.52")},
    )
    assert len(problems) == 1 and problems[0].startswith("TECL")


def test_prices_within_tolerance_pass():
    assert price_disagreements({"TECL": D("100")}, {"TECL": position("TECL", "104.99")}) == []
