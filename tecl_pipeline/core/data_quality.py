"""Can these closes be traded on for this session? (T1, T4, X2) Pure: no I/O, no Dagster.

Problems come in two families, each behind its own blocking check: freshness (is every
symbol there, up to the session, with enough history) and schema (are the values sane:
dates unique, in order and on the XNYS calendar, no session missing inside the indicator
window, positive, no move the fund cannot make in a day).
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from types import MappingProxyType
from typing import Final

import numpy as np
import pandas as pd

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.core.errors import MarketDataError, UnknownSessionError
from tecl_pipeline.core.universe import FUNDS, SYMBOLS, WARMUP_BARS

FRESHNESS_KINDS: Final = frozenset({"missing", "stale", "too_short"})
# The largest one-day move, as |ln(close / previous close)|, of each kind of underlying
# without a corporate action, a little beyond the real extremes since 1993: US equity
# 0.149 (XLK 2001; SPY 0.136 in 2008), VIX short-term futures about 0.29 (2018-02-05),
# managed futures 0.053, short bonds 0.034, T-bills 0.004. Times the leverage, the real
# extremes of the funds still fit: TECL 0.449 (2020-03-16) under 0.51, UVXY 0.508 (at 2x
# in 2018; 0.459 at 1.5x in 2024) under 0.57. A day beyond the bound that is real (a
# circuit-breaker crash) is refused and left to a person: trading on a phantom is worse.
UNDERLYING_DAILY_MOVE: Final = MappingProxyType(
    {
        "us_equity": 0.17,
        "managed_futures": 0.25,
        "vix_futures": 0.38,
        "treasury_bills": 0.05,
        "short_bonds": 0.10,
    }
)
# A 2:1 split halves an unadjusted close and a 1:2 reverse split doubles it: |ln| = ln 2.
# No bound may reach that, whatever a fund's leverage, or such a split would pass as a move.
SPLIT_SAFE_MOVE: Final = 0.6


def plausible_daily_move(symbol: str) -> float | None:
    """The fund's bound on |ln(close / previous close)|: its leverage times what its
    underlying can do in a day, never as far as a split of ratio 2; None if unknown."""
    fund = FUNDS.get(symbol)
    if fund is None:
        return None
    return min(abs(fund.leverage) * UNDERLYING_DAILY_MOVE[fund.underlying], SPLIT_SAFE_MOVE)


@dataclass(frozen=True)
class Split:
    """A split the data source reports: from `ex_date` on, one old share is `ratio` new
    ones (2 for a 2:1 split, 0.5 for a 1:2 reverse split)."""

    symbol: str
    ex_date: date
    ratio: float

    @property
    def label(self) -> str:
        ratio = Fraction(self.ratio).limit_denominator(1000)
        return f"{ratio.numerator}:{ratio.denominator}"


@dataclass(frozen=True)
class DataProblem:
    symbol: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.symbol}: {self.detail}"


@dataclass(frozen=True)
class ProblemGroup:
    """One problem shared by several symbols: a session missing from every file is one
    finding, not ten lines that differ only in the symbol."""

    symbols: tuple[str, ...]
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{', '.join(self.symbols)}: {self.detail}"


def group_problems(problems: Iterable[DataProblem]) -> list[ProblemGroup]:
    """`problems` with identical details merged, in order of first appearance."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for problem in problems:
        grouped.setdefault((problem.kind, problem.detail), []).append(problem.symbol)
    return [
        ProblemGroup(tuple(symbols), kind, detail) for (kind, detail), symbols in grouped.items()
    ]


def describe_problems(problems: Iterable[DataProblem]) -> str:
    """The problems in one line, each finding once with every symbol it concerns."""
    return "; ".join(str(group) for group in group_problems(problems))


@dataclass(frozen=True)
class _Calendar:
    """The frame's dates seen through the exchange calendar, computed once per frame."""

    on_calendar: np.ndarray
    """Per row: a session, or a day outside the calendar's range, which it cannot judge."""
    window: pd.DatetimeIndex
    """The sessions the indicators use: the last `warmup` up to the session."""
    reasons: MappingProxyType[pd.Timestamp, str]
    """Why each off-calendar row is not a session, in the calendar's words."""


