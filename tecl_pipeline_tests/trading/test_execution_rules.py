"""The execution rules of `trading.execution`, one specification each, on the in-memory
broker: sells before buys, one order per leg under deterministic ids, a lost answer looked
up rather than resent, the broker's clock read before every order, no reversal of the
session, no order once another run traded, fills followed and residuals left for the next
run. The same rules over HTTP against the simulator: test_execution_over_http.py."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import cast

import pytest

from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar
from tecl_pipeline.core.errors import SessionReversalError, TradingWindowError
from tecl_pipeline.trading.broker import Broker
from tecl_pipeline.trading.errors import OutcomeUnknownError
from tecl_pipeline.trading.execution import ExecutionPolicy, ExecutionReport, execute, leg_prefix
from tecl_pipeline.trading.models import Asset, OrderRequest, OrderSide, OrderStatus
from tecl_pipeline.trading.reconcile import residuals
from tecl_pipeline_tests.trading.fake_broker import (
    INSTANT,
    NEVER,
    FakeBroker,
    delayed,
    partial,
)
from tecl_pipeline_tests.trading.fake_time import FakeTime

SESSION = date(2026, 11, 24)
PRICES = {"TECL": Decimal("80"), "BIL": Decimal("91.50"), "UVXY": Decimal("20")}
ALL_TECL = {"TECL": Decimal(1)}
MIX = {"UVXY": Decimal("0.25"), "BIL": Decimal("0.75")}
FAST = ExecutionPolicy(fill_timeout=10.0, poll_interval=1.0)
WHOLE_TECL = {"TECL": Asset(symbol="TECL", tradable=True, fractionable=False)}


def cid(side: OrderSide, symbol: str, attempt: int = 1) -> str:
    return f"{leg_prefix(SESSION, side, symbol)}{attempt}"


def broker_at_decision_time(
    calendar: TradingCalendar,
    holdings: dict[str, Decimal] | None = None,
    cash: Decimal = Decimal("100000"),
    assets: dict[str, Asset] | None = None,
) -> FakeBroker:
    return FakeBroker(
        prices=dict(PRICES),
        now=calendar.decision_time(SESSION),
        cash=cash,
        holdings=holdings or {},
        calendar=calendar,
        assets=assets or {},
    )


def trade(
    broker: FakeBroker,
    calendar: TradingCalendar,
    weights: dict[str, Decimal],
    policy: ExecutionPolicy = FAST,
    time: FakeTime | None = None,
) -> ExecutionReport:
    pacing = (time or FakeTime()).pacing()
    return execute(broker, SESSION, weights, PRICES, policy, pacing, calendar=calendar)


def another_run_sends(broker: FakeBroker, side: OrderSide, symbol: str, qty: str) -> None:
    broker.place_as_another_run(
        OrderRequest(symbol=symbol, side=side, qty=Decimal(qty), client_order_id=cid(side, symbol))
    )


@pytest.fixture
def calendar(sim_calendar: TradingCalendar) -> TradingCalendar:
    return sim_calendar


def test_sells_fill_before_the_buys_are_sized_from_the_buying_power_left(calendar) -> None:
    """B7: the sell is followed until filled; only then is the buying power read and the buy
    sized to it, so the buy never costs more than the broker says is available."""
    broker = broker_at_decision_time(calendar, {"BIL": Decimal(1000)}, cash=Decimal("500"))
    broker.fills = delayed(2)
    at_the_buy: list[tuple[OrderStatus, Decimal]] = []
    broker.before("submit_order", lambda b: at_the_buy.append((b.orders[0].status, b.cash)), 2)

    report = trade(broker, calendar, ALL_TECL)

    assert [r.side for r in broker.submitted] == [OrderSide.SELL, OrderSide.BUY]
    assert at_the_buy == [(OrderStatus.FILLED, Decimal("92000.00"))]
    methods = [call.method for call in broker.calls]
    sell_at, buy_at = [i for i, m in enumerate(methods) if m == "submit_order"]
    assert "get_account" in methods[sell_at:buy_at]
    [sold, bought] = report.sent
    assert (sold.filled_qty, bought.filled_qty) == (Decimal(1000), Decimal(1150))
    assert bought.filled_notional <= Decimal("92000.00")
    assert broker.cash >= 0 and broker.held == {"TECL": Decimal(1150)}


def test_each_leg_is_one_order_under_its_deterministic_client_order_id(calendar) -> None:
    """X3/C2: leg (session, side, symbol), attempt 1; a second run of the session finds the
    target reached and sends nothing."""
    broker = broker_at_decision_time(calendar, {"TECL": Decimal(1000)}, cash=Decimal("20000"))

    first = trade(broker, calendar, MIX)
    second = trade(broker, calendar, MIX)

    assert [o.client_order_id for o in first.sent] == [
        "tecl-20261124-sell-TECL-1",
        "tecl-20261124-buy-BIL-1",
        "tecl-20261124-buy-UVXY-1",
    ]
    assert second.sent == ()
    assert len(broker.submitted) == 3


def test_the_broker_clock_is_read_before_every_order(calendar) -> None:
    """T2/T3: once at the start, once to age the latest trades (T1), then again right
    before each order is sent."""
    broker = broker_at_decision_time(calendar, {"TECL": Decimal(1000)}, cash=Decimal("20000"))

    trade(broker, calendar, MIX)

    methods = [call.method for call in broker.calls]
    sends = [i for i, m in enumerate(methods) if m == "submit_order"]
    assert methods.count("get_clock") == 2 + len(sends) == 5
    assert methods.index("latest_trades") < methods.index("get_clock", 1)
    for previous, send in zip([0, *sends], sends, strict=False):
        assert "get_clock" in methods[previous + 1 : send]


def test_nothing_is_sent_once_the_broker_clock_passes_the_close(calendar) -> None:
    """T3: the clock passes 16:00 New York after the sell went out: the buy is not sent,
    and the report names the broker's time."""
    broker = broker_at_decision_time(calendar, {"BIL": Decimal(1000)})
    after_close = calendar.close_time(SESSION) + timedelta(minutes=5)
    broker.after("submit_order", lambda b: b.set_clock(after_close))

    report = trade(broker, calendar, ALL_TECL)

    assert [r.client_order_id for r in broker.submitted] == [cid(OrderSide.SELL, "BIL")]
    [(symbol, why)] = [s for s in report.skipped if s not in report.plan.skipped]
    assert symbol == "TECL"
    assert "broker clock 2026-11-24 16:05 EST is outside session 2026-11-24" in why


