"""Market data that line up with the XNYS calendar (T1) and one-day moves each fund can
really make (T4, X2): the pure checks, and the same refusals through `tecl run` (exit 2,
symbol and date on stderr, no order)."""

import json
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.config.settings import ConfigError
from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.core.data_quality import (
    SPLIT_SAFE_MOVE,
    Split,
    data_problems,
    plausible_daily_move,
)
from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.core.universe import FUNDS, HOLDINGS, SYMBOLS
from tecl_pipeline.defs.resources import TradingPolicyResource
from tecl_pipeline.marketdata.csv_source import CsvMarketData
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BrokerSimulator, SimulatorServer
from tecl_pipeline.trading.execution import ExecutionPolicy, execute, plan_from_broker
from tecl_pipeline_tests.app.cli_helpers import tecl
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_SESSION
from tecl_pipeline_tests.trading.over_http import adapter

CALENDAR = TradingCalendar()
SESSION = date(2026, 7, 31)


def sessions_frame(count: int, end: date = SESSION) -> pd.DataFrame:
    """`count` XNYS sessions up to `end` of a steady 0.1% a day rise in every symbol."""
    days = pd.DatetimeIndex([pd.Timestamp(d) for d in CALENDAR.sessions_ending(end, count)])
    prices = 100 * 1.001 ** np.arange(count)
    return pd.DataFrame({s: prices for s in SYMBOLS}, index=days)


def kinds(problems) -> set[tuple[str, str]]:
    return {(p.symbol, p.kind) for p in problems}


# -- bars off the calendar, sessions missing inside the window (T1) -------------------------


@pytest.mark.parametrize(
    ("day", "why"),
    [
        ("2026-07-25", "Saturday"),
        ("2026-07-03", "holiday (July 4th)"),
        ("2025-12-25", "holiday (Christmas)"),
    ],
)
def test_a_bar_on_a_day_without_a_session_is_named_with_its_date(day, why):
    """One symbol's feed has a bar on a weekend or an exchange holiday: that symbol is
    refused naming the date and why it is no session; the others are not blamed."""
    closes = sessions_frame(300)
    closes.loc[pd.Timestamp(day), "UVXY"] = closes["UVXY"].iloc[-10]
    closes = closes.sort_index()

    problems = data_problems(closes, SESSION, CALENDAR)

    assert kinds(problems) == {("UVXY", "off_calendar")}
    assert day in problems[0].detail and why in problems[0].detail


def test_the_same_frame_on_the_calendar_is_clean():
    """The control of the tests here: the untampered frame passes."""
    assert data_problems(sessions_frame(300), SESSION, CALENDAR) == []


def test_a_session_missing_from_every_symbol_inside_the_window_is_a_gap():
    """No NaN anywhere (the row is simply absent): every symbol is refused naming the day."""
    closes = sessions_frame(300)
    missing = closes.index[-40]
    closes = closes.drop(missing)

    problems = data_problems(closes, SESSION, CALENDAR)

    assert kinds(problems) == {(s, "gap") for s in SYMBOLS}
    assert all(str(missing.date()) in p.detail for p in problems)


def test_sessions_before_the_window_or_before_a_listing_are_no_gap():
    """A hole older than the indicator window shifts nothing; a fund listed inside the
    history (KMLM in 2020) has no sessions to miss before its first bar."""
    closes = sessions_frame(400)
    closes = closes.drop(closes.index[20])  # 380 sessions back: outside the 250-session window
    closes.loc[: closes.index[100], "KMLM"] = np.nan

    assert data_problems(closes, SESSION, CALENDAR) == []


def test_real_history_lines_up_with_the_calendar_on_every_session(real_closes):
    """The whole real history since 2000 taken as one window: no bar off the calendar, no
    session missing (the ad-hoc closures of 2001, 2004, 2012, 2018 and 2025 included)."""
    whole = len(CALENDAR.sessions(CALENDAR.first_session, SESSION))
    problems = data_problems(
        real_closes.loc[: pd.Timestamp(SESSION)], SESSION, CALENDAR, warmup=whole
    )
    assert [str(p) for p in problems if p.kind in {"off_calendar", "gap"}] == []


# -- one-day bounds per fund, unadjusted splits (T4, X2) -----------------------------------


def test_every_bound_is_below_a_split_and_above_the_funds_real_extremes(real_closes):
    """Each fund's bound comes from its leverage and underlying, stays under ln 2 (a split
    of ratio 2) and above the largest real one-day move of that fund."""
    for symbol in SYMBOLS:
        bound = plausible_daily_move(symbol)
        fund = FUNDS[symbol]
        worst = float(np.abs(np.log(real_closes[symbol].dropna()).diff()).max())
        print(f"{symbol}: {fund}, bound {bound:.3f}, real worst {worst:.3f}")
        assert bound is not None and worst < bound <= SPLIT_SAFE_MOVE < math.log(2)


