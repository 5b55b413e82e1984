"""Prices the simulator quotes, fills at and serves as bars: a session's close from the market
data source, divided by the symbol's cumulative split ratio.

Dividing every session by the same ratio keeps adjusted history consistent across a split,
as Alpaca's `adjustment=all` bars are (X2). Not thread-safe: the simulator's lock guards it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import pandas as pd

from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar
from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.core.portfolio import round_price
from tecl_pipeline.marketdata import MarketDataSource


@dataclass(frozen=True)
class DailyClose:
    session: date
    close: Decimal


class PriceBook:
    def __init__(self, market_data: MarketDataSource, calendar: TradingCalendar) -> None:
        self._market_data = market_data
        self._calendar = calendar
        self._ratios: dict[str, Decimal] = {}
        # One symbol's closes through one date; rebuilt when the clock moves past it, so the
        # cache stays one series per symbol however long a soak runs (C8).
        self._cache: dict[str, tuple[date, pd.Series | None]] = {}

    def reset(self) -> None:
        self._ratios.clear()
        self._cache.clear()

    def split(self, symbol: str, ratio: Decimal) -> None:
        self._ratios[symbol] = self.ratio(symbol) * ratio

    def ratio(self, symbol: str) -> Decimal:
        return self._ratios.get(symbol, Decimal(1))

    def ratios(self) -> dict[str, Decimal]:
        return dict(self._ratios)

    def set_ratios(self, ratios: Mapping[str, Decimal]) -> None:
        """Replace every cumulative split ratio (a book loaded from disk). The cache holds
        unadjusted closes, so it stays valid."""
        self._ratios = dict(ratios)

    def price_session(self, now: datetime) -> date:
        """The session whose close is "the price now": today's from its open on, before the
        open the previous session's."""
        local = now.astimezone(EXCHANGE_TZ)
        session = self._calendar.session_on_or_before(local.date())
        if session == local.date() and local < self._calendar.open_time(session):
            session = self._calendar.previous_session(session)
        return session

    def _series(self, symbol: str, through: date) -> pd.Series | None:
        cached = self._cache.get(symbol)
        if cached is None or cached[0] < through:
            try:
                frame = self._market_data.closes((symbol,), through)
            except MarketDataError:
                series = None
            else:
                series = frame[symbol].dropna() if symbol in frame.columns else None
            self._cache[symbol] = (through, series)
            cached = self._cache[symbol]
        series = cached[1]
        if series is None:
            return None
        return series.loc[: pd.Timestamp(through)]

    def closes(self, symbol: str, start: date, through: date) -> list[DailyClose]:
        """Split-adjusted closes for the sessions in start..through that the data have."""
        series = self._series(symbol, through)
        if series is None:
            return []
        window = series.loc[pd.Timestamp(start) :]
        ratio = self.ratio(symbol)
        return [
            DailyClose(stamp.date(), Decimal(str(value)) / ratio)
            for stamp, value in zip(pd.DatetimeIndex(window.index), window.tolist(), strict=True)
        ]

    def close(self, symbol: str, session: date) -> Decimal | None:
        """The latest split-adjusted close at or before `session`; None if the data have none.

        A feed that stopped short of the session keeps quoting its last close, as a halted or
        stale symbol does; the bars show the gap for the pipeline to notice (T1)."""
        series = self._series(symbol, session)
        if series is None or series.empty:
            return None
        return Decimal(str(series.iloc[-1])) / self.ratio(symbol)

    def price(self, symbol: str, session: date) -> Decimal | None:
        """The tradable price: the close at the broker's tick ($0.01, or $0.0001 below $1)."""
        close = self.close(symbol, session)
        return None if close is None else round_price(close, f"{symbol} close")
