"""The read-only endpoints computed from the calendar and the prices: market data (daily bars,
latest trades), the clock and the trading calendar. Pure functions of the simulated time."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar
from tecl_pipeline.core.errors import UnknownSessionError
from tecl_pipeline.simulator import wire
from tecl_pipeline.simulator.model import DataPlan
from tecl_pipeline.simulator.pricing import PriceBook
from tecl_pipeline.simulator.wire import ApiError, invalid

_FEEDS = frozenset({"sip", "iex", "delayed_sip", "otc", "boats", "overnight"})
# Alpaca's answer on the Basic plan to SIP data from the last 15 minutes (sent without a
# code). Bars default to SIP, and their `end` to now, or to 15 minutes ago for a feed the plan
# has no real-time access to; latest trades default to SIP on Unlimited and to IEX on Basic.
RECENT_SIP_REFUSED = "subscription does not permit querying recent SIP data"
SIP_EMBARGO = timedelta(minutes=15)


def _realtime(plan: DataPlan, feed: str) -> bool:
    """Whether the plan includes the feed's data from the last 15 minutes."""
    return plan is DataPlan.UNLIMITED or feed != "sip"


_DAILY = frozenset({"1Day", "1D"})
_BAR_VOLUME = 1_000_000
_BAR_TRADES = 10_000

_Item = tuple[str, dict[str, Any]]


def is_open(calendar: TradingCalendar, now: datetime) -> bool:
    session = calendar.session_for(now)
    return session is not None and calendar.open_time(session) <= now < calendar.close_time(session)


def working_session(calendar: TradingCalendar, now: datetime) -> date:
    """The session an order sent now trades in: today's until its close, else the next one."""
    session = calendar.session_for(now)
    if session is not None and now < calendar.close_time(session):
        return session
    return calendar.next_session(now.astimezone(EXCHANGE_TZ).date())


def clock(calendar: TradingCalendar, now: datetime) -> dict[str, Any]:
    """GET /v2/clock, in New York time with its offset, as Alpaca sends it."""
    session = calendar.session_for(now)
    open_now = is_open(calendar, now)
    if session is not None and now < calendar.open_time(session):
        next_open = calendar.open_time(session)
    else:
        next_open = calendar.open_time(calendar.next_session(now.astimezone(EXCHANGE_TZ).date()))
    if open_now and session is not None:
        next_close = calendar.close_time(session)
    else:
        next_close = calendar.close_time(next_open.date())
    return {
        "timestamp": wire.exchange_time(now),
        "is_open": open_now,
        "next_open": wire.exchange_time(next_open),
        "next_close": wire.exchange_time(next_close),
    }


