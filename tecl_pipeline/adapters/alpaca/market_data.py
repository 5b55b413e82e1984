"""Alpaca market data: adjusted daily closes and latest trades, on alpaca-py's
`StockHistoricalDataClient`, with the same transport (timeout, retry, credentials refresh),
error mapping and schema checks as the trading adapter (B1-B4, B8).

Bars are always requested with `adjustment=all`: unadjusted bars turn a split into a fake
crash (or a reverse split into a fake rally) that the indicators would trade on (X2).
Bodies are validated here, not by alpaca-py's float models: a wrong shape is a
`MalformedResponseError` naming the endpoint (B3, X4); wrong content (a non-positive close,
a bar twice, a symbol without data) is a `MarketDataError` naming symbol and date (T1).
"""

import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeVar

import pandas as pd
from alpaca.common.enums import BaseURL, Sort
from alpaca.data.enums import Adjustment
from alpaca.data.enums import DataFeed as AlpacaFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame

from tecl_pipeline.adapters.alpaca.schema import (
    check_symbol,
    expect_object,
    timestamp_from_alpaca,
)
from tecl_pipeline.adapters.alpaca.transport import AlpacaService
from tecl_pipeline.common.endpoints import validate_endpoint
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.config.settings import ENV_KEYS, DataFeed
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.trading.credentials import CredentialsProvider
from tecl_pipeline.trading.errors import DataEntitlementError, MalformedResponseError
from tecl_pipeline.trading.models import Trade

T = TypeVar("T")

BARS_PAGE_LIMIT = 10_000  # Alpaca's maximum data points per page
MAX_BAR_PAGES = 1_000  # a guard against a server that keeps paging forever
DEFAULT_HISTORY_START = date(2000, 1, 1)


