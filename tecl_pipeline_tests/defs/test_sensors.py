"""Alert sensors: run failure (C1), missed session (A3), unfilled residuals (B6).

Each alert must reach the sinks exactly once however often the sensor is evaluated: the
tests carry the cursor from one evaluation to the next the way the daemon does. A run's
partition key names the session its alert speaks of (C1)."""

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    MetadataValue,
    RepositoryDefinition,
    SensorDefinition,
    build_sensor_context,
)

from tecl_pipeline.common.events import Severity
from tecl_pipeline.config.settings import Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.assets import RESIDUAL_REPORT
from tecl_pipeline.defs.failure_alerts import RUN_ALERTED_TAG
from tecl_pipeline.defs.partitions import session_of
from tecl_pipeline.defs.performance import LIVE_PERFORMANCE_JOB
from tecl_pipeline.defs.resources import AlertsResource
from tecl_pipeline.defs.run_tags import OUTCOME_TAG, OutcomeLabel
from tecl_pipeline.defs.sensors import (
    ALERT_SENSORS,
    missed_session_sensor,
    residuals_sensor,
    run_failure_alert_sensor,
)
from tecl_pipeline.defs.sensors.missed_session import build_missed_session_sensor
from tecl_pipeline.defs.sensors.residuals import build_residuals_sensor, parse_residuals
from tecl_pipeline.defs.sensors.run_failure import build_run_failure_alert_sensor
from tecl_pipeline.trading.reconcile import residuals
from tecl_pipeline_tests.observability.helpers import CapturedAlerts, CaptureSink

NY = ZoneInfo("America/New_York")
SESSION = date(2026, 11, 24)


@pytest.fixture
def sink() -> CaptureSink:
    return CaptureSink()


@pytest.fixture
def alerts(sink: CaptureSink) -> CapturedAlerts:
    return CapturedAlerts(sink)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


def repository_with(sensor: SensorDefinition, state_dir: Path) -> RepositoryDefinition:
    """The project's definitions with `sensor` in place of the registered one of its name."""
    project = build_definitions(Settings(state_uri=state_dir.as_uri()))
    others = [s for s in project.sensors or [] if s.name != sensor.name]
    return Definitions(
        assets=project.assets,
        asset_checks=project.asset_checks,
        jobs=project.jobs,
        schedules=project.schedules,
        sensors=[*others, sensor],
        resources=project.resources,
    ).get_repository_def()


def deployment_alerts(cwd: Path, **environ: str) -> AlertsResource:
    """The alerts resource a code location read from `environ` would register."""
    project = build_definitions(Settings.from_env(environ, cwd=cwd))
    alerts = (project.resources or {}).get("alerts")
    assert isinstance(alerts, AlertsResource)
    return alerts


def tick(
    sensor: SensorDefinition,
    alerts: object,
    instance: DagsterInstance,
    cursor: str | None,
    repository: RepositoryDefinition | None = None,
) -> str | None:
    """One daemon-style evaluation with `alerts` as the alerts resource; returns the cursor
    the daemon would store."""
    with build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=repository,
        sensor_name=sensor.name,
        resources={"alerts": alerts},
    ) as context:
        data = sensor.evaluate_tick(context)
    assert not data.run_requests, "alert sensors never launch runs"
    return data.cursor


def failing_run(run_daily, tmp_path: Path, instance: DagsterInstance, session: date = SESSION):
    """A real daily_trading_job run that fails in market_data (no data files)."""
    empty = tmp_path / f"no-data-{session}"
    empty.mkdir()
    result = run_daily(session, data_dir=empty, instance=instance)
    assert not result.success
    return result


def report_post_trade(
    instance: DagsterInstance, session: date, left: dict[str, str] | None = None
) -> None:
    """A post_trade_positions materialization carrying the asset's residual report, with
    `left` ({symbol: target - held}) worth a trade at a $50 price and a $1 minimum."""
    owed = {s: Decimal(q) for s, q in (left or {}).items()}
    report = residuals(
        {s: max(q, Decimal(0)) for s, q in owed.items()},
        {s: max(-q, Decimal(0)) for s, q in owed.items()},
        dict.fromkeys(owed, Decimal("50")),
        Decimal("1"),
    )
    assert len(report.open) == len(owed)
    instance.report_runless_asset_event(
        AssetMaterialization(
            "post_trade_positions",
            partition=session.isoformat(),
            metadata={RESIDUAL_REPORT: MetadataValue.json(report.to_json())},
        )
    )


