"""The daily schedule requests exactly one run per XNYS session, at its decision time.

Expected sessions are written out from weekday rules and the known 2026 holidays, never
asked of the calendar under test.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dagster import Definitions, RepositoryDefinition, build_schedule_context

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.partitions import session_partitions
from tecl_pipeline.defs.schedules import DECISION_CRON, SESSION_TAG, daily_trading_schedule

NY = ZoneInfo("America/New_York")
REGULAR = time(15, 45)
EARLY = time(12, 45)
# NYSE 2026: Thanksgiving Thu 26 Nov; early closes the day after (Fri 27 Nov) and on
# Christmas Eve (Thu 24 Dec); Christmas Fri 25 Dec.
HOLIDAYS_2026 = {date(2026, 11, 26), date(2026, 12, 25)}
EARLY_CLOSES_2026 = {date(2026, 11, 27), date(2026, 12, 24)}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> RepositoryDefinition:
    """The project's definitions plus the schedule: evaluating a tick that requests a
    partition resolves the job's partitions through the repository."""
    state = tmp_path_factory.mktemp("state").as_uri()
    project = build_definitions(Settings(state_uri=state))
    merged = Definitions.merge(project, Definitions(schedules=[daily_trading_schedule]))
    return merged.get_repository_def()


def evaluate(tick: datetime, repository: RepositoryDefinition):
    return daily_trading_schedule.evaluate_tick(
        build_schedule_context(scheduled_execution_time=tick, repository_def=repository)
    )


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def cron_ticks(first: date, last: date) -> list[datetime]:
    """Every tick of "45 12,15 * * 1-5" in New York, given in UTC as a daemon might pass it."""
    assert DECISION_CRON == "45 12,15 * * 1-5"
    return [
        datetime.combine(day, at, tzinfo=NY).astimezone(UTC)
        for day in days(first, last)
        if day.weekday() < 5
        for at in (EARLY, REGULAR)
    ]


def expected_runs(first: date, last: date) -> dict[str, datetime]:
    return {
        day.isoformat(): datetime.combine(
            day, EARLY if day in EARLY_CLOSES_2026 else REGULAR, tzinfo=NY
        )
        for day in days(first, last)
        if day.weekday() < 5 and day not in HOLIDAYS_2026
    }


def requested_runs(ticks: list[datetime], repository: RepositoryDefinition) -> dict[str, datetime]:
    """session -> the tick that requested it; fails on a second request for a session."""
    runs: dict[str, datetime] = {}
    for tick in ticks:
        data = evaluate(tick, repository)
        if not data.run_requests:
            assert data.skip_message, f"tick {tick} neither ran nor said why"
            continue
        [request] = data.run_requests
        assert request.run_key is not None, f"request without a run key at {tick}"
        assert request.run_key not in runs, f"second request for {request.run_key} at {tick}"
        # run_key = partition = session: the daemon never launches a run key twice (X3).
        assert request.run_key == request.partition_key == request.tags[SESSION_TAG]
        # The partition exists by the time the daemon launches it.
        assert request.partition_key in session_partitions.get_partition_keys(current_time=tick)
        runs[request.run_key] = tick.astimezone(NY)
    return runs


def test_november_2026_runs_each_session_once_at_its_decision_time(repository):
    """T2, T3: Nov 2026 requests 2026-11-02..30 minus Thanksgiving, the 27th at 12:45."""
    runs = requested_runs(cron_ticks(date(2026, 11, 1), date(2026, 11, 30)), repository)

    assert runs == expected_runs(date(2026, 11, 2), date(2026, 11, 30))
    assert "2026-11-26" not in runs
    assert runs["2026-11-27"].time() == EARLY
    assert len(runs) == 20
    assert all(moment.tzinfo is not None for moment in runs.values())


@pytest.mark.parametrize(
    ("first", "last", "utc_hours"),
    [
        # DST starts Sun 8 Mar 2026: 15:45 EST = 20:45 UTC, then 15:45 EDT = 19:45 UTC.
        (date(2026, 3, 2), date(2026, 3, 13), {date(2026, 3, 6): 20, date(2026, 3, 9): 19}),
        # DST ends Sun 1 Nov 2026: 15:45 EDT = 19:45 UTC, then 15:45 EST = 20:45 UTC.
        (date(2026, 10, 26), date(2026, 11, 6), {date(2026, 10, 30): 19, date(2026, 11, 2): 20}),
    ],
    ids=["dst-start-2026-03", "dst-end-2026-11"],
)
def test_decision_time_stays_1545_new_york_across_dst(first, last, utc_hours, repository):
    """T2: wall-clock 15:45 New York on both sides of a DST change, not a fixed UTC hour."""
    runs = requested_runs(cron_ticks(first, last), repository)

    assert runs == expected_runs(first, last)
    for day, hour in utc_hours.items():
        assert runs[day.isoformat()].astimezone(UTC).hour == hour


def test_christmas_eve_early_close_and_christmas_holiday(repository):
    """T3: 24 Dec 2026 at 12:45; 25 Dec and the weekend never."""
    runs = requested_runs(cron_ticks(date(2026, 12, 21), date(2026, 12, 31)), repository)

    assert runs == expected_runs(date(2026, 12, 21), date(2026, 12, 31))
    assert runs["2026-12-24"].time() == EARLY


@pytest.mark.parametrize(
    ("moment", "reason"),
    [
        (datetime(2026, 11, 26, 15, 45, tzinfo=NY), "not an XNYS session"),
        (datetime(2026, 11, 28, 15, 45, tzinfo=NY), "not an XNYS session"),
        (datetime(2026, 11, 25, 12, 45, tzinfo=NY), "decision at 15:45"),
        (datetime(2026, 11, 27, 15, 45, tzinfo=NY), "early close, decision at 12:45"),
        (datetime(2026, 11, 25, 15, 44, tzinfo=NY), "not the decision time"),
    ],
)
def test_other_ticks_skip_with_a_reason(moment, reason, repository):
    """T2, T3: holidays, weekends and the wrong one of the two daily ticks never run."""
    data = evaluate(moment, repository)
    assert not data.run_requests
    assert reason in (data.skip_message or "")


def test_duplicate_tick_has_the_same_run_key(repository):
    """X3: the same tick evaluated twice names the same run key, so at most one run starts."""
    tick = datetime(2026, 11, 24, 15, 45, tzinfo=NY)
    keys = [
        request.run_key
        for _ in range(2)
        for request in evaluate(tick, repository).run_requests or []
    ]
    assert keys == ["2026-11-24", "2026-11-24"]
