"""C1: a failed daily run becomes an alert, once per failed run.

Dagster's run-status sensors keep their own cursor (the last run-failure event they
handled), so each failure reaches the function exactly once.
"""

from typing import TYPE_CHECKING

from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorDefinition,
    run_failure_sensor,
)

from tecl_pipeline.defs.jobs import daily_trading_job
from tecl_pipeline.defs.sensors.alerting import (
    PARTITION_TAG,
    AlerterFactory,
    build_alerter,
    session_of,
)
from tecl_pipeline.observability.alerts import Alert
from tecl_pipeline.run_report import error_cause

if TYPE_CHECKING:
    from dagster._core.execution.plan.objects import StepFailureData


def _step_reason(data: "StepFailureData") -> str:
    """A refusal's own description, else the exception under Dagster's wrappers."""
    user = data.user_failure_data
    if user is not None and user.description:
        return user.description
    return error_cause(data.error)


def failure_alert(context: RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    session = session_of(run.tags.get(PARTITION_TAG))
    message = context.failure_event.message or "run failed (no message)"
    # The run's message only names the failed steps; the step errors say what went wrong.
    step_errors = [
        f"{event.step_key}: {_step_reason(event.step_failure_data)}"
        for event in context.get_step_failure_events()
    ]
    detail = "\n".join([message, *step_errors])
    where = f" for session {session.isoformat()}" if session else ""
    return Alert(
        kind="run_failure",
        title=f"{run.job_name} failed{where}",
        detail=detail,
        session=session,
        run_id=run.run_id,
        severity="critical",
    )


def build_run_failure_alert_sensor(
    *,
    alerter_factory: AlerterFactory = build_alerter,
    name: str = "run_failure_alert_sensor",
    minimum_interval_seconds: int = 30,
) -> SensorDefinition:
    @run_failure_sensor(
        name=name,
        monitored_jobs=[daily_trading_job],
        minimum_interval_seconds=minimum_interval_seconds,
        # Alerting is safe to have on from the start, unlike the trading schedule.
        default_status=DefaultSensorStatus.RUNNING,
        description="Alerts (C1) through the alert sinks when daily_trading_job fails.",
    )
    def _sensor(context: RunFailureSensorContext) -> None:
        alert = failure_alert(context)
        results = alerter_factory().send(alert)
        context.log.info(
            "run failure alert for run %s: %s",
            alert.run_id,
            ", ".join(f"{r.sink}={'ok' if r.ok else r.error}" for r in results),
        )

    return _sensor


run_failure_alert_sensor = build_run_failure_alert_sensor()
