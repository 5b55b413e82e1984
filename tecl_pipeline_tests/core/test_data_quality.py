"""Whole-frame data problems (T1): a date twice or dates out of order make the frame
unusable as a whole, reported before any per-symbol check."""

from datetime import date

import pandas as pd

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.core.data_quality import data_problems
from tecl_pipeline.core.universe import SYMBOLS


def frame(days: list[str]) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(days))
    return pd.DataFrame({s: [100.0 + i for i in range(len(days))] for s in SYMBOLS}, index=index)


def test_a_date_twice_is_one_schema_problem_naming_it():
    problems = data_problems(
        frame(["2026-07-29", "2026-07-30", "2026-07-30"]), date(2026, 7, 30), TradingCalendar()
    )
    assert [(p.symbol, p.kind) for p in problems] == [("*", "schema")]
    assert "2026-07-30 appears twice" in problems[0].detail


def test_dates_out_of_order_are_one_schema_problem():
    problems = data_problems(
        frame(["2026-07-30", "2026-07-29"]), date(2026, 7, 30), TradingCalendar()
    )
    assert [(p.symbol, p.kind) for p in problems] == [("*", "schema")]
    assert "not in ascending order" in problems[0].detail
