"""The broker's value types at their edges: money rounded to the cent (C3), an order's
notional before any fill, the cash buys may spend on any account, credentials that would be
sent with stray whitespace, and a retry schedule asked for an attempt that cannot exist."""

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.trading.credentials import Credentials
from tecl_pipeline.trading.models import Account, Order, OrderSide, OrderStatus, Position


def order(**changes) -> Order:
    fields = {
        "id": "o-1",
        "client_order_id": "c-1",
        "symbol": "TECL",
        "side": OrderSide.BUY,
        "qty": Decimal("3"),
        "filled_qty": Decimal("0"),
        "filled_avg_price": None,
        "status": OrderStatus.NEW,
        "submitted_at": datetime(2026, 11, 24, 20, 45, tzinfo=UTC),
    }
    return Order(**{**fields, **changes})


def test_an_unfilled_order_has_no_notional_and_a_filled_one_is_rounded_to_the_cent():
    assert order().filled_notional == Decimal("0")
    filled = order(
        filled_qty=Decimal("1.5"), filled_avg_price=Decimal("33.333"), status=OrderStatus.FILLED
    )
    assert filled.filled_notional == Decimal("50.00")
    assert filled.newer_than(order()) and not order().newer_than(filled)


def test_a_positions_market_value_is_rounded_to_the_cent():
    held = Position(
        symbol="BIL", qty=Decimal("0.333"), avg_entry_price=Decimal(90), current_price=Decimal(91)
    )
    assert held.market_value == Decimal("30.30")


@pytest.mark.parametrize(
    ("cash", "buying_power", "own", "available"),
    [
        ("100000", "100000", "100000", "100000"),  # a cash account
        ("100000", "200000", "100000", "100000"),  # margin: twice the equity, not spent
        ("100000", "200000", None, "100000"),  # a broker that omits the own-cash figure
        ("100000", "200000", "40000", "40000"),  # open buys hold 60,000 of the cash
        ("100000", "30000", "100000", "30000"),  # the broker allows less than the cash
        ("-5000", "195000", "0", "0"),  # already borrowed: nothing to buy with
    ],
)
def test_buys_may_spend_the_accounts_own_cash_never_margin(cash, buying_power, own, available):
    account = Account(
        account_number="PA1",
        currency="USD",
        cash=Decimal(cash),
        equity=Decimal("100000"),
        buying_power=Decimal(buying_power),
        non_marginable_buying_power=None if own is None else Decimal(own),
    )
    assert account.cash_to_buy_with == Decimal(available)


@pytest.mark.parametrize("field", ["key_id", "secret_key"])
def test_credentials_with_stray_whitespace_are_refused_without_echoing_them(field):
    """B4, S2: a pasted secret with a trailing newline fails here, by name, not later as a
    refused key; the message never contains the value."""
    values = {"key_id": "PKTEST", "secret_key": "s3cr3t-value"}
    values[field] = values[field] + "\n"
    with pytest.raises(ValueError, match=f"Credentials.{field} has leading or trailing") as caught:
        Credentials(**values)
    assert "s3cr3t" not in str(caught.value) and "PKTEST" not in str(caught.value)


def test_backoff_attempts_start_at_one(seed):
    with pytest.raises(ValueError, match="attempt numbers start at 1, got 0"):
        RetryPolicy().backoff(0, random.Random(seed))
