"""Execution against the demo broker: sells before buys, idempotent ids, refusals before orders."""

import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tecl_pipeline.broker.models import Asset, Clock, Order, OrderRequest, OrderSide
from tecl_pipeline.broker.paper import PaperBroker
from tecl_pipeline.calendar import TradingCalendar
from tecl_pipeline.errors import AccountError, RiskLimitError, SessionBusyError, TradingWindowError
from tecl_pipeline.execution import (
    ExecutionPolicy,
    check_trading_window,
    execute,
    leg_prefix,
)
from tecl_pipeline.portfolio import RiskLimits
from tecl_pipeline.state.locks import session_lock

SESSION = date(2026, 11, 24)
PRICES = {"TECL": Decimal("85.40"), "BIL": Decimal("91.52"), "UVXY": Decimal("30.05")}
ALL_TECL = {"TECL": Decimal(1)}
MIX = {"UVXY": Decimal("0.25"), "BIL": Decimal("0.75")}


def broker(tmp_path: Path, **kwargs) -> PaperBroker:
    return PaperBroker(
        tmp_path / "book.json",
        prices=PRICES,
        now=lambda: datetime(2026, 11, 24, 15, 45).astimezone(),
        starting_cash=Decimal("10000"),
        **kwargs,
    )


def test_rebalance_sells_before_buying_and_never_overspends(tmp_path):
    """B7: the switch from TECL to UVXY/BIL sells first, then buys with the proceeds."""
    client = broker(tmp_path)
    execute(client, date(2026, 11, 23), ALL_TECL, PRICES, ExecutionPolicy())

    report = execute(client, SESSION, MIX, PRICES, ExecutionPolicy())

    sides = [o.side for o in report.sent]
    assert sides[0] is OrderSide.SELL and set(sides[1:]) == {OrderSide.BUY}
    account = client.get_account()
    assert account.cash >= 0
    assert set(client.get_positions()) == {"UVXY", "BIL"}
    assert account.equity == pytest.approx(Decimal("10000"), abs=Decimal("1"))


def test_client_order_ids_are_deterministic_per_session_leg(tmp_path):
    """X3: ids derive from (session, side, symbol, attempt) so a resend is a duplicate."""
    report = execute(broker(tmp_path), SESSION, ALL_TECL, PRICES, ExecutionPolicy())

    [order] = report.sent
    assert order.client_order_id == leg_prefix(SESSION, OrderSide.BUY, "TECL") + "1"
    assert order.client_order_id == "tecl-20261124-buy-TECL-1"


class _KilledBeforeBuys(Exception):
    pass


class CrashingBeforeBuys(PaperBroker):
    """The process dies after the sells reached the broker, before the first buy."""

    def submit_order(self, request: OrderRequest) -> Order:
        if request.side is OrderSide.BUY:
            raise _KilledBeforeBuys
        return super().submit_order(request)


def test_rerun_after_a_crash_between_sells_and_buys_completes_without_duplicates(tmp_path):
    """A2: a run killed after its sells is resumed by the next run: buys only, once."""
    execute(broker(tmp_path), date(2026, 11, 23), ALL_TECL, PRICES, ExecutionPolicy())
    crashing = CrashingBeforeBuys(
        tmp_path / "book.json",
        prices=PRICES,
        now=lambda: datetime(2026, 11, 24, 15, 45).astimezone(),
        starting_cash=Decimal("10000"),
    )
    with pytest.raises(_KilledBeforeBuys):
        execute(crashing, SESSION, MIX, PRICES, ExecutionPolicy())
    [sell] = crashing.list_orders(f"tecl-{SESSION:%Y%m%d}-")
    assert sell.side is OrderSide.SELL and "TECL" not in crashing.get_positions()

    client = broker(tmp_path)
    rerun = execute(client, SESSION, MIX, PRICES, ExecutionPolicy())

    assert {(o.side, o.symbol) for o in rerun.sent} == {
        (OrderSide.BUY, "UVXY"),
        (OrderSide.BUY, "BIL"),
    }
    ids = [o.client_order_id for o in client.list_orders()]
    assert len(ids) == len(set(ids))
    assert set(client.get_positions()) == {"UVXY", "BIL"}
    again = execute(client, SESSION, MIX, PRICES, ExecutionPolicy())
    assert again.sent == ()


def test_non_tradable_asset_is_skipped_with_a_reason(tmp_path):
    """T7: tradability is read from the broker; a non-tradable symbol gets no order."""
    client = broker(
        tmp_path, assets={"UVXY": Asset(symbol="UVXY", tradable=False, fractionable=True)}
    )

    report = execute(client, SESSION, MIX, PRICES, ExecutionPolicy())

    assert [o.symbol for o in report.sent] == ["BIL"]
    assert ("UVXY", "asset is not tradable at the broker") in report.skipped