def test_sensors_load_in_the_project_definitions(tmp_path):
    project = build_definitions(Settings(state_uri=tmp_path.as_uri()))
    Definitions.validate_loadable(project)
    assert {s.name for s in ALERT_SENSORS} == {
        "run_failure_alert_sensor",
        "missed_session_sensor",
        "residuals_sensor",
    }
    # Besides the alerts, the one that keeps live_performance up to date.
    assert {s.name for s in project.sensors or []} == {
        *(s.name for s in ALERT_SENSORS),
        "live_performance_sensor",
    }


# -- C1: run failure -------------------------------------------------------------------------


def killed_run(instance: DagsterInstance, tmp_path: Path, session: date = SESSION) -> str:
    """A daily_trading_job run that failed without any step failing (its run worker was
    killed): no hook inside it could alert. Returns its run id."""
    job = build_definitions(
        Settings(state_uri=(tmp_path / "killed-state").as_uri())
    ).resolve_job_def("daily_trading_job")
    run = instance.create_run_for_job(job_def=job, tags={"dagster/partition": session.isoformat()})
    instance.report_run_failed(run, "run worker killed")
    return run.run_id


def failure_alerts(log_dir: Path) -> list[dict]:
    """Every alert in the log directory's alert file."""
    path = log_dir / "alerts.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return list(map(json.loads, lines))


def test_failed_run_alerts_from_inside_naming_session_run_and_failure(
    run_daily, tmp_path, instance, sink, alerts
):
    """C1: an in-process run (as `tecl run` starts it) that fails alerts by itself, once,
    naming the session, the run and why (here the step's own refusal, which the run-failure
    hook does not repeat); the sensor, evaluated like the daemon does, adds nothing."""
    sensor = build_run_failure_alert_sensor()
    repository = repository_with(sensor, tmp_path / "repo-state")
    cursor = tick(sensor, alerts, instance, None, repository)

    result = failing_run(run_daily, tmp_path, instance)
    for _ in range(3):
        cursor = tick(sensor, alerts, instance, cursor, repository)

    [alert] = failure_alerts(tmp_path / "logs")
    assert alert["kind"] == "refused"
    assert alert["session"] == SESSION.isoformat()
    assert alert["run_id"] == result.run_id
    assert "no data file" in alert["detail"]
    assert instance.get_run_by_id(result.run_id).tags[RUN_ALERTED_TAG] == "step"
    assert sink.sent == []


def test_run_that_died_without_a_step_failure_alerts_once_from_the_sensor(
    run_daily, tmp_path, instance, sink, alerts
):
    """C1: runs whose worker was killed (no hook could run) alert once each from the sensor,
    however often it is evaluated; a run that alerted itself is not alerted again."""
    sensor = build_run_failure_alert_sensor()
    repository = repository_with(sensor, tmp_path / "repo-state")
    # The first evaluation only anchors the cursor (Dagster skips history before it).
    cursor = tick(sensor, alerts, instance, None, repository)
    first = killed_run(instance, tmp_path)
    for _ in range(3):
        cursor = tick(sensor, alerts, instance, cursor, repository)
    failing_run(run_daily, tmp_path, instance, session=date(2026, 11, 20))
    second = killed_run(instance, tmp_path, session=date(2026, 11, 23))
    for _ in range(2):
        cursor = tick(sensor, alerts, instance, cursor, repository)

    assert [(a.run_id, a.session) for a in sink.sent] == [
        (first, SESSION),
        (second, date(2026, 11, 23)),
    ]
    assert all("run worker killed" in a.detail for a in sink.sent)
    assert instance.get_run_by_id(first).tags[RUN_ALERTED_TAG] == "sensor"
    # Runs can be told apart in the UI: no step said how these ended, the sensor did.
    assert instance.get_run_by_id(second).tags[OUTCOME_TAG] == OutcomeLabel.ERROR