def test_a_run_starting_outside_the_window_or_in_a_halt_sends_nothing(calendar) -> None:
    """T3/X10: after the close by the broker's clock, or while the broker says the market is
    closed inside the window, execution refuses before reading anything else."""
    late = broker_at_decision_time(calendar)
    late.set_clock(calendar.close_time(SESSION) + timedelta(minutes=1))
    halted = broker_at_decision_time(calendar)
    halted.set_clock(halted.now, is_open=False)

    with pytest.raises(TradingWindowError, match="16:01 EST is outside session 2026-11-24"):
        trade(late, calendar, ALL_TECL)
    with pytest.raises(TradingWindowError, match="closed"):
        trade(halted, calendar, ALL_TECL)

    assert [c.method for c in late.calls] == ["get_clock"]
    assert [c.method for c in halted.calls] == ["get_clock"]


def test_a_lost_acknowledgement_is_not_resent_and_the_next_run_finds_the_order(calendar) -> None:
    """B5/A2: the submit's answer is lost while the order fills slowly at the broker. The run
    stops saying the outcome is unknown, without sending it again under any id; the next run
    finds the order by its client order id, waits for it, and sends nothing."""
    broker = broker_at_decision_time(calendar)
    broker.fills = delayed(2)
    broker.lose_ack(cid(OrderSide.BUY, "TECL"))

    with pytest.raises(OutcomeUnknownError):
        trade(broker, calendar, ALL_TECL)
    assert len(broker.submitted) == 1

    rerun = trade(broker, calendar, ALL_TECL)

    assert rerun.sent == ()
    [order] = rerun.session_orders
    assert (order.client_order_id, order.status) == (cid(OrderSide.BUY, "TECL"), OrderStatus.FILLED)
    assert len(broker.submitted) == 1
    assert broker.held == {"TECL": order.qty}


def test_an_attempt_another_run_sent_at_the_same_moment_is_looked_up_and_followed(
    calendar,
) -> None:
    """C2/B5: another run sends the very same attempt between this run's last check and its
    POST; the broker refuses the duplicate id, this run looks the order up by that id and
    follows it to its fill instead of making up a new one."""
    broker = broker_at_decision_time(calendar)
    broker.fills = delayed(1)
    buy = cid(OrderSide.BUY, "TECL")

    def same_attempt(b: FakeBroker) -> None:
        b.place_as_another_run(
            OrderRequest(symbol="TECL", side=OrderSide.BUY, qty=Decimal(1250), client_order_id=buy)
        )

    broker.before("submit_order", same_attempt)

    report = trade(broker, calendar, ALL_TECL)

    assert report.sent == ()
    [(symbol, why)] = report.skipped
    assert symbol == "TECL" and f"order {buy} was sent by another run" in why
    assert broker.called("get_order_by_client_id") == [(buy,)]
    [order] = report.session_orders
    assert order.status is OrderStatus.FILLED
    assert [r.client_order_id for r in broker.submitted] == [buy]


