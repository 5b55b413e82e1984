"""Reconciliation: corporate actions are recognised, price disagreements refused (X2, D4)."""

from datetime import UTC, date, datetime
from decimal import Decimal

from tecl_pipeline.core.portfolio import PlannedOrder, RebalancePlan
from tecl_pipeline.trading.models import Account, Order, OrderSide, OrderStatus
from tecl_pipeline.trading.reconcile import (
    post_trade_problems,
    pre_trade_problems,
    price_disagreements,
    unexplained_position_changes,
)

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


SESSION = date(2026, 11, 24)
TOLERANCE = D("0.05")


def test_prices_far_apart_are_named_with_both_prices_the_gap_and_the_date():
    """X2/T4: a broker price half the decision price (an unadjusted split) is flagged."""
    problems = price_disagreements(
        {"TECL": D("868.46"), "BIL": D("91.50")},
        {"TECL": D("434.23"), "BIL": D("91.52")},
        SESSION,
        TOLERANCE,
    )
    assert len(problems) == 1 and problems[0].startswith("TECL")
    for part in ("868.46", "434.23", "+100.00%", "2026-11-24"):
        assert part in problems[0]


def test_prices_within_tolerance_pass_and_the_edge_is_strict():
    assert price_disagreements({"TECL": D("100")}, {"TECL": D("104.99")}, SESSION, TOLERANCE) == []
    assert price_disagreements({"TECL": D("105")}, {"TECL": D("100")}, SESSION, TOLERANCE) == []
    assert price_disagreements({"TECL": D("105.01")}, {"TECL": D("100")}, SESSION, TOLERANCE)


def test_an_unquoted_symbol_is_a_problem_only_when_the_plan_trades_it():
    """A symbol the decision only read may lack a quote; one the plan trades may not."""
    decided = {"KMLM": D("25"), "UVXY": D("40")}
    assert price_disagreements(decided, {}, SESSION, TOLERANCE) == []
    [problem] = price_disagreements(decided, {}, SESSION, TOLERANCE, required=["UVXY"])
    assert problem.startswith("UVXY") and "no price" in problem


def order(cid: str, status: OrderStatus, filled: str = "10") -> Order:
    return fill("TECL", OrderSide.BUY, "10").model_copy(
        update={"client_order_id": cid, "status": status, "filled_qty": D(filled)}
    )


def test_post_trade_reconciled_when_at_target_and_all_orders_final():
    orders = [order("a-1", OrderStatus.FILLED), order("b-1", OrderStatus.CANCELED, "0")]
    assert (
        post_trade_problems(
            {"TECL": D("10")}, {"TECL": D("10")}, {"TECL": D("50")}, orders, min_trade_notional=D(1)
        )
        == []
    )


def test_post_trade_problems_name_residual_open_order_and_duplicate_id():
    """D4/B6/X3: a shortfall worth more than a dollar, a working order and a reused id."""
    orders = [
        order("a-1", OrderStatus.PARTIALLY_FILLED, "6"),
        order("b-1", OrderStatus.FILLED),
        order("b-1", OrderStatus.FILLED),
    ]
    problems = post_trade_problems(
        {"TECL": D("10")}, {"TECL": D("6")}, {"TECL": D("50")}, orders, min_trade_notional=D(1)
    )
    assert any(p.startswith("TECL: holds 6, target 10 (200.00") for p in problems)
    assert "order a-1 is still partially_filled" in problems
    assert "client order id b-1 was used 2 times" in problems


def test_a_margin_loan_after_trading_is_a_post_trade_problem():
    """B7: whatever made the cash negative (a buy that filled above its decision price on a
    margin account), the session does not end clean while the account owes its broker."""
    at_target = ({"TECL": D("10")}, {"TECL": D("10")}, {"TECL": D("50")}, [])
    [loan] = post_trade_problems(*at_target, min_trade_notional=D(1), cash=D("-0.01"))
    assert loan.startswith("cash is -0.01: the account owes its broker (a margin loan)")
    assert post_trade_problems(*at_target, min_trade_notional=D(1), cash=D(0)) == []


def test_sub_dollar_residual_is_within_tolerance():
    assert (
        post_trade_problems(
            {"TECL": D("10")}, {"TECL": D("9.99")}, {"TECL": D("50")}, [], min_trade_notional=D(1)
        )
        == []
    )


def account(currency: str = "USD", cash: str = "1000", blocked: bool = False) -> Account:
    return Account(
        account_number="PA1",
        currency=currency,
        cash=D(cash),
        equity=D(cash),
        buying_power=D(cash),
        trading_blocked=blocked,
    )


def plan(buy_qty: str, sell_qty: str = "0") -> RebalancePlan:
    sells = (PlannedOrder("BIL", "sell", D(sell_qty), D("100")),) if D(sell_qty) else ()
    buys = (PlannedOrder("TECL", "buy", D(buy_qty), D("100")),)
    return RebalancePlan(targets={"TECL": D(buy_qty)}, sells=sells, buys=buys)


def test_pre_trade_ready_for_a_funded_usd_plan():
    """B7: buys funded by cash plus the planned sells are fine."""
    assert pre_trade_problems(account(cash="500"), plan("9", sell_qty="5")) == []


def test_pre_trade_problems_name_currency_block_and_funding():
    """X8/B7: a EUR account, a blocked account and an unfunded plan are each named."""
    problems = pre_trade_problems(account("EUR", cash="500", blocked=True), plan("9"))
    assert any("EUR" in p for p in problems)
    assert any("blocked" in p for p in problems)
    assert any("planned buys cost 900.00" in p for p in problems)