def test_a_failed_live_performance_run_alerts_once_as_a_warning(tmp_path, instance, sink, alerts):
    """The page a person reads to see how the account does must not go stale in silence; a
    warning, as nothing traded; no outcome tag, which belongs to trading runs."""
    sensor = build_run_failure_alert_sensor()
    repository = repository_with(sensor, tmp_path / "repo-state")
    cursor = tick(sensor, alerts, instance, None, repository)
    job = build_definitions(Settings(state_uri=(tmp_path / "s").as_uri())).resolve_job_def(
        LIVE_PERFORMANCE_JOB
    )
    run = instance.create_run_for_job(job_def=job)
    instance.report_run_failed(run, "no closes for the journal's sessions")
    for _ in range(2):
        cursor = tick(sensor, alerts, instance, cursor, repository)

    [alert] = sink.sent
    assert (alert.run_id, alert.severity) == (run.run_id, Severity.WARNING)
    assert alert.title == f"{LIVE_PERFORMANCE_JOB} failed"
    assert OUTCOME_TAG not in instance.get_run_by_id(run.run_id).tags


def test_default_run_failure_sensor_uses_the_alert_file(tmp_path, instance):
    """C1/X9: the registered sensor delivers through the deployment's alert sinks."""
    alert_file = tmp_path / "alerts.jsonl"
    alerts = deployment_alerts(tmp_path, TECL_ALERT_FILE=str(alert_file))
    repository = repository_with(run_failure_alert_sensor, tmp_path / "repo-state")
    cursor = tick(run_failure_alert_sensor, alerts, instance, None, repository)
    run_id = killed_run(instance, tmp_path)

    tick(run_failure_alert_sensor, alerts, instance, cursor, repository)

    [line] = alert_file.read_text().splitlines()
    alert = json.loads(line)
    assert (alert["kind"], alert["run_id"], alert["session"]) == (
        "run_failure",
        run_id,
        SESSION.isoformat(),
    )


# -- A3: missed session ------------------------------------------------------------------------


def missed_sensor(clock_box: list[datetime], **kwargs) -> SensorDefinition:
    return build_missed_session_sensor(clock=lambda: clock_box[0], **kwargs)


def test_missed_sessions_alert_once_each_after_the_grace(instance, sink, alerts):
    """A3: sessions past decision time + grace without post_trade_positions alert once;
    traded sessions, holidays and sessions before `start` never do."""
    now = [datetime(2026, 11, 25, 16, 10, tzinfo=NY)]
    sensor = missed_sensor(now, start=datetime(2026, 11, 19, 0, 0, tzinfo=NY))
    report_post_trade(instance, date(2026, 11, 20))
    report_post_trade(instance, date(2026, 11, 23))

    # 16:10 is within the 30-minute grace of the 25th's 15:45 decision: only the 19th and
    # the 24th are missed so far.
    cursor = tick(sensor, alerts, instance, None)
    cursor = tick(sensor, alerts, instance, cursor)
    assert [a.session for a in sink.sent] == [date(2026, 11, 19), date(2026, 11, 24)]

    now[0] = datetime(2026, 11, 25, 16, 16, tzinfo=NY)
    cursor = tick(sensor, alerts, instance, cursor)
    cursor = tick(sensor, alerts, instance, cursor)
    assert [a.session for a in sink.sent][2:] == [date(2026, 11, 25)]

    # Thanksgiving is not a session; the early close on the 27th is due at 12:45 + 30 min.
    now[0] = datetime(2026, 11, 27, 13, 14, tzinfo=NY)
    cursor = tick(sensor, alerts, instance, cursor)
    assert len(sink.sent) == 3
    now[0] = datetime(2026, 11, 27, 13, 15, tzinfo=NY)
    for _ in range(3):
        cursor = tick(sensor, alerts, instance, cursor)

    assert [a.session for a in sink.sent] == [
        date(2026, 11, 19),
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 27),
    ]
    assert all(a.kind == "missed_session" and a.severity == "critical" for a in sink.sent)
    assert "2026-11-27 12:45 EST" in sink.sent[-1].detail
    # The cursor is JSON and holds only sessions the window can still see.
    assert cursor is not None
    assert json.loads(cursor)["alerted"] == [
        "2026-11-19",
        "2026-11-24",
        "2026-11-25",
        "2026-11-27",
    ]


