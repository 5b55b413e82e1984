"""The signal table's small promises: writing nothing writes nothing (no empty database
appears), rows are counted, and a write without provenance still says when it was made."""

from datetime import date
from decimal import Decimal

import pandas as pd

from tecl_pipeline.core.universe import HOLDINGS
from tecl_pipeline.state.history_store import count_rows, read_signals, write_signals


def signals(days: list[str]) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(days), name="session")
    frame = pd.DataFrame({"leaf": ["risk-on"] * len(days)}, index=index)
    for holding in HOLDINGS:
        weight = Decimal("1") if holding == "TECL" else Decimal("0")
        frame[holding] = pd.Series([weight] * len(days), index=index, dtype=object)
    return frame


def test_writing_an_empty_frame_writes_nothing(tmp_path):
    path = tmp_path / "history.sqlite"
    assert write_signals(path, signals([])) == 0
    assert not path.exists()
    assert count_rows(path) == 0


def test_rows_are_counted_and_unspecified_provenance_is_stamped(tmp_path):
    path = tmp_path / "history.sqlite"
    assert write_signals(path, signals(["2026-07-29", "2026-07-30", "2026-07-31"])) == 3
    assert count_rows(path) == 3
    stored = read_signals(path, date(2026, 7, 30), with_provenance=True)
    assert isinstance(stored.index, pd.DatetimeIndex)
    assert list(stored.index.date) == [date(2026, 7, 30), date(2026, 7, 31)]
    assert set(stored["data_source"]) == {"unspecified"}
    assert all(pd.Timestamp(stamp).tzinfo is not None for stamp in stored["computed_at"])