def test_demo_data_stay_inside_every_bound_to_the_calendars_end():
    """The synthetic market `make run` and the soak trade must not trip its own checks."""
    end = CALENDAR.last_session
    moment = CALENDAR.close_time(end) + timedelta(hours=1)
    closes = DemoMarketData(CALENDAR, now=lambda: moment).closes(SYMBOLS, through=end)
    assert data_problems(closes, end, CALENDAR) == []


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize(("ratio", "label"), [(2.0, "1:2"), (0.5, "2:1"), (10.0, "1:10")])
def test_an_unadjusted_split_of_any_fund_is_a_jump_naming_it(symbol, ratio, label, real_closes):
    """The real history with one fund's closes from three sessions before the end multiplied
    as an unadjusted split would (a 1:2 reverse split doubles them, 2:1 halves them) is
    refused naming that fund and the day; nothing else is reported."""
    closes = real_closes.loc[: pd.Timestamp(SESSION)].copy()
    day = closes.index[-3]
    closes.loc[day:, symbol] *= ratio

    problems = data_problems(closes, SESSION, CALENDAR)

    assert kinds(problems) == {(symbol, "jump")}, f"{label} split of {symbol}"
    assert str(day.date()) in problems[0].detail


def test_a_reported_split_names_what_the_one_day_bound_lets_through(real_closes):
    """A 3:2 split of TQQQ left unadjusted (-33%) is a move a 3x fund can make, so the bound
    passes it; the split the data source reports names it. Adjusted closes with the same
    report, and a report of a split on a day it explains nothing, are no problem."""
    closes = real_closes.loc[: pd.Timestamp(SESSION)].copy()
    day = closes.index[-3]
    split = Split("TQQQ", day.date(), 1.5)
    assert data_problems(closes, SESSION, CALENDAR, splits=[split]) == []
    elsewhere = Split("TQQQ", closes.index[-30].date(), 2.0)
    assert data_problems(closes, SESSION, CALENDAR, splits=[elsewhere]) == []

    closes.loc[day:, "TQQQ"] /= 1.5
    assert data_problems(closes, SESSION, CALENDAR) == []  # the bound alone cannot tell
    problems = data_problems(closes, SESSION, CALENDAR, splits=[split])

    assert kinds(problems) == {("TQQQ", "unadjusted_split")}
    assert "3:2 split" in problems[0].detail and str(day.date()) in problems[0].detail


# -- through `tecl run` with CSV data: exit 2, reason on stderr, no order -------------------


def _saturday_bar(folder: Path) -> tuple[str, str]:
    frame = pd.read_csv(folder / "TQQQ.csv")
    extra = pd.DataFrame({"date": ["2026-07-25"], "adj_close": [frame["adj_close"].iloc[-6]]})
    pd.concat([frame, extra]).sort_values("date").to_csv(folder / "TQQQ.csv", index=False)
    return "TQQQ", "2026-07-25"


def _missing_session(folder: Path) -> tuple[str, str]:
    for symbol in SYMBOLS:
        frame = pd.read_csv(folder / f"{symbol}.csv")
        frame[frame["date"] != "2026-06-10"].to_csv(folder / f"{symbol}.csv", index=False)
    return "SPY", "2026-06-10"


def _uvxy_reverse_split(folder: Path) -> tuple[str, str]:
    frame = pd.read_csv(folder / "UVXY.csv")
    frame.loc[frame.index[-2] :, "adj_close"] *= 2
    frame.to_csv(folder / "UVXY.csv", index=False)
    return "UVXY", str(frame["date"].iloc[-2])


@pytest.mark.parametrize("tamper", [_saturday_bar, _missing_session, _uvxy_reverse_split])
def test_tecl_run_refuses_misaligned_or_unadjusted_data_with_exit_2(tmp_path, csv_dir, tamper):
    folder = csv_dir(SESSION)
    symbol, day = tamper(folder)

    done = tecl(["run", "--session", SESSION.isoformat()], tmp_path, TECL_DATA_DIR=str(folder))

    assert done.returncode == 2, done.stderr
    assert "refused to trade" in done.stderr
    assert symbol in done.stderr and day in done.stderr
    assert "Traceback" not in done.stderr
    book = tmp_path / ".tecl" / "state" / "demo-broker" / "account.json"
    assert not book.exists() or json.loads(book.read_text())["orders"] == []


# -- decision prices against the broker's latest trade, before any order (T4, X2) ----------

