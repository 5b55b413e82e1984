"""C1: a failed daily run that did not alert from inside (see defs/failure_alerts.py)
becomes an alert here: a killed run worker, a run that died before its steps. A failed
live_performance run alerts here too, as a warning: nothing traded, but the page a person
reads to see how the account does is stale until the next run.

Watches every code location, because a run executed in process (`tecl run`) has no origin
and a sensor limited to its own location skips it; the job is filtered here instead.
Dagster's run-status sensors keep their own cursor (the last run-failure event handled),
and the run tag the hook sets keeps the alert to one per run.
"""

from dataclasses import replace

from dagster import (
    DagsterEventType,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorDefinition,
    run_failure_sensor,
)

from tecl_pipeline.common.events import Severity
from tecl_pipeline.defs.failure_alerts import (
    RUN_ALERTED_TAG,
    alert_once,
    failed_steps,
    run_failure_alert,
)
from tecl_pipeline.defs.jobs import daily_trading_job
from tecl_pipeline.defs.performance import LIVE_PERFORMANCE_JOB
from tecl_pipeline.defs.resources import AlertsResource
from tecl_pipeline.defs.run_tags import OutcomeLabel, tag_outcome_once
from tecl_pipeline.observability.alerts import Alert

WATCHED_JOBS = frozenset({daily_trading_job.name, LIVE_PERFORMANCE_JOB})


def failure_alert(context: RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    # The run's message only names the failed steps; the step errors say what went wrong.
    records = context.instance.all_logs(
        run.run_id,
        of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.ASSET_CHECK_EVALUATION},
    )
    events = [r.dagster_event for r in records if r.dagster_event is not None]
    message = context.failure_event.message or "run failed (no message)"
    return run_failure_alert(run, failed_steps(events), message)


def build_run_failure_alert_sensor(
    *,
    name: str = "run_failure_alert_sensor",
    minimum_interval_seconds: int = 30,
) -> SensorDefinition:
    @run_failure_sensor(
        name=name,
        monitor_all_code_locations=True,
        minimum_interval_seconds=minimum_interval_seconds,
        # Alerting is safe to have on from the start, unlike the trading schedule.
        default_status=DefaultSensorStatus.RUNNING,
        # Failure mode C1 (an exception or a killed run worker must reach an alert).
        description="Alerts through the alert sinks when a daily_trading_job run fails "
        "without having alerted itself (e.g. a killed run), or a live_performance_job run "
        "fails; once per run.",
    )
    def _sensor(context: RunFailureSensorContext, alerts: AlertsResource) -> None:
        run = context.dagster_run
        if run.job_name not in WATCHED_JOBS:
            return
        if run.tags.get(RUN_ALERTED_TAG):
            context.log.info("run %s already alerted (%s)", run.run_id, run.tags[RUN_ALERTED_TAG])
            return
        trading = run.job_name == daily_trading_job.name
        alert = failure_alert(context)
        if not trading:
            alert = replace(alert, severity=Severity.WARNING)

        def send(_: object) -> None:
            results = alerts.alerter().send(alert)
            context.log.info(
                "run failure alert for run %s: %s",
                alert.run_id,
                ", ".join(f"{r.sink}={'ok' if r.ok else r.error}" for r in results),
            )

        alert_once(context.instance, run.run_id, send, route="sensor")
        if trading:
            # After the alert. A run that failed with no step failing (a killed run
            # worker): no step tagged how it ended.
            tag_outcome_once(context.instance, run.run_id, OutcomeLabel.ERROR)

    return _sensor


run_failure_alert_sensor = build_run_failure_alert_sensor()
