"""One partition per XNYS trading session; the partition key is the session date."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import DailyPartitionsDefinition

from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar

# Every session since then can be replayed or re-run (CSV history, the demo data from 2019).
# The asset page's "filled" share counts the sessions before going live too: the Runs page
# and missed_session_sensor are what say whether the sessions since then were traded.
PARTITIONS_START = date(2015, 1, 2)
# A plain weekday cron would make Friday's window end on Monday; excluding weekend ticks and
# every non-session weekday leaves exactly the sessions.
_WEEKENDS = "0 0 * * 0,6"
# The windows are days at UTC+14 (Etc/GMT-14: POSIX inverts the sign), the first midnight on
# Earth: session D's window ends at D 10:00 UTC, 05:00 New York (06:00 in summer), hours
# before its decision time (12:45 at the earliest). Dagster counts a partition once its
# window has ended, so D is one from that morning on with no end_offset, and no session
# after today's ever is. Days in New York time would need end_offset=1, which counts
# partitions, not days: from a Friday midnight to Monday morning it made Monday's session
# a partition, a future one the asset page showed as missing. No DST at a fixed offset.
PARTITION_TZ = ZoneInfo("Etc/GMT-14")


def session_partitions_def(calendar: TradingCalendar) -> DailyPartitionsDefinition:
    closed_weekdays = calendar.non_session_weekdays(PARTITIONS_START, calendar.last_session)
    return DailyPartitionsDefinition(
        start_date=PARTITIONS_START.isoformat(),
        timezone=PARTITION_TZ.key,
        exclusions=[
            _WEEKENDS,
            *(datetime(d.year, d.month, d.day, tzinfo=PARTITION_TZ) for d in closed_weekdays),
        ],
    )


CALENDAR = TradingCalendar()
session_partitions = session_partitions_def(CALENDAR)


def partition_opens(session: date) -> datetime:
    """When `session` becomes a partition: the end of its day at PARTITION_TZ, in exchange
    time (05:00 New York, 06:00 in summer)."""
    start = datetime(session.year, session.month, session.day, tzinfo=PARTITION_TZ)
    return (start + timedelta(days=1)).astimezone(EXCHANGE_TZ)


# Dagster's own partition tag on a partitioned run.
PARTITION_TAG = "dagster/partition"


def session_of(partition_key: str | None) -> date | None:
    """The session a partition key names; None for a run without (or with a foreign) key."""
    if not partition_key:
        return None
    try:
        return date.fromisoformat(partition_key)
    except ValueError:
        return None