def test_non_fractionable_asset_is_bought_in_whole_shares(tmp_path):
    """T5: quantities are what the broker accepts for that asset."""
    client = broker(
        tmp_path, assets={"TECL": Asset(symbol="TECL", tradable=True, fractionable=False)}
    )

    [order] = execute(client, SESSION, ALL_TECL, PRICES, ExecutionPolicy()).sent

    assert order.qty == order.qty.to_integral_value()
    assert order.qty * PRICES["TECL"] <= Decimal("10000")


def test_kill_switch_refuses_before_any_order(tmp_path):
    """T9: with the kill switch on nothing is sent, and the reason says so."""
    client = broker(tmp_path)
    policy = ExecutionPolicy(risk=RiskLimits(kill_switch=True))

    with pytest.raises(RiskLimitError, match="kill"):
        execute(client, SESSION, ALL_TECL, PRICES, policy)
    assert client.list_orders() == []


def test_max_order_notional_refuses_before_any_order(tmp_path):
    """T9: an order above the configured notional limit stops the plan, naming the symbol."""
    client = broker(tmp_path)
    policy = ExecutionPolicy(risk=RiskLimits(max_order_notional=Decimal("5000")))

    with pytest.raises(RiskLimitError, match="TECL"):
        execute(client, SESSION, ALL_TECL, PRICES, policy)
    assert client.list_orders() == []


def test_non_usd_account_refuses(tmp_path, monkeypatch):
    """X8: the account must be in USD."""
    client = broker(tmp_path)
    account = client.get_account().model_copy(update={"currency": "EUR"})
    monkeypatch.setattr(client, "get_account", lambda: account)

    with pytest.raises(AccountError, match="EUR"):
        execute(client, SESSION, ALL_TECL, PRICES, ExecutionPolicy())
    assert client.list_orders() == []


def test_second_concurrent_run_for_a_session_is_refused(tmp_path):
    """C2: while one run holds the session, another stops at once without orders."""
    holding = threading.Event()
    release = threading.Event()

    def first_run() -> None:
        with session_lock(tmp_path / "locks", SESSION):
            holding.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=first_run)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        with (
            pytest.raises(SessionBusyError, match="2026-11-24"),
            session_lock(tmp_path / "locks", SESSION),
        ):
            pass
        # Another session is not blocked by it.
        with session_lock(tmp_path / "locks", date(2026, 11, 25)):
            pass
    finally:
        release.set()
        thread.join()
    with session_lock(tmp_path / "locks", SESSION):
        pass


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar()


def clock_at(moment: datetime, is_open: bool = True) -> Clock:
    return Clock(timestamp=moment, is_open=is_open, next_open=moment, next_close=moment)


@pytest.mark.parametrize(
    ("session", "utc_moment"),
    [
        (date(2026, 11, 24), datetime(2026, 11, 24, 20, 45, tzinfo=UTC)),  # 15:45 EST
        (date(2026, 11, 24), datetime(2026, 11, 24, 20, 30, tzinfo=UTC)),  # 15:30, early tick
        (date(2026, 7, 31), datetime(2026, 7, 31, 19, 59, tzinfo=UTC)),  # 15:59 EDT
        (date(2026, 11, 27), datetime(2026, 11, 27, 17, 45, tzinfo=UTC)),  # 12:45, early close
    ],
)
def test_trading_window_accepts_the_decision_time(calendar, session, utc_moment):
    """T2: the window is in New York time, DST and early closes included."""
    check_trading_window(clock_at(utc_moment), session, calendar, ExecutionPolicy())


@pytest.mark.parametrize(
    ("session", "utc_moment", "why"),
    [
        (date(2026, 11, 24), datetime(2026, 11, 24, 15, 0, tzinfo=UTC), "10:00"),  # morning
        (date(2026, 11, 24), datetime(2026, 11, 24, 21, 0, tzinfo=UTC), "16:00"),  # the close
        (date(2026, 7, 31), datetime(2026, 7, 31, 20, 45, tzinfo=UTC), "16:45"),  # UTC read as EST
        (
            date(2026, 11, 27),
            datetime(2026, 11, 27, 18, 5, tzinfo=UTC),
            "13:05",
        ),  # after early close
        (date(2026, 11, 23), datetime(2026, 11, 24, 20, 45, tzinfo=UTC), "2026-11-24"),  # wrong day
    ],
)
def test_trading_window_refuses_the_wrong_time(calendar, session, utc_moment, why):
    """T2/T3: a run at the wrong time, or for another session, refuses with the time named."""
    with pytest.raises(TradingWindowError, match=why):
        check_trading_window(clock_at(utc_moment), session, calendar, ExecutionPolicy())


def test_closed_market_at_order_time_refuses(calendar):
    """T3/X10: an unscheduled halt (the broker says closed inside the window) stops trading."""
    moment = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
    with pytest.raises(TradingWindowError, match="closed"):
        check_trading_window(clock_at(moment, is_open=False), SESSION, calendar, ExecutionPolicy())
