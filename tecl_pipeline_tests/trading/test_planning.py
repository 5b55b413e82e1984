"""From target weights to orders (`plan_from_broker`, then `execute`), one specification
each: the plan comes from what the broker holds now, the cash reserve stays uninvested,
quantities and notionals are exact Decimals at the broker's precision, and an account,
price or risk problem refuses the plan before any order."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.core.errors import AccountError, MarketDataError, RiskLimitError
from tecl_pipeline.core.portfolio import PlannedOrder, RiskLimits
from tecl_pipeline.trading.execution import ExecutionPolicy, execute, plan_from_broker
from tecl_pipeline.trading.models import Asset, OrderRequest, OrderSide
from tecl_pipeline_tests.trading.fake_broker import FakeBroker
from tecl_pipeline_tests.trading.fake_time import FakeTime

SESSION = date(2026, 11, 24)
PRICES = {"TECL": Decimal("80"), "BIL": Decimal("91.50"), "UVXY": Decimal("20")}
ALL_TECL = {"TECL": Decimal(1)}
MIX = {"UVXY": Decimal("0.25"), "BIL": Decimal("0.75")}
POLICY = ExecutionPolicy(fill_timeout=10.0, poll_interval=1.0)


def broker_at_decision_time(
    calendar: TradingCalendar,
    holdings: dict[str, Decimal] | None = None,
    cash: Decimal = Decimal("100000"),
    prices: dict[str, Decimal] | None = None,
    currency: str = "USD",
) -> FakeBroker:
    return FakeBroker(
        prices=dict(prices or PRICES),
        now=calendar.decision_time(SESSION),
        cash=cash,
        holdings=holdings,
        calendar=calendar,
        currency=currency,
    )


def legs(orders: tuple[PlannedOrder, ...]) -> list[tuple[str, str, Decimal]]:
    return [(o.side, o.symbol, o.qty) for o in orders]


@pytest.fixture
def calendar(sim_calendar: TradingCalendar) -> TradingCalendar:
    return sim_calendar


def test_the_plan_comes_from_what_the_broker_holds_at_that_moment(calendar) -> None:
    """X3/A2: positions and cash are the broker's, read when planning: once another run's
    fill has moved the account, the same weights plan only what is still missing."""
    broker = broker_at_decision_time(calendar, {"BIL": Decimal(1000)}, cash=Decimal("500"))

    before = plan_from_broker(broker, ALL_TECL, PRICES, POLICY, session=SESSION)
    broker.place_as_another_run(
        OrderRequest(symbol="BIL", side=OrderSide.SELL, qty=Decimal(1000), client_order_id="x-1")
    )
    after = plan_from_broker(broker, ALL_TECL, PRICES, POLICY, session=SESSION)

    assert dict(before.held) == {"BIL": Decimal(1000)}
    assert legs(before.plan.sells) == [("sell", "BIL", Decimal(1000))]
    assert legs(before.plan.buys) == [("buy", "TECL", Decimal(1150))]
    assert after.plan.sells == () and legs(after.plan.buys) == [("buy", "TECL", Decimal(1150))]


def test_the_cash_reserve_is_kept_out_of_the_buys(calendar) -> None:
    """B7: with a 10% reserve the target is 90% of equity, and after trading the account
    still holds the reserve in cash."""
    broker = broker_at_decision_time(calendar)
    policy = ExecutionPolicy(cash_reserve=Decimal("0.10"), fill_timeout=10.0)

    snapshot = plan_from_broker(broker, ALL_TECL, PRICES, policy, session=SESSION)
    execute(broker, SESSION, ALL_TECL, PRICES, policy, FakeTime().pacing(), calendar=calendar)

    assert snapshot.plan.targets["TECL"] == Decimal(1125)
    assert broker.held == {"TECL": Decimal(1125)}
    assert broker.cash == Decimal("10000.00")


def test_quantities_and_notionals_are_exact_decimals_at_the_brokers_precision(
    calendar,
) -> None:
    """C3/T5: 100,000 dollars of a $3 fund is 33,333.333333333 shares (rounded down to the
    broker's nine places, never a float's 33333.333333333332), worth $100,000.00 to the
    cent; a fund that is not fractionable gets whole shares."""
    prices = {**PRICES, "TECL": Decimal("3")}
    fractional = broker_at_decision_time(calendar, prices=prices)
    whole = broker_at_decision_time(calendar, prices=prices)
    whole.assets["TECL"] = Asset(symbol="TECL", tradable=True, fractionable=False)

    [buy] = plan_from_broker(fractional, ALL_TECL, prices, POLICY, session=SESSION).plan.buys
    [whole_buy] = plan_from_broker(whole, ALL_TECL, prices, POLICY, session=SESSION).plan.buys
    execute(fractional, SESSION, ALL_TECL, prices, POLICY, FakeTime().pacing(), calendar=calendar)

    assert buy.qty == Decimal("33333.333333333") and buy.qty.as_tuple().exponent == -9
    assert buy.notional == Decimal("100000.00") and buy.notional.as_tuple().exponent == -2
    assert whole_buy.qty == Decimal(33333)
    [sent] = fractional.submitted
    assert isinstance(sent.qty, Decimal) and sent.qty == buy.qty
    assert fractional.cash == Decimal("0.00")


def test_an_account_not_in_dollars_is_refused_before_positions_are_read(calendar) -> None:
    """X8: the currency is checked before the positions are read; nothing is planned or sent."""
    broker = broker_at_decision_time(calendar, currency="EUR")

    with pytest.raises(AccountError, match="EUR"):
        execute(broker, SESSION, ALL_TECL, PRICES, POLICY, FakeTime().pacing(), calendar=calendar)

    methods = [c.method for c in broker.calls]
    assert "get_account" in methods
    assert "get_positions" not in methods and "submit_order" not in methods


def test_risk_limits_refuse_the_plan_before_any_order(calendar) -> None:
    """T9: the kill switch, or an order above the notional limit, refuses the whole plan,
    naming why, and the broker receives nothing."""
    broker = broker_at_decision_time(calendar, {"BIL": Decimal(1000)})

    for limits, why in (
        (RiskLimits(kill_switch=True), "kill"),
        (RiskLimits(max_order_notional=Decimal("50000")), "TECL"),
    ):
        policy = ExecutionPolicy(risk=limits)
        with pytest.raises(RiskLimitError, match=why):
            execute(broker, SESSION, ALL_TECL, PRICES, policy, FakeTime().pacing())

    assert broker.submitted == []


def test_a_decision_price_the_broker_does_not_confirm_refuses_orders(calendar) -> None:
    """T4/X2: the decision priced TECL at $80, the broker's latest trade is $160 (a split
    the data missed, or stale data): the plan names the symbol and no order is sent."""
    broker = broker_at_decision_time(calendar, prices={**PRICES, "TECL": Decimal("160")})

    snapshot = plan_from_broker(broker, ALL_TECL, PRICES, POLICY, session=SESSION)
    with pytest.raises(MarketDataError, match="TECL"):
        execute(broker, SESSION, ALL_TECL, PRICES, POLICY, FakeTime().pacing(), calendar=calendar)

    [problem] = snapshot.price_problems
    assert "TECL" in problem
    assert broker.submitted == []


def test_a_symbol_the_broker_will_not_trade_gets_no_order_and_a_reason(calendar) -> None:
    """T7: tradability is the broker's answer, read before ordering."""
    broker = broker_at_decision_time(calendar)
    broker.assets["UVXY"] = Asset(symbol="UVXY", tradable=False, fractionable=True)

    report = execute(broker, SESSION, MIX, PRICES, POLICY, FakeTime().pacing(), calendar=calendar)

    assert [o.symbol for o in report.sent] == ["BIL"]
    assert ("UVXY", "asset is not tradable at the broker") in report.skipped
    assert [r.symbol for r in broker.submitted] == ["BIL"]


