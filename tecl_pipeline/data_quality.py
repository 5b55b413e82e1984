"""Can these closes be traded on for this session? (T1) Pure: no I/O, no Dagster."""

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from tecl_pipeline.errors import MarketDataError
from tecl_pipeline.universe import SYMBOLS, WARMUP_BARS


@dataclass(frozen=True)
class DataProblem:
    symbol: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.symbol}: {self.detail}"


def _symbol_problems(symbol: str, closes: pd.Series, session: date, warmup: int) -> list[str]:
    first, last = closes.first_valid_index(), closes.last_valid_index()
    if first is None or last is None:
        return [f"missing: no bars up to {session}"]
    problems = []
    if last.date() < session:
        problems.append(f"stale: latest bar is {last.date()}, expected session {session}")
    bars = closes.loc[first:last]
    gaps = bars.index[bars.isna().to_numpy()]
    if len(gaps):
        problems.append(f"nan: no price on {gaps[0].date()} ({len(gaps)} NaN in all)")
    values = bars.to_numpy(dtype=float)
    bad = ~np.isnan(values) & ((values <= 0) | ~np.isfinite(values))
    if bad.any():
        where = bars.index[bad][0].date()
        problems.append(f"non_positive: price {values[bad][0]} on {where}")
    if len(bars) < warmup:
        problems.append(f"too_short: {len(bars)} bars up to {last.date()}, needs {warmup}")
    return problems


def data_problems(
    closes: pd.DataFrame,
    session: date,
    symbols: tuple[str, ...] = SYMBOLS,
    warmup: int = WARMUP_BARS,
) -> list[DataProblem]:
    """Everything that makes `closes` unfit for deciding `session`, per symbol and date."""
    problems = []
    for symbol in symbols:
        if symbol not in closes.columns:
            problems.append(DataProblem(symbol, "missing", f"missing: no data for {symbol}"))
            continue
        for detail in _symbol_problems(symbol, closes[symbol], session, warmup):
            problems.append(DataProblem(symbol, detail.split(":", 1)[0], detail))
    return problems


def require_trustworthy(closes: pd.DataFrame, session: date) -> None:
    """Raise MarketDataError naming every symbol and date that is wrong."""
    problems = data_problems(closes, session)
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise MarketDataError(f"market data unfit for session {session}: {listed}")
