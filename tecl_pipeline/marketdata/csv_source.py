"""CSV replay: `DIR/<SYMBOL>.csv` with `date,adj_close` (extra OHLCV columns are ignored)."""

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.trading.models import Trade

REQUIRED_COLUMNS = ("date", "adj_close")


def _cell(value: str | float) -> str:
    """A CSV cell as the file has it: never a numpy repr such as np.float64(nan)."""
    return "(empty or NaN)" if pd.isna(value) else repr(str(value))


def read_adjusted_closes(path: Path, symbol: str) -> pd.Series:
    """One symbol's adjusted closes, validated: dates ascending and unique, prices finite > 0."""
    if not path.is_file():
        raise MarketDataError(f"{symbol}: no data file {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MarketDataError(f"{symbol}: {path} is not a readable CSV file ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise MarketDataError(
            f"{symbol}: {path} lacks column(s) {', '.join(missing)}; the strategy needs "
            "split- and dividend-adjusted closes in 'adj_close'"
        )
    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        row = int(dates.isna().to_numpy().argmax())
        raise MarketDataError(f"{symbol}: bad date {_cell(frame['date'].iloc[row])} in {path}")
    prices = pd.to_numeric(frame["adj_close"], errors="coerce").astype(float)
    bad = ~np.isfinite(prices.to_numpy()) | (prices.to_numpy() <= 0)
    if bad.any():
        row = int(bad.argmax())
        raise MarketDataError(
            f"{symbol}: adj_close {_cell(frame['adj_close'].iloc[row])} on "
            f"{dates.iloc[row].date()} is not a positive number"
        )
    series = pd.Series(prices.to_numpy(), index=pd.DatetimeIndex(dates), name=symbol)
    if series.index.has_duplicates:
        dup = series.index[series.index.duplicated()][0]
        raise MarketDataError(f"{symbol}: date {dup.date()} appears twice in {path}")
    if not series.index.is_monotonic_increasing:
        raise MarketDataError(f"{symbol}: dates in {path} are not in ascending order")
    return series


class CsvMarketData:
    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir

    @property
    def description(self) -> str:
        return f"CSV replay from {self._dir}"

    @property
    def price_basis(self) -> str:
        return "the session's adjusted close from the CSV files (replayed data, no live trades)"

    def latest_trades(self, symbols: tuple[str, ...]) -> dict[str, Trade]:
        return {}

    @property
    def is_demo(self) -> bool:
        return False

    def _path(self, symbol: str) -> Path:
        return self._dir / f"{symbol}.csv"

    def closes(self, symbols: tuple[str, ...], through: date) -> pd.DataFrame:
        series = [read_adjusted_closes(self._path(s), s) for s in symbols]
        frame = pd.concat(series, axis=1).sort_index()
        return frame.loc[: pd.Timestamp(through)]

    def latest_session(self, symbols: tuple[str, ...]) -> date:
        present = [s for s in symbols if self._path(s).is_file()]
        if not present:
            raise MarketDataError(f"none of {', '.join(symbols)} has a CSV file in {self._dir}")
        latest = [
            closes.index[-1]
            for closes in (read_adjusted_closes(self._path(s), s) for s in present)
            if len(closes)
        ]
        if not latest:
            # Header-only files: there is no latest session to default to, so say which.
            raise MarketDataError(
                f"no price rows in {', '.join(f'{s}.csv' for s in present)} in {self._dir}; "
                "no session to trade (pass --session or fill the files)"
            )
        return max(latest).date()