# How the session's daily bar, whose close is the decision price, is formed at decision time
# on each feed: the bar is still forming, so its close is the feed's latest trade.
_PRICE_BASIS = MappingProxyType(
    {
        AlpacaFeed.IEX: (
            "the close of the session's daily bar on the IEX feed, still forming at decision "
            "time: the latest trade on IEX (one exchange's share of volume; every plan)"
        ),
        AlpacaFeed.SIP: (
            "the close of the session's daily bar on the SIP feed, still forming at decision "
            "time: the latest trade on any US exchange, in real time (a paid plan)"
        ),
        AlpacaFeed.DELAYED_SIP: (
            "the close of the session's daily bar on the delayed SIP feed: the latest trade "
            "on any US exchange as of 15 minutes before (at a 15:45 decision, about 15:30)"
        ),
    }
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _number(value: object, what: str, endpoint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponseError(f"{endpoint}: {what} is not a number ({value!r})")
    return float(value)


def _bar_date(value: object, what: str, endpoint: str) -> date:
    """The session date of a daily bar: its timestamp read in exchange time."""
    stamp = timestamp_from_alpaca(value, f"the time of {what}", endpoint)
    # Daily bars are stamped at midnight New York time (04:00/05:00 UTC): in UTC the
    # date would still be right, but only exchange time is right for every bar size.
    return stamp.astimezone(EXCHANGE_TZ).date()


class AlpacaMarketData(AlpacaService[StockHistoricalDataClient]):
    """`MarketDataSource` over Alpaca's market data API (or a compatible simulator)."""

    def __init__(
        self,
        credentials: CredentialsProvider,
        *,
        url: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen, so sharing is safe
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        feed: DataFeed | str = DataFeed.IEX,
        history_start: date = DEFAULT_HISTORY_START,
        lookback_days: int = 30,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        api_url = validate_endpoint(url if url is not None else BaseURL.DATA.value)
        # Always named on the wire: left out, Alpaca picks SIP, which the free plan refuses
        # for the last 15 minutes, i.e. at decision time.
        self._feed = AlpacaFeed(DataFeed(feed).value)
        if lookback_days < 1:
            raise ValueError(f"lookback_days must be >= 1, got {lookback_days}")
        self._history_start = history_start
        self._lookback = timedelta(days=lookback_days)
        self._now = now
        super().__init__(
            api_url,
            StockHistoricalDataClient,
            credentials,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            rng=rng,
        )

    @property
    def description(self) -> str:
        return (
            f"Alpaca market data at {self._url} "
            f"(daily bars, adjustment=all, feed {self._feed.value})"
        )

    @property
    def price_basis(self) -> str:
        return _PRICE_BASIS[self._feed]

    @property
    def is_demo(self) -> bool:
        return False

    # -- MarketDataSource -----------------------------------------------------------------

    def closes(self, symbols: tuple[str, ...], through: date) -> pd.DataFrame:
        """Adjusted closes from `history_start` through `through`, one column per symbol.

        During a session Alpaca's bar for today is still forming: its close is the latest
        price. That is what a decision shortly before the close needs.
        """
        bars = self._daily_bars(symbols, self._history_start, through)
        empty = [s for s in symbols if not bars[s]]
        if empty:
            raise MarketDataError(
                f"Alpaca has no daily bars for {', '.join(empty)} between "
                f"{self._history_start} and {through}"
            )
        columns = {
            symbol: pd.Series(
                list(by_date.values()),
                index=pd.DatetimeIndex([pd.Timestamp(d) for d in by_date]),
                dtype="float64",
            )
            for symbol, by_date in bars.items()
        }
        frame = pd.DataFrame(columns).sort_index()
        frame.index.name = "date"
        return frame.loc[: pd.Timestamp(through), list(symbols)]

    def latest_session(self, symbols: tuple[str, ...]) -> date:
        """The date of the newest daily bar of any of `symbols` in the last `lookback_days`."""
        today = self._now().astimezone(EXCHANGE_TZ).date()
        start = today - self._lookback
        bars = self._daily_bars(symbols, start, today)
        dates = [d for by_date in bars.values() for d in by_date]
        if not dates:
            raise MarketDataError(
                f"Alpaca has no daily bars for any of {', '.join(symbols)} since {start}"
            )
        return max(dates)

    def latest_prices(self, symbols: tuple[str, ...]) -> dict[str, Decimal]:
        """The price of each symbol's latest trade: the live price at decision time."""
        trades = self.latest_trades(symbols)
        for symbol in symbols:
            if symbol not in trades:
                raise MarketDataError(f"{symbol}: Alpaca reported no latest trade")
        return {symbol: trade.price for symbol, trade in trades.items()}

    def latest_trades(self, symbols: tuple[str, ...]) -> dict[str, Trade]:
        """The latest trade (price, time, feed) of each of `symbols` that Alpaca quotes on
        the feed; a symbol without a trade is left out (Alpaca omits it from the answer)."""
        wanted = self._check_symbols(symbols)
        endpoint = "GET /v2/stocks/trades/latest"
        params: dict[str, Any] = {"symbols": ",".join(wanted), "feed": self._feed.value}

        def parse(body: object) -> dict[str, Trade]:
            trades = expect_object(body, endpoint).get("trades")
            if not isinstance(trades, Mapping):
                raise MalformedResponseError(f"{endpoint}: response lacks a 'trades' object")
            latest: dict[str, Trade] = {}
            for symbol in wanted:
                trade = trades.get(symbol)
                if trade is None:
                    continue
                trade = expect_object(trade, endpoint)
                if "p" not in trade or "t" not in trade:
                    raise MalformedResponseError(
                        f"{endpoint}: {symbol} trade lacks its price 'p' or time 't'"
                    )
                price = _number(trade["p"], f"{symbol} trade price", endpoint)
                if not math.isfinite(price) or price <= 0:
                    raise MarketDataError(f"{symbol}: latest trade price {price!r} is not positive")
                latest[symbol] = Trade(
                    # Via str, never the binary float (C3).
                    price=Decimal(str(price)),
                    at=timestamp_from_alpaca(trade["t"], f"the {symbol} trade's time", endpoint),
                    feed=self._feed.value,
                )
            return latest

        return self._read(endpoint, lambda c: c.get("/stocks/trades/latest", params), parse)

    def _read(
        self,
        endpoint: str,
        call: Callable[[StockHistoricalDataClient], Any],
        parse: Callable[[Any], T],
    ) -> T:
        """One read; a feed the account's plan does not include is named with its fix."""
        try:
            return self._conn.read(endpoint, call, parse)
        except DataEntitlementError as exc:
            raise DataEntitlementError(
                f"{exc}: the account's market data plan does not include feed "
                f"{self._feed.value} for this request; set {ENV_KEYS['data_feed']}=iex (every "
                "plan) or delayed_sip, or subscribe to a plan with real-time SIP data"
            ) from None

    # -- bars -----------------------------------------------------------------------------

    @staticmethod
    def _check_symbols(symbols: tuple[str, ...]) -> tuple[str, ...]:
        if not symbols:
            raise ValueError("no symbols requested")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols requested twice: {symbols}")
        return tuple(check_symbol(s) for s in symbols)

    def _daily_bars(
        self, symbols: tuple[str, ...], start: date, end: date
    ) -> dict[str, dict[date, float]]:
        """Closes by session date per symbol, every page read and validated."""
        wanted = self._check_symbols(symbols)
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        endpoint = "GET /v2/stocks/bars"
        request = StockBarsRequest(
            symbol_or_symbols=list(wanted),
            # alpaca-py declares TimeFrame.Day through an untyped classproperty.
            timeframe=TimeFrame.Day,  # pyright: ignore[reportArgumentType]
            adjustment=Adjustment.ALL,
            start=datetime.combine(start, clock_time(0, 0), EXCHANGE_TZ),
            end=datetime.combine(end, clock_time(23, 59, 59), EXCHANGE_TZ),
            feed=self._feed,
            sort=Sort.ASC,
        )
        # Plain strings on the wire (alpaca-py would pass its enum and TimeFrame objects).
        base = {
            key: str(getattr(value, "value", value))
            for key, value in request.to_request_fields().items()
        }
        base["limit"] = str(BARS_PAGE_LIMIT)
        closes: dict[str, dict[date, float]] = {s: {} for s in wanted}
        token: str | None = None
        tokens_seen: set[str] = set()

        def parse(body: object) -> tuple[Mapping[str, Any], str | None]:
            page = expect_object(body, endpoint)
            self._check_page(page, closes, endpoint)
            # Alpaca always sends the key (null on the last page); a renamed key must not
            # read as "no more pages" and silently cut the history short (B3).
            if "next_page_token" not in page:
                raise MalformedResponseError(f"{endpoint}: response lacks 'next_page_token'")
            next_token = page["next_page_token"]
            if next_token is not None and (not isinstance(next_token, str) or not next_token):
                raise MalformedResponseError(f"{endpoint}: bad or repeated next_page_token")
            return page, next_token

        for _ in range(MAX_BAR_PAGES):
            params = dict(base, page_token=token) if token else base
            page, token = self._read(endpoint, lambda c, p=params: c.get("/stocks/bars", p), parse)
            self._add_page(page, closes, endpoint)
            if token is None:
                return closes
            if token in tokens_seen:
                raise MalformedResponseError(f"{endpoint}: bad or repeated next_page_token")
            tokens_seen.add(token)
        raise MalformedResponseError(f"{endpoint}: still paging after {MAX_BAR_PAGES} pages")

    @classmethod
    def _check_page(
        cls, body: Mapping[str, Any], closes: dict[str, dict[date, float]], endpoint: str
    ) -> None:
        """The page's shape (a garbled answer is asked again), without adding its bars."""
        cls._add_page(body, {symbol: {} for symbol in closes}, endpoint)

    @staticmethod
    def _add_page(
        body: Mapping[str, Any], closes: dict[str, dict[date, float]], endpoint: str
    ) -> None:
        if "bars" not in body:
            raise MalformedResponseError(f"{endpoint}: response lacks 'bars'")
        bars = body["bars"]
        if bars is None:  # Alpaca sends null, not {}, when no symbol has bars
            return
        if not isinstance(bars, Mapping):
            raise MalformedResponseError(f"{endpoint}: 'bars' is not an object keyed by symbol")
        for symbol, items in bars.items():
            if symbol not in closes:
                raise MalformedResponseError(f"{endpoint}: bars for unrequested symbol {symbol!r}")
            if not isinstance(items, list):
                raise MalformedResponseError(f"{endpoint}: bars of {symbol} are not a list")
            for item in items:
                bar = expect_object(item, endpoint)
                if "t" not in bar or "c" not in bar:
                    raise MalformedResponseError(f"{endpoint}: a {symbol} bar lacks 't' or 'c'")
                session = _bar_date(bar["t"], f"a {symbol} bar", endpoint)
                close = _number(bar["c"], f"{symbol} close on {session}", endpoint)
                if not math.isfinite(close) or close <= 0:
                    raise MarketDataError(
                        f"{symbol}: close {close!r} on {session} is not a positive number"
                    )
                if session in closes[symbol]:
                    raise MarketDataError(f"{symbol}: two daily bars for {session}")
                closes[symbol][session] = close