@pytest.mark.parametrize(
    ("symbol", "minutes_old"),
    [("TECL", 21), ("BIL", 45)],
    ids=["a symbol bought", "a symbol held and sold"],
)
def test_a_decision_price_older_than_the_policy_allows_refuses_orders(
    calendar, symbol, minutes_old
) -> None:
    """T1: the broker's latest trade confirms a decision price only if it is recent by the
    broker's own clock: a halted symbol or a feed that stopped leaves an old trade, and a
    price as old as that is no decision price to size an order on. Refused before any
    order, naming the symbol, its feed, its age and the limit."""
    broker = broker_at_decision_time(calendar, holdings={"BIL": Decimal(100)})
    now = calendar.decision_time(SESSION)
    broker.trade_times[symbol] = now - timedelta(minutes=minutes_old)

    snapshot = plan_from_broker(broker, ALL_TECL, PRICES, POLICY, session=SESSION)
    with pytest.raises(MarketDataError, match=f"{symbol}: its latest trade on feed fake is"):
        execute(broker, SESSION, ALL_TECL, PRICES, POLICY, FakeTime().pacing(), calendar=calendar)

    [problem] = snapshot.price_problems
    assert problem.startswith(f"{symbol}: its latest trade on feed fake is {minutes_old}.0 min old")
    assert "more than the 20.0 min a decision price for 2026-11-24 may be" in problem
    assert snapshot.quoted_at == now
    assert snapshot.quotes[symbol].at == now - timedelta(minutes=minutes_old)
    assert broker.submitted == []


