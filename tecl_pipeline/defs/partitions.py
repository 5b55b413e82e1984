"""One partition per XNYS trading session; the partition key is the session date."""

from datetime import date, datetime

from dagster import DailyPartitionsDefinition

from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar

PARTITIONS_START = date(2015, 1, 2)
# A plain weekday cron would make Friday's window end on Monday; excluding weekend ticks and
# every non-session weekday leaves exactly the sessions.
_WEEKENDS = "0 0 * * 0,6"


def session_partitions_def(calendar: TradingCalendar) -> DailyPartitionsDefinition:
    closed_weekdays = calendar.non_session_weekdays(PARTITIONS_START, calendar.last_session)
    return DailyPartitionsDefinition(
        start_date=PARTITIONS_START.isoformat(),
        timezone=str(EXCHANGE_TZ),
        # Today's session is a partition from midnight on, so the run before the close has one.
        end_offset=1,
        exclusions=[
            _WEEKENDS,
            *(datetime(d.year, d.month, d.day, tzinfo=EXCHANGE_TZ) for d in closed_weekdays),
        ],
    )


CALENDAR = TradingCalendar()
session_partitions = session_partitions_def(CALENDAR)


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
