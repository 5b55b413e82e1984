"""The daily job at each XNYS session's decision time, and never otherwise (T2, T3, X3).

A cron cannot say "15:45, except 12:45 on early closes, except holidays", so the schedule
ticks every weekday at both candidate times in New York and lets the trading calendar decide
which tick (if any) is the session's decision time. Every other tick is skipped with the
reason, so the UI's tick history explains each non-run.

`run_key` is the session: the daemon never launches a second run for a run key it has
already launched, so a duplicated or re-evaluated tick cannot trade a session twice (X3).
"""

from datetime import datetime

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.defs.jobs import daily_trading_job
from tecl_pipeline.defs.partitions import CALENDAR

# Both decision times the calendar can produce: 15:45 (close 16:00) and 12:45 (early close
# 13:00). If the exchange ever closed at another time, no tick would match and the
# missed-session sensor (A3) would say so.
DECISION_CRON = "45 12,15 * * 1-5"
SESSION_TAG = "tecl/session"


def decide_tick(scheduled: datetime) -> RunRequest | SkipReason:
    """The run for the tick at `scheduled` (tz-aware), or why there is none.

    Pure apart from the calendar, so tests can sweep any range of ticks without Dagster.
    """
    tick = scheduled.astimezone(EXCHANGE_TZ).replace(second=0, microsecond=0)
    # session_for raises UnknownSessionError past the calendar's range: a schedule that can
    # no longer tell sessions from holidays must fail its ticks loudly, not skip them.
    session = CALENDAR.session_for(tick)
    if session is None:
        return SkipReason(f"{tick:%Y-%m-%d %H:%M %Z} ({tick:%A}): not an XNYS session")
    decision = CALENDAR.decision_time(session)
    if tick != decision:
        kind = "early close" if CALENDAR.is_early_close(session) else "regular session"
        return SkipReason(
            f"{tick:%H:%M %Z} is not the decision time of session {session.isoformat()} "
            f"({kind}, decision at {decision:%H:%M %Z})"
        )
    key = session.isoformat()
    return RunRequest(
        run_key=key,
        partition_key=key,
        tags={
            SESSION_TAG: key,
            "tecl/decision_time": decision.isoformat(),
            "tecl/early_close": str(CALENDAR.is_early_close(session)).lower(),
        },
    )


@schedule(
    cron_schedule=DECISION_CRON,
    execution_timezone=str(EXCHANGE_TZ),
    job=daily_trading_job,
    # Stopped until someone turns it on: a deployment must not start trading by itself.
    default_status=DefaultScheduleStatus.STOPPED,
    description="daily_trading_job at each XNYS session's decision time: 15:45 New York, "
    "12:45 on early closes; never on holidays or weekends. run_key = session.",
)
def daily_trading_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    scheduled = context.scheduled_execution_time
    if scheduled is None:
        # Only a hand-built context lacks a tick time; guessing "now" could trade a session.
        return SkipReason("no scheduled execution time in the context")
    return decide_tick(scheduled)