def test_an_old_trade_of_a_symbol_the_decision_only_read_refuses_nothing(calendar) -> None:
    """A signal-only symbol may trade rarely on the feed (a small fund on IEX): its age is
    shown with its trade, its price still checked, but no order is sized on it."""
    prices = {**PRICES, "KMLM": Decimal("30")}
    broker = broker_at_decision_time(calendar, prices=prices)
    now = calendar.decision_time(SESSION)
    broker.trade_times["KMLM"] = now - timedelta(minutes=90)

    snapshot = plan_from_broker(
        broker, ALL_TECL, PRICES, POLICY, session=SESSION, read_prices={"KMLM": Decimal("30")}
    )

    assert snapshot.price_problems == ()
    assert snapshot.quotes["KMLM"].age(now) == timedelta(minutes=90)


def test_after_the_close_prices_are_judged_at_the_close(calendar) -> None:
    """A plan made after the session's close (`tecl doctor` in the evening) is judged on the
    session's last trades, not on the hours since: with the calendar, age is measured at
    the close."""
    close = calendar.close_time(SESSION)
    broker = broker_at_decision_time(calendar)
    broker.set_clock(close + timedelta(hours=5))
    broker.trade_times["TECL"] = close - timedelta(minutes=1)

    evening = plan_from_broker(broker, ALL_TECL, PRICES, POLICY, session=SESSION, calendar=calendar)
    broker.trade_times["TECL"] = close - timedelta(minutes=30)
    stale = plan_from_broker(broker, ALL_TECL, PRICES, POLICY, session=SESSION, calendar=calendar)

    assert evening.price_problems == ()
    [problem] = stale.price_problems
    assert "TECL: its latest trade on feed fake is 30.0 min old" in problem


def test_the_price_age_limit_is_the_policys(calendar) -> None:
    """A 15-minute-old trade (the delayed SIP feed's) passes the default 20 minutes and is
    refused under a policy of 10."""
    broker = broker_at_decision_time(calendar)
    broker.trade_times["TECL"] = calendar.decision_time(SESSION) - timedelta(minutes=15)

    default = plan_from_broker(broker, ALL_TECL, PRICES, POLICY, session=SESSION)
    strict = plan_from_broker(
        broker,
        ALL_TECL,
        PRICES,
        ExecutionPolicy(max_price_age=timedelta(minutes=10)),
        session=SESSION,
    )

    assert default.price_problems == ()
    [problem] = strict.price_problems
    assert "15.0 min old" in problem and "more than the 10.0 min" in problem