def test_missed_session_watches_from_first_evaluation_without_start(instance, sink, alerts):
    """A3: switched on for the first time, the sensor does not report the sessions before
    it; the first session after it that goes untraded alerts."""
    now = [datetime(2026, 11, 25, 17, 0, tzinfo=NY)]
    sensor = missed_sensor(now, grace=timedelta(minutes=5))
    cursor = tick(sensor, alerts, instance, None)
    assert sink.sent == []

    now[0] = datetime(2026, 11, 27, 12, 50, tzinfo=NY)
    cursor = tick(sensor, alerts, instance, cursor)
    cursor = tick(sensor, alerts, instance, cursor)
    assert [a.session for a in sink.sent] == [date(2026, 11, 27)]


def test_a_real_successful_run_counts_as_traded(run_daily, instance, sink, alerts):
    """A3: the daily job's own materialization of post_trade_positions clears the session."""
    assert run_daily(SESSION, instance=instance).success
    now = [datetime(2026, 11, 24, 18, 0, tzinfo=NY)]
    sensor = missed_sensor(now, start=datetime(2026, 11, 24, tzinfo=NY))

    tick(sensor, alerts, instance, None)
    assert sink.sent == []


def test_default_missed_session_sensor_is_registered_with_a_bounded_interval():
    assert missed_session_sensor.minimum_interval_seconds == 300


# -- B6: residuals -----------------------------------------------------------------------------


def test_residuals_alert_once_per_materialization(instance, sink, alerts):
    """B6: a materialization with unfilled residuals alerts once, naming the session and
    the symbols; a clean one never alerts."""
    sensor = build_residuals_sensor()
    report_post_trade(instance, date(2026, 11, 20))
    report_post_trade(instance, date(2026, 11, 23), {"TECL": "3", "SHY": "-1.5"})

    cursor = tick(sensor, alerts, instance, None)
    cursor = tick(sensor, alerts, instance, cursor)
    assert len(sink.sent) == 1
    [alert] = sink.sent
    assert alert.kind == "residuals"
    assert alert.session == date(2026, 11, 23)
    assert "TECL: 3" in alert.detail and "SHY: -1.5" in alert.detail

    # Two sessions materialized between ticks (a backfill) each alert.
    report_post_trade(instance, date(2026, 11, 24), {"TQQQ": "2"})
    report_post_trade(instance, date(2026, 11, 25), {"UPRO": "1"})
    for _ in range(3):
        cursor = tick(sensor, alerts, instance, cursor)
    assert [a.session for a in sink.sent] == [
        date(2026, 11, 23),
        date(2026, 11, 24),
        date(2026, 11, 25),
    ]


def test_real_run_without_residuals_does_not_alert(run_daily, instance, sink, alerts):
    """B6: the asset's real residuals table, empty after a fully filled demo run, is read
    as "no residuals" (guards the parser against the asset's format)."""
    assert run_daily(SESSION, instance=instance).success
    sensor = build_residuals_sensor()

    cursor = tick(sensor, alerts, instance, None)
    assert cursor is not None
    assert sink.sent == []


def test_unreadable_residuals_metadata_is_not_silence():
    """B6: a materialization without the table alerts rather than passing as clean."""
    assert parse_residuals({}) != []


def test_default_residuals_sensor_uses_the_alert_file(instance, tmp_path):
    """B6: the registered sensor delivers through the deployment's alert sinks."""
    alert_file = tmp_path / "alerts.jsonl"
    alerts = deployment_alerts(tmp_path, TECL_ALERT_FILE=str(alert_file))
    report_post_trade(instance, SESSION, {"TECL": "1"})

    cursor = tick(residuals_sensor, alerts, instance, None)
    tick(residuals_sensor, alerts, instance, cursor)

    [line] = alert_file.read_text().splitlines()
    assert json.loads(line)["session"] == SESSION.isoformat()


@pytest.mark.parametrize(
    ("key", "session"),
    [
        ("2026-11-24", date(2026, 11, 24)),
        (None, None),
        ("", None),
        ("backfill-2026", None),  # a foreign partition key is no session, not a crash
    ],
)
def test_a_partition_key_names_a_session_or_none(key, session):
    assert session_of(key) == session