def _calendar_view(
    index: pd.DatetimeIndex, session: date, calendar: TradingCalendar, warmup: int
) -> _Calendar:
    window = pd.DatetimeIndex([pd.Timestamp(d) for d in calendar.sessions_ending(session, warmup)])
    on_calendar, reasons = _off_calendar(index, calendar)
    return _Calendar(on_calendar, window, reasons)


def _off_calendar(
    index: pd.DatetimeIndex, calendar: TradingCalendar
) -> tuple[np.ndarray, MappingProxyType[pd.Timestamp, str]]:
    known = (calendar.first_session, calendar.last_session)
    sessions = frozenset(calendar.sessions(*known))
    # `index.date` converts the whole index at once; a Timestamp per row costs far more.
    on_calendar = np.array(
        [not known[0] <= day <= known[1] or day in sessions for day in index.date],
        dtype=bool,
    )
    reasons = {}
    for ts in index[~on_calendar]:
        try:
            calendar.require_session(ts.date())
        except UnknownSessionError as exc:  # the calendar's own words: weekend, holiday
            reasons[ts] = str(exc).split(";", 1)[0]
    return on_calendar, MappingProxyType(reasons)


def _extra_bars(bars: pd.Series, reasons: Mapping[pd.Timestamp, str]) -> str | None:
    if not reasons:
        return None
    extra = [ts for ts in bars.dropna().index if ts in reasons]
    if not extra:
        return None
    return f"off_calendar: a bar on {extra[0].date()}, but {reasons[extra[0]]}" + (
        f" ({len(extra)} such bars in all)" if len(extra) > 1 else ""
    )


def require_sessions_only(
    closes: pd.DataFrame, calendar: TradingCalendar, symbols: tuple[str, ...] = SYMBOLS
) -> None:
    """Raise MarketDataError naming each symbol with a bar on a day that is not a session:
    a history computed over every bar would shift each SMA and RSI after it, and the other
    symbols would look gapped on that day."""
    _, reasons = _off_calendar(pd.DatetimeIndex(closes.index), calendar)
    found = [
        f"{symbol}: {problem}"
        for symbol in symbols
        if symbol in closes.columns
        and (problem := _extra_bars(closes[symbol], reasons)) is not None
    ]
    if found:
        raise MarketDataError("market data unfit for the history: " + "; ".join(found))


def _calendar_problems(bars: pd.Series, view: _Calendar) -> list[str]:
    """Bars on days that are not sessions, and sessions inside the indicator window missing
    after the symbol's first bar (a fund's listing is no gap): either shifts SMA and RSI."""
    problems = []
    present = bars.dropna()
    extra = _extra_bars(bars, view.reasons)
    if extra:
        problems.append(extra)
    if len(present):
        first = present.index[0]
        last = present.index[-1]  # sessions after it make the symbol stale, not gapped
        window = view.window
        inside = window[(window >= first) & (window <= last)]
        absent = inside[~inside.isin(bars.index)]
        if len(absent):
            problems.append(
                f"gap: no bar for session {absent[0].date()} inside the indicator window "
                f"({view.window[0].date()}..{view.window[-1].date()}; "
                f"{len(absent)} session(s) missing)"
            )
    return problems


def _symbol_problems(
    symbol: str,
    closes: pd.Series,
    session: date,
    warmup: int,
    view: _Calendar,
    splits: tuple[Split, ...],
) -> list[str]:
    # By position: the first to the last priced row (dates are unique, see _frame_problems).
    priced = np.flatnonzero(closes.notna().to_numpy())
    if not priced.size:
        return [f"missing: no bars up to {session}"]
    last = pd.DatetimeIndex(closes.index)[priced[-1]].date()
    problems = []
    if last < session:
        problems.append(f"stale: latest bar is {last}, expected session {session}")
    span = slice(int(priced[0]), int(priced[-1]) + 1)
    # A row that is no session exists only because some symbol has a bar there: reported
    # for that symbol as off the calendar, not as a missing price of every other one.
    bars = closes.iloc[span][view.on_calendar[span] | closes.iloc[span].notna().to_numpy()]
    dates = pd.DatetimeIndex(bars.index)
    gaps = dates[bars.isna().to_numpy()]
    if len(gaps):
        problems.append(f"nan: no price on {gaps[0].date()} ({len(gaps)} NaN in all)")
    values = bars.to_numpy(dtype=float)
    bad = ~np.isnan(values) & ((values <= 0) | ~np.isfinite(values))
    if bad.any():
        where = dates[bad][0].date()
        problems.append(f"non_positive: price {values[bad][0]} on {where}")
    if len(bars) < warmup:
        problems.append(f"too_short: {len(bars)} bars up to {last}, needs {warmup}")
    problems += _calendar_problems(bars, view)
    for found in (_implausible_jump(symbol, bars), _unadjusted_split(symbol, bars, splits)):
        if found:
            problems.append(found)
    return problems


