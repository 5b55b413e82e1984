"""Can these closes be traded on for this session? (T1, T4) Pure: no I/O, no Dagster.

Problems come in two families, each behind its own blocking check: freshness (is every
symbol there, up to the session, with enough history) and schema (are the values sane:
no gaps, positive, dates in order, no move no real fund makes in a day).
"""

from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final

import numpy as np
import pandas as pd

from tecl_pipeline.errors import MarketDataError
from tecl_pipeline.universe import SYMBOLS, WARMUP_BARS

FRESHNESS_KINDS: Final = frozenset({"missing", "stale", "too_short"})
# The largest one-day move each fund can plausibly make without a corporate action. The real
# extremes (1993-2026) stay well inside: TECL +38.8% / -36.2%, UVXY +66%, SPY -10.9%. An
# unadjusted 2-for-1 split (-50%) or 1-for-5 reverse split (+400%) is far outside (T4, X2).
PLAUSIBLE_DAILY_MOVE: Final = MappingProxyType(
    {
        "SPY": 0.25,
        "XLK": 0.25,
        "KMLM": 0.25,
        "TQQQ": 0.45,
        "TECL": 0.45,
        "SPXL": 0.45,
        "SQQQ": 0.45,
        "UVXY": 1.0,
        "BIL": 0.05,
        "BSV": 0.10,
    }
)


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
    jump = _implausible_jump(symbol, bars)
    if jump:
        problems.append(jump)
    return problems


def _implausible_jump(symbol: str, bars: pd.Series) -> str | None:
    limit = PLAUSIBLE_DAILY_MOVE.get(symbol)
    if limit is None or len(bars) < 2:
        return None
    # Moves into or out of a non-positive price are that problem, reported on its own.
    moves = bars.where(bars > 0).pct_change(fill_method=None).to_numpy()
    beyond = np.abs(np.nan_to_num(moves)) > limit
    if not beyond.any():
        return None
    at = int(beyond.argmax())
    return (
        f"jump: close moved {moves[at]:+.1%} on {bars.index[at].date()} "
        f"({bars.iloc[at - 1]:.4f} -> {bars.iloc[at]:.4f}), beyond the plausible "
        f"±{limit:.0%} a day: an unadjusted split or a bad price"
    )


def _frame_problems(closes: pd.DataFrame) -> list[DataProblem]:
    if closes.index.has_duplicates:
        day = closes.index[closes.index.duplicated()][0]
        return [DataProblem("*", "schema", f"schema: date {day.date()} appears twice")]
    if not closes.index.is_monotonic_increasing:
        return [DataProblem("*", "schema", "schema: dates are not in ascending order")]
    return []


def data_problems(
    closes: pd.DataFrame,
    session: date,
    symbols: tuple[str, ...] = SYMBOLS,
    warmup: int = WARMUP_BARS,
) -> list[DataProblem]:
    """Everything that makes `closes` unfit for deciding `session`, per symbol and date."""
    problems = _frame_problems(closes)
    if problems:
        return problems
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