def test_a_decision_reversing_a_fill_of_the_session_is_refused_whole(calendar) -> None:
    """C2: another run of the session bought TECL; this run's decision would sell it for
    BIL and UVXY. None of it is sent, not only the reversing leg."""
    broker = broker_at_decision_time(calendar)
    another_run_sends(broker, OrderSide.BUY, "TECL", "1000")

    with pytest.raises(SessionReversalError, match="already bought TECL"):
        trade(broker, calendar, MIX)

    assert broker.submitted == []


def test_only_a_fill_counts_as_a_reversal(calendar) -> None:
    """C2: an earlier buy of the session cancelled with nothing filled traded nothing, so
    the session may still sell."""
    broker = broker_at_decision_time(calendar, {"TECL": Decimal(1000)}, cash=Decimal("20000"))
    broker.fills = NEVER
    another_run_sends(broker, OrderSide.BUY, "TECL", "1")
    [unfilled] = broker.orders
    broker.cancel_order(unfilled.id)
    broker.fills = INSTANT

    report = trade(broker, calendar, MIX)

    assert cid(OrderSide.SELL, "TECL") in [o.client_order_id for o in report.sent]


def test_a_reversal_appearing_while_the_run_trades_stops_what_is_left(calendar) -> None:
    """C2: right after this run's sell of TECL, another host's run buys TECL: the buys this
    run still had to send are not sent, and the report says the session bought TECL."""
    broker = broker_at_decision_time(calendar, {"TECL": Decimal(1000)}, cash=Decimal("20000"))
    broker.after("submit_order", lambda b: another_run_sends(b, OrderSide.BUY, "TECL", "1"))

    report = trade(broker, calendar, MIX)

    assert [r.client_order_id for r in broker.submitted] == [cid(OrderSide.SELL, "TECL")]
    reasons = {symbol: why for symbol, why in report.skipped}
    assert set(reasons) == {"BIL", "UVXY"}
    assert all("already bought TECL" in why for why in reasons.values())


def test_another_run_trading_any_symbol_since_this_run_planned_halts_it(calendar) -> None:
    """C2: after this run read the positions it plans from, another run bought UVXY. Its
    cash and positions are out of date for every symbol: it sends nothing and says why."""
    broker = broker_at_decision_time(calendar, {"BIL": Decimal(1000)})
    broker.after("get_positions", lambda b: another_run_sends(b, OrderSide.BUY, "UVXY", "10"))

    report = trade(broker, calendar, ALL_TECL)

    assert report.sent == () and broker.submitted == []
    other = cid(OrderSide.BUY, "UVXY")
    assert {symbol for symbol, _ in report.skipped} == {"BIL", "TECL"}
    assert all(f"order {other} appeared or finished after" in why for _, why in report.skipped)


def test_partial_fills_are_followed_to_completion_with_one_order(calendar) -> None:
    """T6/B6: an order filling in four steps is polled until filled; no second order."""
    broker = broker_at_decision_time(calendar, assets=WHOLE_TECL)
    broker.fills = partial(4)
    time = FakeTime()

    [order] = trade(broker, calendar, ALL_TECL, time=time).sent

    assert (order.status, order.filled_qty) == (OrderStatus.FILLED, Decimal(1250))
    # The first look comes soon, each next one twice as late (a fill usually takes moments).
    assert time.sleeps == [FAST.first_poll * 2**n for n in range(4)]
    assert len(broker.submitted) == 1 and broker.held == {"TECL": Decimal(1250)}


def test_an_unfilled_remainder_is_cancelled_left_as_a_residual_and_sent_as_attempt_two(
    calendar,
) -> None:
    """T6/B6: time runs out after a quarter filled: the rest is cancelled, the residual is
    what reconciliation counts, and the next run sends attempt 2 for exactly that much,
    computed from the broker's positions, never the original order again."""
    broker = broker_at_decision_time(calendar, assets=WHOLE_TECL)
    broker.fills = partial(4)
    short = ExecutionPolicy(fill_timeout=1.0, poll_interval=1.0, first_poll=1.0)  # one look

    first = trade(broker, calendar, ALL_TECL, short)

    [order] = first.sent
    assert (order.status, order.filled_qty) == (OrderStatus.CANCELED, Decimal(312))
    assert first.cancelled == (order.client_order_id,)
    left = residuals(first.plan.targets, broker.held, PRICES, short.min_trade_notional)
    [residual] = left.open
    assert (residual.symbol, residual.qty, residual.notional) == ("TECL", 938, Decimal("75040"))

    broker.fills = INSTANT
    [second] = trade(broker, calendar, ALL_TECL).sent

    assert second.client_order_id == cid(OrderSide.BUY, "TECL", 2)
    assert second.qty == residual.qty
    assert broker.held == {"TECL": Decimal(1250)}