def _implausible_jump(symbol: str, bars: pd.Series) -> str | None:
    limit = plausible_daily_move(symbol)
    if limit is None or len(bars) < 2:
        return None
    # Moves into or out of a non-positive price are that problem, reported on its own.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = bars.where(bars > 0).pct_change(fill_method=None).to_numpy() + 1
        moves = np.log(ratios)
    beyond = np.abs(np.nan_to_num(moves)) > limit
    if not beyond.any():
        return None
    at = int(beyond.argmax())
    fund = FUNDS[symbol]
    return (
        f"jump: close moved {ratios[at] - 1:+.1%} on {bars.index[at].date()} "
        f"({bars.iloc[at - 1]:.4f} -> {bars.iloc[at]:.4f}), beyond the "
        f"{math.exp(-limit) - 1:+.0%}..{math.exp(limit) - 1:+.0%} a day a "
        f"{fund.leverage:g}x {fund.underlying.replace('_', ' ')} fund makes without a "
        "corporate action: an unadjusted split or a bad price"
    )


def _unadjusted_split(symbol: str, bars: pd.Series, splits: Iterable[Split]) -> str | None:
    """A split the source reports whose ex-date move undoes into an ordinary day: the closes
    were not adjusted for it. This catches what the one-day bound cannot (a 3:2 split of a
    3x fund is a move the fund can make), and names the split where the bound fired too."""
    limit = plausible_daily_move(symbol)
    positive = bars[bars > 0]
    for split in splits:
        day = pd.Timestamp(split.ex_date)
        if split.symbol != symbol or split.ratio <= 0 or day not in positive.index:
            continue
        at = positive.index.get_loc(day)
        if not isinstance(at, int) or at == 0:
            continue
        before, after = float(positive.iloc[at - 1]), float(positive.iloc[at])
        move = math.log(after / before)
        undone = move + math.log(split.ratio)
        if abs(undone) < abs(move) and (limit is None or abs(undone) <= limit):
            return (
                f"unadjusted_split: the data source reports a {split.label} split on "
                f"{split.ex_date}, and the close moved {after / before - 1:+.1%} that day "
                f"({before:.4f} -> {after:.4f}): the closes are not adjusted for it"
            )
    return None


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
    calendar: TradingCalendar,
    symbols: tuple[str, ...] = SYMBOLS,
    warmup: int = WARMUP_BARS,
    splits: Iterable[Split] = (),
) -> list[DataProblem]:
    """Everything that makes `closes` unfit for deciding `session`, per symbol and date.

    `splits` are the corporate actions the data source reports: where one explains a move
    in the closes, the closes were not adjusted for it."""
    reported = tuple(splits)
    problems = _frame_problems(closes)
    if problems:
        return problems
    view = _calendar_view(pd.DatetimeIndex(closes.index), session, calendar, warmup)
    for symbol in symbols:
        if symbol not in closes.columns:
            # The symbol is the problem's own field: a detail without it merges across symbols.
            problems.append(DataProblem(symbol, "missing", "missing: no data"))
            continue
        for detail in _symbol_problems(symbol, closes[symbol], session, warmup, view, reported):
            problems.append(DataProblem(symbol, detail.split(":", 1)[0], detail))
    return problems


def require_trustworthy(closes: pd.DataFrame, session: date, calendar: TradingCalendar) -> None:
    """Raise MarketDataError naming every symbol and date that is wrong."""
    problems = data_problems(closes, session, calendar)
    if problems:
        listed = describe_problems(problems)
        raise MarketDataError(f"market data unfit for session {session}: {listed}")
