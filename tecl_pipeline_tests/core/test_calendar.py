"""Trading calendar: sessions, holidays, early closes, decision time, time zones (T2, T3).

Expected dates come from the published NYSE holiday schedule and the weekday rule, never from
the calendar under test.
"""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tecl_pipeline.core.calendar import DECISION_LEAD, EXCHANGE_TZ, TradingCalendar, exchange_time
from tecl_pipeline.core.errors import UnknownSessionError

NEW_YORK = ZoneInfo("America/New_York")
THANKSGIVING_2026 = date(2026, 11, 26)
# NYSE's published 2026 holidays (July 4th falls on a Saturday and is observed on the 3rd).
NYSE_HOLIDAYS_2026 = [
    date(2026, 1, 1),
    date(2026, 1, 19),
    date(2026, 2, 16),
    date(2026, 4, 3),
    date(2026, 5, 25),
    date(2026, 6, 19),
    date(2026, 7, 3),
    date(2026, 9, 7),
    date(2026, 11, 26),
    date(2026, 12, 25),
]


@pytest.fixture(scope="module")
def cal() -> TradingCalendar:
    # An explicit end keeps these tests independent of the day they run on.
    return TradingCalendar(start=date(2018, 1, 1), end=date(2027, 6, 30))


def _weekdays(start: date, end: date) -> list[date]:
    days = (start + timedelta(days=n) for n in range((end - start).days + 1))
    return [day for day in days if day.weekday() < 5]


