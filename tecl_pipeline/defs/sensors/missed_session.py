"""A3: a session whose decision time passed without a successful trading run raises an alert.

"Successful" means a materialization of `post_trade_positions` for the session's partition:
it is the last asset of the chain, so it exists only when the run traded and journaled.
Whatever stopped the run (daemon down, schedule off, run failed or never launched), the
absence of that materialization is what a person needs to hear about.

The cursor (JSON) holds the sessions already alerted, so each missed session alerts once,
and the moment the sensor started watching, so turning it on for the first time does not
report the sessions before anyone asked it to watch.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from tecl_pipeline.common.events import Severity
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.resources import AlertsResource
from tecl_pipeline.observability.alerts import Alert

POST_TRADE_KEY = AssetKey("post_trade_positions")
DEFAULT_GRACE = timedelta(minutes=30)
DEFAULT_LOOKBACK_SESSIONS = 10


def _now() -> datetime:
    return datetime.now(EXCHANGE_TZ)


@dataclass(frozen=True)
class MissedSessionCursor:
    since: datetime
    alerted: frozenset[date]

    @classmethod
    def parse(cls, raw: str | None, now: datetime) -> "MissedSessionCursor":
        if not raw:
            return cls(since=now, alerted=frozenset())
        data = json.loads(raw)
        return cls(
            since=datetime.fromisoformat(data["since"]),
            alerted=frozenset(date.fromisoformat(d) for d in data["alerted"]),
        )

    def dumps(self) -> str:
        return json.dumps(
            {
                "since": self.since.isoformat(),
                "alerted": sorted(d.isoformat() for d in self.alerted),
            }
        )


def has_succeeded(instance: DagsterInstance, session: date) -> bool:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=POST_TRADE_KEY, asset_partitions=[session.isoformat()]),
        limit=1,
    )
    return bool(records.records)


def due_sessions(
    now: datetime, *, grace: timedelta, lookback: int, not_before: datetime
) -> list[date]:
    """The last `lookback` sessions up to today whose decision time + grace is past and
    whose decision time is not before `not_before`."""
    today = now.astimezone(EXCHANGE_TZ).date()
    last = CALENDAR.session_on_or_before(today)
    # A session per weekday at most, so twice the count in calendar days always covers it.
    window_start = max(CALENDAR.first_session, last - timedelta(days=2 * lookback + 7))
    recent = CALENDAR.sessions(window_start, last)[-lookback:]
    return [
        session
        for session in recent
        if not_before <= CALENDAR.decision_time(session)
        and CALENDAR.decision_time(session) + grace <= now
    ]


def missed_alert(session: date, grace: timedelta, now: datetime) -> Alert:
    decision = CALENDAR.decision_time(session)
    return Alert(
        kind="missed_session",
        title=f"no successful trading run for session {session.isoformat()}",
        detail=(
            f"decision time {decision:%Y-%m-%d %H:%M %Z} plus {grace} grace has passed "
            f"(now {now.astimezone(EXCHANGE_TZ):%Y-%m-%d %H:%M %Z}) and post_trade_positions "
            f"has no materialization for partition {session.isoformat()}. Check the schedule, "
            f"the daemon and the run history; the session is not traded."
        ),
        session=session,
        severity=Severity.CRITICAL,
    )


def build_missed_session_sensor(
    *,
    grace: timedelta = DEFAULT_GRACE,
    lookback_sessions: int = DEFAULT_LOOKBACK_SESSIONS,
    start: datetime | None = None,
    minimum_interval_seconds: int = 300,
    clock: Callable[[], datetime] = _now,
    name: str = "missed_session_sensor",
) -> SensorDefinition:
    """`start` (tz-aware): never alert for a session decided before it. Without it, the
    sensor watches from its first evaluation (recorded in the cursor), so switching it on
    does not report the sessions before anyone asked it to watch."""
    if grace < timedelta(0) or lookback_sessions < 1:
        raise ValueError("grace must be >= 0 and lookback_sessions >= 1")
    if start is not None and (start.tzinfo is None or start.utcoffset() is None):
        raise ValueError("start must be timezone-aware")

    # Failure mode A3 (trigger misconfigured or failed).
    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Alerts when a session's decision time + {grace} passes without "
        "a materialization of post_trade_positions for it; once per session.",
    )
    def _sensor(context: SensorEvaluationContext, alerts: AlertsResource) -> SkipReason:
        now = clock()
        cursor = MissedSessionCursor.parse(context.cursor, now)
        # An explicit start wins: whoever set it wants the sessions since then checked.
        not_before = start if start is not None else cursor.since
        due = due_sessions(now, grace=grace, lookback=lookback_sessions, not_before=not_before)
        missed = [
            s for s in due if s not in cursor.alerted and not has_succeeded(context.instance, s)
        ]
        if missed:
            alerter = alerts.alerter()
            for session in missed:
                alerter.send(missed_alert(session, grace, now))
        # Keep only sessions still due: one that left the window (or precedes the watch
        # start) is never checked again, so dropping it bounds the cursor without risking
        # a second alert.
        kept = (cursor.alerted | set(missed)) & set(due)
        context.update_cursor(MissedSessionCursor(since=cursor.since, alerted=kept).dumps())
        if missed:
            return SkipReason(f"alerted missed sessions: {', '.join(map(str, missed))}")
        return SkipReason(f"no missed session among {len(due)} due session(s)")

    return _sensor


missed_session_sensor = build_missed_session_sensor()
