"""NYSE (XNYS) trading sessions, early closes and the daily decision time (T2, T3).

Wraps `exchange_calendars` once per `TradingCalendar` and answers every question from plain
Python structures built at construction, so the rest of the pipeline never touches pandas
timestamps and always gets `date`s for sessions and tz-aware America/New_York `datetime`s for
moments.

A query outside the range the calendar was built for raises `UnknownSessionError` instead of
answering "not a session": a long-running process whose calendar has run out must stop loudly,
not silently skip every session from then on.
"""

from __future__ import annotations

import warnings
from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pandas as pd
from exchange_calendars.exchange_calendar_xnys import XNYSExchangeCalendar

from tecl_pipeline.core.errors import UnknownSessionError

if TYPE_CHECKING:
    from collections.abc import Mapping

EXCHANGE_TZ = ZoneInfo("America/New_York")
# The strategy decides on (almost) closing prices and needs time to place and fill its orders
# before the close, early closes included.
DECISION_LEAD = timedelta(minutes=15)

_CALENDAR_NAME = "XNYS"


def _require_day(value: object, name: str) -> date:
    """A session is a calendar day in New York; a datetime would smuggle in a clock and a zone."""
    if isinstance(value, datetime):
        raise ValueError(
            f"{name} must be a date, not a datetime ({value!r}); convert the moment to "
            f"America/New_York first, or use TradingCalendar.session_for(moment)"
        )
    if not isinstance(value, date):
        raise TypeError(f"{name} must be a datetime.date, got {type(value).__name__}: {value!r}")
    return value


def _require_aware(moment: object, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}: {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name} is a naive datetime ({moment.isoformat()}); the pipeline only accepts "
            f"timezone-aware datetimes (exchange time is America/New_York)"
        )
    return moment


def _build_xnys(start: date, end: date | None) -> XNYSExchangeCalendar:
    # exchange_calendars 4.13 trips a pandas 3 deprecation (Series.values on tz-aware data)
    # inside its own constructor; it is not ours to fix and would drown the test output.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Series\.values returning an ndarray that drops timezone"
        )
        return XNYSExchangeCalendar(
            start=pd.Timestamp(start), end=None if end is None else pd.Timestamp(end)
        )


def _to_exchange_time(ts: pd.Timestamp) -> datetime:
    return ts.to_pydatetime().astimezone(EXCHANGE_TZ)