def _ny(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


def test_thanksgiving_is_not_a_session(cal: TradingCalendar) -> None:
    """T3: no run on exchange holidays."""
    assert not cal.is_session(THANKSGIVING_2026)
    assert cal.is_session(date(2026, 11, 25))


def test_day_after_thanksgiving_closes_early_and_decides_at_1245(cal: TradingCalendar) -> None:
    """T3: on an early-close day the decision moves before the 13:00 close. T2: in NY time."""
    session = date(2026, 11, 27)
    assert cal.is_session(session)
    assert cal.is_early_close(session)
    assert cal.close_time(session) == _ny(session, 13, 0)
    decision = cal.decision_time(session)
    assert decision == _ny(session, 12, 45)
    assert decision.tzinfo == EXCHANGE_TZ
    assert decision.astimezone(UTC) == datetime(2026, 11, 27, 17, 45, tzinfo=UTC)


def test_christmas_eve_closes_early(cal: TradingCalendar) -> None:
    """T3: Christmas Eve 2026 is an early close; Christmas Day is a holiday."""
    session = date(2026, 12, 24)
    assert cal.is_early_close(session)
    assert cal.close_time(session) == _ny(session, 13, 0)
    assert cal.decision_time(session) == _ny(session, 12, 45)
    assert not cal.is_session(date(2026, 12, 25))


@pytest.mark.parametrize(
    ("closure", "before", "after"),
    [
        (date(2025, 1, 9), date(2025, 1, 8), date(2025, 1, 10)),  # President Carter's funeral
        (date(2018, 12, 5), date(2018, 12, 4), date(2018, 12, 6)),  # President Bush's funeral
    ],
)
def test_adhoc_closures_are_excluded(
    cal: TradingCalendar, closure: date, before: date, after: date
) -> None:
    """T3: unscheduled closures are not sessions and are partition exclusions."""
    assert not cal.is_session(closure)
    assert closure in cal.non_session_weekdays(closure - timedelta(days=7), closure)
    assert cal.previous_session(closure) == before
    assert cal.next_session(closure) == after
    with pytest.raises(UnknownSessionError, match=r"ad-hoc closure"):
        cal.require_session(closure)


def test_normal_day(cal: TradingCalendar) -> None:
    """T2: a regular session opens 09:30, closes 16:00 and decides at 15:45 exchange time."""
    session = date(2026, 11, 25)
    assert not cal.is_early_close(session)
    assert cal.open_time(session) == _ny(session, 9, 30)
    assert cal.close_time(session) == _ny(session, 16, 0)
    assert cal.decision_time(session) == _ny(session, 15, 45)
    assert cal.decision_time(session).utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize(
    ("session", "utc_hour"),
    [
        (date(2026, 3, 6), 20),  # Friday before DST starts (2026-03-08): EST, UTC-5
        (date(2026, 3, 9), 19),  # Monday after: EDT, UTC-4
        (date(2026, 10, 30), 19),  # Friday before DST ends (2026-11-01): EDT
        (date(2026, 11, 2), 20),  # Monday after: EST
    ],
)
def test_decision_time_follows_dst(cal: TradingCalendar, session: date, utc_hour: int) -> None:
    """T2: 15:45 New York is 20:45 UTC in winter and 19:45 UTC in summer."""
    decision = cal.decision_time(session)
    assert decision.astimezone(EXCHANGE_TZ).time() == time(15, 45)
    assert decision.astimezone(UTC) == datetime.combine(session, time(utc_hour, 45), tzinfo=UTC)


def test_every_session_decides_fifteen_minutes_before_its_close(cal: TradingCalendar) -> None:
    """T2/T3: across every session, decision = close - 15 min, at 15:45 or (early) 12:45 NY."""
    for session in cal.sessions(date(2018, 1, 1), date(2027, 6, 30)):
        close = cal.close_time(session)
        decision = cal.decision_time(session)
        assert close - decision == DECISION_LEAD
        assert cal.open_time(session) < decision
        expected = time(12, 45) if cal.is_early_close(session) else time(15, 45)
        assert decision.time() == expected, session
        assert (close.time() == time(13, 0)) == cal.is_early_close(session), session


@pytest.mark.parametrize(
    ("day", "why", "previous", "following"),
    [
        (date(2026, 11, 28), "weekend", "2026-11-27", "2026-11-30"),
        (date(2026, 11, 29), "weekend", "2026-11-27", "2026-11-30"),
        (THANKSGIVING_2026, "Thanksgiving", "2026-11-25", "2026-11-27"),
        (date(2026, 12, 25), "Christmas", "2026-12-24", "2026-12-28"),
    ],
)
def test_non_session_raises_naming_date_reason_and_neighbours(
    cal: TradingCalendar, day: date, why: str, previous: str, following: str
) -> None:
    """T3: asking for a session on a weekend or holiday refuses, saying which day and why."""
    with pytest.raises(UnknownSessionError) as excinfo:
        cal.require_session(day)
    message = str(excinfo.value)
    assert day.isoformat() in message
    assert why in message
    assert f"previous session {previous}" in message
    assert f"next session {following}" in message
    for needs_session in (cal.decision_time, cal.close_time, cal.open_time, cal.is_early_close):
        with pytest.raises(UnknownSessionError, match=day.isoformat()):
            needs_session(day)


def test_require_session_returns_a_session(cal: TradingCalendar) -> None:
    """T3: a real session passes through unchanged."""
    assert cal.require_session(date(2026, 11, 27)) == date(2026, 11, 27)


def test_sessions_in_november_2026_are_weekdays_minus_thanksgiving(cal: TradingCalendar) -> None:
    """T3: sessions() is inclusive and drops exactly the holiday."""
    start, end = date(2026, 11, 1), date(2026, 11, 30)
    expected = [day for day in _weekdays(start, end) if day != THANKSGIVING_2026]
    assert cal.sessions(start, end) == expected
    assert len(expected) == 20


def test_non_session_weekdays_2026_are_the_nyse_holidays(cal: TradingCalendar) -> None:
    """T3: the Dagster partition exclusions for 2026 are exactly the published holidays."""
    assert cal.non_session_weekdays(date(2026, 1, 1), date(2026, 12, 31)) == NYSE_HOLIDAYS_2026
    sessions = cal.sessions(date(2026, 1, 1), date(2026, 12, 31))
    weekdays = _weekdays(date(2026, 1, 1), date(2026, 12, 31))
    assert sorted(sessions + NYSE_HOLIDAYS_2026) == weekdays


def test_neighbouring_sessions(cal: TradingCalendar) -> None:
    """T3: previous/next are strict and skip weekends and holidays."""
    assert cal.previous_session(date(2026, 11, 27)) == date(2026, 11, 25)
    assert cal.next_session(date(2026, 11, 25)) == date(2026, 11, 27)
    assert cal.next_session(date(2026, 11, 27)) == date(2026, 11, 30)
    assert cal.previous_session(date(2026, 11, 30)) == date(2026, 11, 27)
    assert cal.session_on_or_before(date(2026, 11, 29)) == date(2026, 11, 27)
    assert cal.session_on_or_before(THANKSGIVING_2026) == date(2026, 11, 25)
    assert cal.session_on_or_before(date(2026, 11, 25)) == date(2026, 11, 25)


def test_session_for_uses_new_york_calendar_day(cal: TradingCalendar) -> None:
    """T2: a UTC moment belongs to the New York day it falls on, DST included."""
    # 02:00 UTC on the 25th is still the evening of the 24th in New York.
    assert cal.session_for(datetime(2026, 11, 25, 2, 0, tzinfo=UTC)) == date(2026, 11, 24)
    assert cal.session_for(datetime(2026, 11, 25, 19, 45, tzinfo=UTC)) == date(2026, 11, 25)
    # 03:00 UTC on the 27th is Thanksgiving evening in New York: no session.
    assert cal.session_for(datetime(2026, 11, 27, 3, 0, tzinfo=UTC)) is None
    assert cal.session_for(_ny(date(2026, 11, 28), 12, 0)) is None


def test_naive_datetime_rejected(cal: TradingCalendar) -> None:
    """T2: a moment without a time zone is ambiguous and refused."""
    with pytest.raises(ValueError, match="naive"):
        cal.session_for(datetime(2026, 11, 25, 15, 45))  # noqa: DTZ001 - the point of the test


def test_exchange_time_converts_aware_and_rejects_naive() -> None:
    """T2: every moment is expressed in America/New_York; naive ones are refused."""
    moment = exchange_time(datetime(2026, 7, 1, 19, 45, tzinfo=UTC))
    assert moment == _ny(date(2026, 7, 1), 15, 45)
    assert moment.tzinfo == EXCHANGE_TZ
    with pytest.raises(ValueError, match="naive"):
        exchange_time(datetime(2026, 7, 1, 19, 45))  # noqa: DTZ001 - the point of the test
    with pytest.raises(TypeError, match="must be a datetime"):
        exchange_time(date(2026, 7, 1))  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("method", ["is_session", "require_session", "decision_time"])
def test_datetime_where_a_day_is_expected_rejected(cal: TradingCalendar, method: str) -> None:
    """T2: a session is a New York calendar day; a datetime (naive or not) is not accepted."""
    with pytest.raises(ValueError, match="must be a date"):
        getattr(cal, method)(datetime(2026, 11, 25, 15, 45, tzinfo=UTC))
    with pytest.raises(ValueError, match="must be a date"):
        getattr(cal, method)(datetime(2026, 11, 25))  # noqa: DTZ001 - the point of the test
    with pytest.raises(TypeError, match=r"must be a datetime\.date"):
        getattr(cal, method)("2026-11-25")


def test_outside_range_refuses_instead_of_answering_no(cal: TradingCalendar) -> None:
    """T3: a calendar that has run out must say so, not report every day as a non-session."""
    with pytest.raises(UnknownSessionError, match=r"outside this trading calendar's range"):
        cal.is_session(date(2027, 7, 1))
    with pytest.raises(UnknownSessionError, match="2017-12-31"):
        cal.sessions(date(2017, 12, 31), date(2018, 1, 5))
    with pytest.raises(UnknownSessionError, match="no session before"):
        cal.previous_session(cal.first_session)
    with pytest.raises(UnknownSessionError, match="no session after"):
        cal.next_session(cal.last_session)


def test_range_arguments_validated(cal: TradingCalendar) -> None:
    """T3: reversed ranges are caller errors, not empty answers."""
    with pytest.raises(ValueError, match="before start"):
        cal.sessions(date(2026, 11, 30), date(2026, 11, 1))
    with pytest.raises(ValueError, match="before its start"):
        TradingCalendar(start=date(2026, 1, 1), end=date(2025, 1, 1))


def test_bounds(cal: TradingCalendar) -> None:
    """T3: first/last session are the sessions nearest inside the requested range."""
    assert cal.first_session == date(2018, 1, 2)  # 2018-01-01 is New Year's Day
    assert cal.last_session == date(2027, 6, 30)


def test_calendar_survives_pickling(cal: TradingCalendar) -> None:
    """T3: a calendar handed to another process (Dagster executors) answers the same."""
    copy = pickle.loads(pickle.dumps(cal))
    assert copy.decision_time(date(2026, 11, 27)) == cal.decision_time(date(2026, 11, 27))
    assert copy.sessions(date(2026, 11, 1), date(2026, 11, 30)) == cal.sessions(
        date(2026, 11, 1), date(2026, 11, 30)
    )
    with pytest.raises(UnknownSessionError, match="Thanksgiving"):
        copy.require_session(THANKSGIVING_2026)


def test_default_range_starts_2000_and_reaches_about_a_year_ahead() -> None:
    """T3: the default calendar covers the backfill history and the coming year."""
    default = TradingCalendar()
    assert default.first_session == date(2000, 1, 3)
    today = datetime.now(EXCHANGE_TZ).date()
    assert default.last_session >= today + timedelta(days=300)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Before the decision on a session day: that session's.
        (
            datetime(2026, 11, 24, 9, 0, tzinfo=EXCHANGE_TZ),
            datetime(2026, 11, 24, 15, 45, tzinfo=EXCHANGE_TZ),
        ),
        # At it exactly: the same.
        (
            datetime(2026, 11, 24, 15, 45, tzinfo=EXCHANGE_TZ),
            datetime(2026, 11, 24, 15, 45, tzinfo=EXCHANGE_TZ),
        ),
        # After it: the next session's, past Thanksgiving to the early close (12:45).
        (
            datetime(2026, 11, 25, 16, 0, tzinfo=EXCHANGE_TZ),
            datetime(2026, 11, 27, 12, 45, tzinfo=EXCHANGE_TZ),
        ),
        # A Saturday, given in UTC: Monday's.
        (
            datetime(2026, 11, 28, 15, 0, tzinfo=UTC),
            datetime(2026, 11, 30, 15, 45, tzinfo=EXCHANGE_TZ),
        ),
    ],
)
def test_the_next_decision_time_at_or_after_a_moment(
    cal: TradingCalendar, moment: datetime, expected: datetime
) -> None:
    assert cal.next_decision_time(moment) == expected