MIX = {"UVXY": Decimal("0.25"), "BIL": Decimal("0.75")}
FAST = ExecutionPolicy(fill_timeout=10.0, poll_interval=1.0)


@pytest.fixture
def broker(simulator: SimulatorServer) -> Iterator[AlpacaBroker]:
    """The real adapter over HTTP; its latest trades come from the same simulator."""
    with adapter(simulator) as client:
        yield client


def decision_prices(simulator: SimulatorServer, symbols: tuple[str, ...]) -> dict[str, Decimal]:
    prices = {}
    for symbol in symbols:
        price = simulator.simulator.price(symbol)
        assert price is not None, f"the simulator has no price for {symbol}"
        prices[symbol] = price
    return prices


def test_a_symbol_the_plan_buys_but_does_not_hold_is_checked_before_any_order(broker, simulator):
    """The broker's UVXY trades at half the decision price (a split the data have not
    adjusted). Nothing is held, so only the latest trade can tell: the session is refused
    naming UVXY, both prices, the gap and the session, and no order is sent."""
    prices = decision_prices(simulator, HOLDINGS)
    simulator.simulator.split("UVXY", 2)

    with pytest.raises(MarketDataError) as refused:
        execute(broker, SIM_SESSION, MIX, prices, FAST)

    reason = str(refused.value)
    assert "UVXY" in reason and "BIL" not in reason
    assert str(prices["UVXY"]) in reason and SIM_SESSION.isoformat() in reason
    assert re.search(r"latest price is [0-9.]+: they disagree by \+100\.\d\d%", reason), reason
    assert simulator.simulator.state()["submissions"] == []


def test_a_symbol_the_decision_only_read_is_checked_where_the_broker_quotes_it(broker, simulator):
    """SPY is never traded but the decision read its price: a broker SPY far from it blocks
    the plan; a read symbol the broker does not quote at all is no reason to refuse."""
    prices = decision_prices(simulator, HOLDINGS)
    read = {**decision_prices(simulator, SYMBOLS), "ZZZZ": Decimal("10")}
    agreed = plan_from_broker(broker, MIX, prices, FAST, session=SIM_SESSION, read_prices=read)
    assert agreed.price_problems == ()
    simulator.simulator.split("SPY", 4)

    snapshot = plan_from_broker(broker, MIX, prices, FAST, session=SIM_SESSION, read_prices=read)

    [problem] = snapshot.price_problems
    assert re.match(r"SPY: decided at .* they disagree by \+(299\.9\d|300\.\d\d)%", problem)
    with pytest.raises(MarketDataError, match="SPY"):
        snapshot.require_prices_confirmed()
    assert simulator.simulator.state()["submissions"] == []


def test_the_tolerance_is_the_trading_policys(broker, simulator):
    """A gap within the configured `max_price_gap` passes; the same gap beyond it blocks."""
    prices = decision_prices(simulator, HOLDINGS)
    simulator.simulator.split("UVXY", Decimal("1.04"))  # the broker 3.85% below
    strict = replace(FAST, max_price_gap=Decimal("0.02"))

    blocked = plan_from_broker(broker, MIX, prices, strict, session=SIM_SESSION)
    assert [p.split(":")[0] for p in blocked.price_problems] == ["UVXY"]
    assert plan_from_broker(broker, MIX, prices, FAST, session=SIM_SESSION).price_problems == ()
    resource = TradingPolicyResource(max_price_gap="0.02")
    assert resource.policy().max_price_gap == Decimal("0.02")
    with pytest.raises(ConfigError, match="max_price_gap"):
        TradingPolicyResource(max_price_gap="two percent").policy()


def test_tecl_run_refuses_when_the_broker_prices_a_read_symbol_far_away(tmp_path, csv_dir):
    """Through `tecl run` on CSV data: the demo broker's SPY split 2:1 (its book on disk)
    while the CSV closes were not adjusted: exit 2 naming SPY and the session, no order."""
    folder = csv_dir(SESSION)
    book = tmp_path / ".tecl" / "state" / "demo-broker" / "account.json"
    BrokerSimulator(
        CsvMarketData(folder), CALENDAR, now=CALENDAR.decision_time(SESSION), book_path=book
    ).split("SPY", 2)

    done = tecl(["run", "--session", SESSION.isoformat()], tmp_path, TECL_DATA_DIR=str(folder))

    assert done.returncode == 2, done.stderr
    assert "refused to trade" in done.stderr and "Traceback" not in done.stderr
    assert "SPY" in done.stderr and SESSION.isoformat() in done.stderr
    assert re.search(
        r"SPY: decided at [0-9.]+ .* is [0-9.]+: they disagree by \+(99\.9\d|100\.\d\d)%",
        done.stderr,
    )
    assert json.loads(book.read_text())["orders"] == []
