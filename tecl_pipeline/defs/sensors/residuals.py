"""B6: a trading run that ended away from its target (unfilled residuals) raises an alert.

Reads the structured residual report (JSON) of each `post_trade_positions` materialization:
the asset has already judged each residual by the minimum-trade rule execution used
(`portfolio.worth_trading`), so what was left on purpose never alerts, and what
post_trade_reconciled reports always does. A plain sensor over the event log rather than
`@asset_sensor`: an asset sensor hands over only the latest materialization per evaluation,
so a backfill of several sessions between two ticks would hide all but one. Here the cursor
is the storage id of the last materialization handled, and every materialization after it
is read in order, each alerting at most once.
"""

from collections.abc import Mapping

from dagster import (
    AssetRecordsFilter,
    DefaultSensorStatus,
    EventLogRecord,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from tecl_pipeline.common.events import Severity
from tecl_pipeline.defs.assets import RESIDUAL_REPORT
from tecl_pipeline.defs.partitions import session_of
from tecl_pipeline.defs.resources import AlertsResource
from tecl_pipeline.defs.sensors.missed_session import POST_TRADE_KEY
from tecl_pipeline.observability.alerts import Alert

# Bounded work per tick; a longer backlog is worked off over the following ticks.
BATCH = 100


def parse_residuals(metadata: Mapping[str, object]) -> list[tuple[str, str]]:
    """(symbol, "target - held (value)") for each residual worth a trade.

    A missing or unreadable report is reported as such rather than as "no residuals":
    silence must mean the position matched the target.
    """
    entry = metadata.get(RESIDUAL_REPORT)
    report = getattr(entry, "value", entry)
    if not isinstance(report, dict):
        return [("?", f"no readable '{RESIDUAL_REPORT}' metadata")]
    rows = report.get("open")
    if not isinstance(rows, list) or not all(
        isinstance(row, dict) and row.get("symbol") and row.get("qty") for row in rows
    ):
        return [("?", f"no readable '{RESIDUAL_REPORT}' metadata")]
    minimum = report.get("min_trade_notional", "?")
    return [
        (
            str(row["symbol"]),
            f"{row['qty']} (${row['notional']}, minimum trade ${minimum})"
            if row.get("notional") is not None
            else f"{row['qty']} (no price to value it)",
        )
        for row in rows
    ]


def residual_alert(record: EventLogRecord, rows: list[tuple[str, str]]) -> Alert:
    materialization = record.asset_materialization
    partition = materialization.partition if materialization else None
    session = session_of(partition)
    where = f" for session {session.isoformat()}" if session else ""
    table = "\n".join(f"{symbol}: {qty}" for symbol, qty in rows)
    return Alert(
        kind="residuals",
        title=f"unfilled residuals after trading{where}",
        detail=f"positions differ from the target (target - held):\n{table}",
        session=session,
        run_id=record.run_id or None,
        severity=Severity.WARNING,
    )


def build_residuals_sensor(
    *,
    minimum_interval_seconds: int = 60,
    name: str = "residuals_sensor",
) -> SensorDefinition:
    # Failure mode B6 (partial fills not reconciled).
    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts when a post_trade_positions materialization shows unfilled "
        "residuals; once per materialization.",
    )
    def _sensor(context: SensorEvaluationContext, alerts: AlertsResource) -> SkipReason:
        after = int(context.cursor) if context.cursor else None
        result = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=POST_TRADE_KEY, after_storage_id=after),
            limit=BATCH,
            ascending=True,
        )
        if not result.records:
            return SkipReason("no new post_trade_positions materialization")
        found = []
        for record in result.records:
            materialization = record.asset_materialization
            rows = parse_residuals(materialization.metadata if materialization else {})
            if rows:
                found.append(residual_alert(record, rows))
        if found:
            alerter = alerts.alerter()
            for alert in found:
                alerter.send(alert)
        # After the sends: a crash in between re-sends (at least once) rather than loses.
        context.update_cursor(str(result.records[-1].storage_id))
        return SkipReason(
            f"{len(result.records)} materialization(s) read, {len(found)} with residuals"
        )

    return _sensor


residuals_sensor = build_residuals_sensor()
