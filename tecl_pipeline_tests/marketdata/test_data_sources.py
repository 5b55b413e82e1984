"""Market data sources and the checks that decide whether they can be traded on."""

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.core.data_quality import data_problems, require_trustworthy
from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.marketdata.csv_source import CsvMarketData
from tecl_pipeline.marketdata.demo import DemoMarketData


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar()


def demo(calendar: TradingCalendar, now: datetime | None = None) -> DemoMarketData:
    moment = now or datetime(2026, 11, 25, 12, tzinfo=UTC)
    return DemoMarketData(calendar, now=lambda: moment)


def test_demo_data_are_deterministic_and_extending_them_keeps_the_past(calendar):
    """R2: same seed, same prices; a later end date never rewrites earlier sessions."""
    short = demo(calendar).closes(SYMBOLS, through=date(2026, 6, 30))
    long = demo(calendar).closes(SYMBOLS, through=date(2026, 11, 24))

    pd.testing.assert_frame_equal(long.loc[short.index], short)
    assert list(long.columns) == list(SYMBOLS)
    assert (long > 0).all().all()
    assert long.index[-1] == pd.Timestamp("2026-11-24")
    assert data_problems(long, date(2026, 11, 24), calendar) == []


def test_demo_data_say_they_are_demo(calendar):
    source = demo(calendar)
    assert source.is_demo and "DEMO" in source.description


def test_demo_latest_session_is_the_last_closed_one(calendar):
    """T2: before the close the latest complete session is the previous one (NY time)."""
    before_close = datetime(2026, 11, 24, 20, 59, tzinfo=UTC)  # 15:59 New York
    after_close = datetime(2026, 11, 24, 21, 1, tzinfo=UTC)
    assert demo(calendar, before_close).latest_session(SYMBOLS) == date(2026, 11, 23)
    assert demo(calendar, after_close).latest_session(SYMBOLS) == date(2026, 11, 24)
    thanksgiving = datetime(2026, 11, 26, 18, tzinfo=UTC)
    assert demo(calendar, thanksgiving).latest_session(SYMBOLS) == date(2026, 11, 25)


def test_csv_source_reads_the_shared_format(market_dir):
    source = CsvMarketData(market_dir)
    closes = source.closes(SYMBOLS, through=date(2026, 7, 31))

    assert list(closes.columns) == list(SYMBOLS)
    assert closes.index.is_monotonic_increasing
    assert closes["KMLM"].first_valid_index() == pd.Timestamp("2020-12-02")
    assert source.latest_session(SYMBOLS) == date(2026, 7, 31)
    assert not source.is_demo


def test_csv_source_ignores_extra_ohlcv_columns(tmp_path):
    (tmp_path / "SPY.csv").write_text(
        "date,open,high,low,close,volume,adj_close\n2026-07-30,1,2,0.5,1.5,100,1.4\n"
        "2026-07-31,1,2,0.5,1.6,100,1.5\n"
    )
    closes = CsvMarketData(tmp_path).closes(("SPY",), through=date(2026, 7, 31))
    assert closes["SPY"].tolist() == [1.4, 1.5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("date,close\n2026-07-31,1.0\n", "adj_close"),
        ("date,adj_close\n2026-07-31,-1.0\n", "2026-07-31"),
        ("date,adj_close\n2026-07-31,abc\n", "not a positive number"),
        ("date,adj_close\n2026-07-30,1.0\n2026-07-30,1.1\n", "appears twice"),
        ("date,adj_close\n2026-07-31,1.0\n2026-07-30,1.1\n", "ascending"),
        ("date,adj_close\n31/07/2026,1.0\n", "bad date"),
    ],
)
def test_csv_source_rejects_bad_files_naming_the_problem(tmp_path, content, message):
    (tmp_path / "SPY.csv").write_text(content)
    with pytest.raises(MarketDataError, match=message) as raised:
        CsvMarketData(tmp_path).closes(("SPY",), through=date(2026, 7, 31))
    assert "SPY" in str(raised.value)


def test_csv_source_missing_symbol_names_it(tmp_path):
    with pytest.raises(MarketDataError, match="TECL"):
        CsvMarketData(tmp_path).closes(("TECL",), through=date(2026, 7, 31))


CALENDAR = TradingCalendar()


def _frame(days: int, end: date = date(2026, 7, 31)) -> pd.DataFrame:
    index = pd.DatetimeIndex([pd.Timestamp(d) for d in CALENDAR.sessions_ending(end, days)])
    print("_frame: random walk seed=5")
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        100 * np.exp(np.cumsum(rng.normal(0, 0.01, (days, len(SYMBOLS))), axis=0)),
        index=index,
        columns=list(SYMBOLS),
    )


def test_data_problems_name_symbol_kind_and_date():
    """T1: each kind of untrustworthy data is reported with the symbol and the date."""
    closes = _frame(300)
    closes.loc[closes.index[-1], "XLK"] = np.nan  # stale and a NaN
    closes.loc[closes.index[-10], "BIL"] = 0.0
    closes = closes.drop(columns="SQQQ")
    closes.loc[: closes.index[-100], "KMLM"] = np.nan  # only 99 bars

    problems = {
        (p.symbol, p.kind): p.detail for p in data_problems(closes, date(2026, 7, 31), CALENDAR)
    }

    assert set(problems) == {
        ("XLK", "stale"),
        ("BIL", "non_positive"),
        ("SQQQ", "missing"),
        ("KMLM", "too_short"),
    }
    assert "2026-07-30" in problems[("XLK", "stale")]
    assert str(closes.index[-10].date()) in problems[("BIL", "non_positive")]


def test_interior_gap_is_a_problem():
    closes = _frame(300)
    closes.loc[closes.index[-5], "TQQQ"] = np.nan
    [problem] = data_problems(closes, date(2026, 7, 31), CALENDAR)
    assert (problem.symbol, problem.kind) == ("TQQQ", "nan")
    assert str(closes.index[-5].date()) in problem.detail


def test_require_trustworthy_lists_everything_wrong():
    closes = _frame(300).drop(columns=["UVXY", "BSV"])
    with pytest.raises(MarketDataError, match=r"UVXY.*BSV"):
        require_trustworthy(closes, date(2026, 7, 31), CALENDAR)
    require_trustworthy(_frame(300), date(2026, 7, 31), CALENDAR)


def test_gap_day_is_not_stale(market_dir):
    """T4: the 2020-03-16 crash day is processed like any other (no false "stale")."""
    closes = CsvMarketData(Path(market_dir)).closes(SYMBOLS, through=date(2020, 3, 16))
    problems = data_problems(closes, date(2020, 3, 16), CALENDAR)
    # KMLM did not exist yet; the -20% day itself is no data problem.
    assert [(p.symbol, p.kind) for p in problems] == [("KMLM", "missing")]


def test_unadjusted_split_is_an_implausible_jump():
    """T4/X2: a 2-for-1 split left unadjusted (-50% in a day) is flagged with symbol and date."""
    closes = _frame(300)
    closes.loc[closes.index[-3] :, "TECL"] /= 2

    [problem] = data_problems(closes, date(2026, 7, 31), CALENDAR)

    assert (problem.symbol, problem.kind) == ("TECL", "jump")
    assert str(closes.index[-3].date()) in problem.detail and "-50" in problem.detail


def test_real_crash_and_rally_days_are_not_implausible(real_closes):
    """T4: the real history, 2020-03-16 and 2025-04-09 included, raises no jump anywhere."""
    problems = data_problems(real_closes, date(2026, 7, 31), CALENDAR)
    assert [p for p in problems if p.kind == "jump"] == []