class TradingCalendar:
    """XNYS sessions between `start` and `end` (default: exchange_calendars' default end,
    about one year after the library was imported)."""

    def __init__(self, start: date = date(2000, 1, 1), end: date | None = None) -> None:
        start = _require_day(start, "start")
        if end is not None:
            end = _require_day(end, "end")
            if end < start:
                raise ValueError(f"calendar end {end} is before its start {start}")
        xnys = _build_xnys(start, end)
        schedule = xnys.schedule
        sessions = tuple(ts.date() for ts in schedule.index)
        if not sessions:
            raise ValueError(f"no XNYS session between {start} and {end}")

        self._xnys = xnys  # kept only to name holidays in error messages
        self._range_start = start
        self._range_end = end if end is not None else xnys.default_end().date()
        self._sessions = sessions
        # Plain dicts, private and never mutated after construction: MappingProxyType would
        # make the calendar unpicklable.
        self._opens: Mapping[date, datetime] = {
            day: _to_exchange_time(ts) for day, ts in zip(sessions, schedule["open"], strict=True)
        }
        self._closes: Mapping[date, datetime] = {
            day: _to_exchange_time(ts) for day, ts in zip(sessions, schedule["close"], strict=True)
        }
        session_set = frozenset(sessions)
        self._session_set = session_set
        self._early_closes = frozenset(
            ts.date() for ts in xnys.early_closes if ts.date() in session_set
        )

    def __repr__(self) -> str:
        return (
            f"TradingCalendar({_CALENDAR_NAME}, range {self._range_start}..{self._range_end}, "
            f"{len(self._sessions)} sessions)"
        )

    # -- range -----------------------------------------------------------------------------

    @property
    def first_session(self) -> date:
        return self._sessions[0]

    @property
    def last_session(self) -> date:
        return self._sessions[-1]

    def _check_in_range(self, day: date, name: str = "day") -> date:
        day = _require_day(day, name)
        if not self._range_start <= day <= self._range_end:
            raise UnknownSessionError(
                f"{day.isoformat()} is outside this trading calendar's range "
                f"{self._range_start.isoformat()}..{self._range_end.isoformat()}; "
                f"build TradingCalendar with a range that covers it"
            )
        return day

    # -- sessions --------------------------------------------------------------------------

    def is_session(self, day: date) -> bool:
        return self._check_in_range(day) in self._session_set

    def sessions(self, start: date, end: date) -> list[date]:
        """Sessions from `start` to `end`, both inclusive."""
        start, end = self._check_range(start, end)
        lo = bisect_left(self._sessions, start)
        hi = bisect_right(self._sessions, end)
        return list(self._sessions[lo:hi])

    def sessions_ending(self, end: date, count: int) -> list[date]:
        """The last `count` sessions up to and including `end`; fewer only where the
        calendar's range begins."""
        end = self._check_in_range(end, "end")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        hi = bisect_right(self._sessions, end)
        return list(self._sessions[max(0, hi - count) : hi])

    def non_session_weekdays(self, start: date, end: date) -> list[date]:
        """Weekdays without a session (holidays and ad-hoc closures), both ends inclusive.

        These are the exclusions a weekday-based Dagster partitions definition needs to have
        exactly one partition per session.
        """
        start, end = self._check_range(start, end)
        days = (start + timedelta(days=offset) for offset in range((end - start).days + 1))
        return [day for day in days if day.weekday() < 5 and day not in self._session_set]

    def _check_range(self, start: date, end: date) -> tuple[date, date]:
        start = self._check_in_range(start, "start")
        end = self._check_in_range(end, "end")
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        return start, end

    def require_session(self, day: date) -> date:
        """`day` itself if it is a session; otherwise UnknownSessionError saying why and
        naming the neighbouring sessions."""
        day = self._check_in_range(day)
        if day in self._session_set:
            return day
        raise UnknownSessionError(
            f"{day.isoformat()} ({day:%A}) is not an {_CALENDAR_NAME} trading session: "
            f"{self._why_closed(day)}; previous session {self._neighbour(day, before=True)}, "
            f"next session {self._neighbour(day, before=False)}"
        )

    def _why_closed(self, day: date) -> str:
        if day.weekday() >= 5:
            return "weekend"
        stamp = pd.Timestamp(day)
        names = self._xnys.regular_holidays.holidays(stamp, stamp, return_name=True)
        if len(names):
            return f"exchange holiday ({names.iloc[0]})"
        return "exchange closed (ad-hoc closure)"

    def _neighbour(self, day: date, *, before: bool) -> str:
        try:
            found = self.previous_session(day) if before else self.next_session(day)
        except UnknownSessionError:
            return "none within the calendar's range"
        return found.isoformat()

    def previous_session(self, day: date) -> date:
        """The last session strictly before `day` (which need not be a session)."""
        day = self._check_in_range(day)
        index = bisect_left(self._sessions, day)
        if index == 0:
            raise UnknownSessionError(
                f"no session before {day.isoformat()} within the calendar's range "
                f"(first session {self.first_session.isoformat()})"
            )
        return self._sessions[index - 1]

    def next_session(self, day: date) -> date:
        """The first session strictly after `day` (which need not be a session)."""
        day = self._check_in_range(day)
        index = bisect_right(self._sessions, day)
        if index == len(self._sessions):
            raise UnknownSessionError(
                f"no session after {day.isoformat()} within the calendar's range "
                f"(last session {self.last_session.isoformat()})"
            )
        return self._sessions[index]

    def session_on_or_before(self, day: date) -> date:
        day = self._check_in_range(day)
        return day if day in self._session_set else self.previous_session(day)

    # -- times -----------------------------------------------------------------------------

    def open_time(self, session: date) -> datetime:
        return self._opens[self.require_session(session)]

    def close_time(self, session: date) -> datetime:
        """The close in exchange time; early closes (13:00) included."""
        return self._closes[self.require_session(session)]

    def is_early_close(self, session: date) -> bool:
        return self.require_session(session) in self._early_closes

    def decision_time(self, session: date) -> datetime:
        """`DECISION_LEAD` before the close: 15:45 normally, 12:45 on early closes."""
        close = self.close_time(session)
        # Subtract in UTC: wall-clock arithmetic on a zoned datetime is wrong across a DST
        # change, and being right by construction costs nothing.
        return (close.astimezone(UTC) - DECISION_LEAD).astimezone(EXCHANGE_TZ)

    def next_decision_time(self, moment: datetime) -> datetime:
        """The first session decision time at or after `moment`."""
        local = exchange_time(moment)
        session = self.session_on_or_before(local.date())
        while self.decision_time(session) < local:
            session = self.next_session(session)
        return self.decision_time(session)

    def session_for(self, moment: datetime) -> date | None:
        """The session whose New York calendar day contains `moment`; None on other days."""
        local = _require_aware(moment, "moment").astimezone(EXCHANGE_TZ)
        day = local.date()
        return day if self.is_session(day) else None


def exchange_time(moment: datetime) -> datetime:
    """`moment` (tz-aware) expressed in America/New_York."""
    return _require_aware(moment, "moment").astimezone(EXCHANGE_TZ)