def calendar_days(calendar: TradingCalendar, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET /v2/calendar?start=&end= (dates), within the calendar's range."""
    first, last = calendar.first_session, calendar.last_session
    start = max(_date_param(query, "start", first), first)
    end = min(_date_param(query, "end", last), last)
    days = calendar.sessions(start, end) if start <= end else []
    return [
        {
            "date": day.isoformat(),
            "open": f"{calendar.open_time(day):%H:%M}",
            "close": f"{calendar.close_time(day):%H:%M}",
            "session_open": "0400",
            "session_close": "2000",
            "settlement_date": _next_day(calendar, day).isoformat(),
        }
        for day in days
    ]


def _next_day(calendar: TradingCalendar, day: date) -> date:
    try:
        return calendar.next_session(day)
    except UnknownSessionError:  # the calendar's last session: a weekday is close enough
        return day + timedelta(days=1)


def _date_param(query: Mapping[str, str], key: str, default: date) -> date:
    text = query.get(key)
    if not text:
        return default
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise invalid(f"invalid {key}: {text!r}") from None


def _feed(query: Mapping[str, str], default: str) -> str:
    feed = query.get("feed") or default
    if feed not in _FEEDS:
        raise invalid(f"invalid feed {feed!r}")
    return feed


def _entitled(plan: DataPlan, feed: str, now: datetime, end: datetime) -> None:
    """Refused as Alpaca refuses it: data up to `end` that the plan has only delayed."""
    if not _realtime(plan, feed) and end > now - SIP_EMBARGO:
        raise ApiError(403, None, RECENT_SIP_REFUSED)


def bars(
    prices: PriceBook, now: datetime, query: Mapping[str, str], plan: DataPlan
) -> dict[str, Any]:
    """GET /v2/stocks/bars: adjusted daily bars up to and including the clock's session,
    ordered by symbol then time, `limit` bars per page across all symbols."""
    symbols = wire.symbols_param(query)
    timeframe = query.get("timeframe")
    if timeframe not in _DAILY:
        raise invalid(f"invalid timeframe {timeframe!r}: the simulator serves only 1Day bars")
    adjustment = query.get("adjustment", "raw")  # Alpaca's default is raw
    if adjustment != "all":
        raise invalid(
            f"the simulator serves only adjusted bars (adjustment=all), not adjustment={adjustment}"
        )
    sort = query.get("sort", "asc")
    if sort not in ("asc", "desc"):
        raise invalid(f"invalid sort {sort!r}: use asc or desc")
    limit = wire.parse_int(query.get("limit", "1000"), "limit", 1, 10_000)
    # Alpaca's default window: from the beginning of the current day until now.
    today = datetime.combine(now.astimezone(EXCHANGE_TZ).date(), time(0), EXCHANGE_TZ)
    feed = _feed(query, "sip")
    start = wire.parse_time(query["start"], "start") if query.get("start") else today
    latest = now if _realtime(plan, feed) else now - SIP_EMBARGO
    end = wire.parse_time(query["end"], "end") if query.get("end") else latest
    if end < start:
        raise invalid("end should not be before start")
    _entitled(plan, feed, now, end)
    through = prices.price_session(now)
    first = start.astimezone(EXCHANGE_TZ).date() - timedelta(days=1)
    items: list[_Item] = []
    for symbol in sorted(symbols):
        if first > through:
            break
        rows = [
            (symbol, _bar(c.session, c.close))
            for c in prices.closes(symbol, first, through)
            if start <= _bar_moment(c.session) <= end
        ]
        items.extend(reversed(rows) if sort == "desc" else rows)
    offset = _page_offset(query.get("page_token"), items)
    page: dict[str, list[dict[str, Any]]] = {}
    for symbol, bar in items[offset : offset + limit]:
        page.setdefault(symbol, []).append(bar)
    following = items[offset + limit] if offset + limit < len(items) else None
    return {
        "bars": page,
        "next_page_token": None if following is None else _page_token(following),
    }


def latest_trades(
    prices: PriceBook,
    calendar: TradingCalendar,
    now: datetime,
    query: Mapping[str, str],
    plan: DataPlan,
) -> dict[str, Any]:
    """GET /v2/stocks/trades/latest: one trade per symbol at the simulated price, stamped
    now (at the close once it has passed); on the delayed SIP feed, 15 minutes earlier, as
    that feed's latest trade is."""
    symbols = wire.symbols_param(query)
    feed = _feed(query, "sip" if plan is DataPlan.UNLIMITED else "iex")
    _entitled(plan, feed, now, now)
    session = prices.price_session(now)
    seen = now - SIP_EMBARGO if feed == "delayed_sip" else now
    stamp = wire.utc_time(min(seen, calendar.close_time(session)))
    trades = {}
    for symbol in symbols:
        price = prices.price(symbol, session)
        if price is not None:
            trades[symbol] = {
                "t": stamp,
                "x": "V",
                "p": float(price),
                "s": 100,
                "c": ["@"],
                "i": session.toordinal(),
                "z": "B",
            }
    return {"trades": trades}


def _bar_moment(session: date) -> datetime:
    return datetime.combine(session, time(0), tzinfo=EXCHANGE_TZ).astimezone(UTC)


def _bar(session: date, close: Decimal) -> dict[str, Any]:
    # Market data prices are JSON numbers at Alpaca; the close goes out unrounded, so that bars
    # equal the source's closes exactly when there was no split.
    price = float(close)
    return {
        "t": wire.bar_time(session),
        "o": price,
        "h": price,
        "l": price,
        "c": price,
        "v": _BAR_VOLUME,
        "n": _BAR_TRADES,
        "vw": price,
    }


def _page_token(item: _Item) -> str:
    symbol, bar = item
    return base64.urlsafe_b64encode(f"{symbol}|{bar['t']}".encode()).decode()


def _page_offset(token: str | None, items: Sequence[_Item]) -> int:
    if not token:
        return 0
    try:
        symbol, stamp = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid("invalid page_token") from None
    for index, (item_symbol, bar) in enumerate(items):
        if item_symbol == symbol and bar["t"] == stamp:
            return index
    raise invalid("invalid page_token")