def test_an_order_that_never_fills_is_cancelled_when_its_phase_times_out(calendar) -> None:
    """T6: the wait is bounded by fill_timeout on execution's own clock; nothing sleeps."""
    broker = broker_at_decision_time(calendar)
    broker.fills = NEVER
    time = FakeTime()

    report = trade(broker, calendar, ALL_TECL, time=time)

    [order] = report.sent
    assert order.status is OrderStatus.CANCELED and order.filled_qty == 0
    assert sum(time.sleeps) == pytest.approx(FAST.fill_timeout)
    assert max(time.sleeps) == FAST.poll_interval
    assert broker.called("cancel_order") == [(order.id,)]


def test_a_rejected_order_is_reported_with_the_brokers_reason_and_not_resent(calendar) -> None:
    """X10: the broker refuses UVXY (halted); BIL is still bought, UVXY is reported with
    the broker's reason and sent once."""
    broker = broker_at_decision_time(calendar)
    broker.reject("UVXY", 'asset "UVXY" is halted')

    report = trade(broker, calendar, MIX)

    assert [o.symbol for o in report.sent] == ["BIL"]
    assert [why for symbol, why in report.skipped if symbol == "UVXY"] == [
        'rejected by the broker: asset "UVXY" is halted'
    ]
    assert [r.symbol for r in broker.submitted].count("UVXY") == 1


def test_the_session_is_listed_from_the_day_before_not_from_the_account_s_first_order(
    calendar,
) -> None:
    """D4: every listing of the session's orders asks the broker only for orders submitted
    after midnight (New York) of the day before the session, so a listing stays a few
    sessions long however many years of orders the account holds; orders go out only inside
    the session's window, so none of the session's is left out."""
    broker = broker_at_decision_time(calendar, {"BIL": Decimal(100)})
    trade(broker, calendar, ALL_TECL)
    windows = [args[1] for args in broker.called("list_orders")]
    assert len(windows) >= 3
    assert set(windows) == {datetime(2026, 11, 23, tzinfo=EXCHANGE_TZ)}


def test_without_the_window_check_the_session_is_listed_from_the_account_s_first_order(
    calendar,
) -> None:
    """D4: a caller that does not hold its orders to the session's window (no calendar) may
    have sent the session's orders at any date, so every listing reads the whole history."""
    broker = broker_at_decision_time(calendar, {"BIL": Decimal(100)})
    execute(broker, SESSION, ALL_TECL, PRICES, FAST, FakeTime().pacing())
    windows = [args[1] for args in broker.called("list_orders")]
    assert len(windows) >= 3
    assert set(windows) == {None}


class _Timed:
    """The broker, each call recorded at execution's clock: what a rate limit counts."""

    def __init__(self, broker: FakeBroker, time: FakeTime) -> None:
        self._broker = broker
        self._time = time
        self.at: list[float] = []

    def __getattr__(self, name: str):
        attribute = getattr(self._broker, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            self.at.append(self._time.now)
            return attribute(*args, **kwargs)

        return call


def test_following_several_slow_orders_stays_under_alpacas_rate_limit(calendar) -> None:
    """B1: five sells that never fill are followed for the whole phase (two minutes by the
    default policy) and then cancelled, and the buy after them too; in no minute does the run
    ask the broker more than Alpaca's 200 times."""
    prices = {**PRICES, "SPXL": Decimal("150"), "SQQQ": Decimal("10"), "BSV": Decimal("77")}
    held = {symbol: Decimal(100) for symbol in prices}
    broker = FakeBroker(
        prices=prices,
        now=calendar.decision_time(SESSION),
        holdings=held,
        calendar=calendar,
        fills=NEVER,
    )
    time = FakeTime()
    timed = _Timed(broker, time)
    policy = ExecutionPolicy()  # the defaults a run uses

    # The proxy has every Broker method by forwarding them.
    proxy = cast(Broker, timed)
    report = execute(proxy, SESSION, ALL_TECL, prices, policy, time.pacing(), calendar=calendar)

    sold = [o.symbol for o in report.sent if o.side is OrderSide.SELL]
    assert sorted(sold) == ["BIL", "BSV", "SPXL", "SQQQ", "UVXY"]
    assert time.now >= policy.fill_timeout, "the orders were followed for the whole phase"
    busiest = max(sum(1 for t in timed.at if start <= t < start + 60) for start in timed.at)
    print(f"busiest minute: {busiest} calls; {len(timed.at)} in {time.now:.0f} s")
    assert busiest <= 200
