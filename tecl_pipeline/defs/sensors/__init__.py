"""Sensors that turn what went wrong into alerts: run failures (C1), missed sessions (A3)
and unfilled residuals (B6). Each alert fires once: the cursors remember what was sent."""

from dagster import SensorDefinition

from tecl_pipeline.defs.sensors.missed_session import missed_session_sensor
from tecl_pipeline.defs.sensors.residuals import residuals_sensor
from tecl_pipeline.defs.sensors.run_failure import run_failure_alert_sensor

ALERT_SENSORS: tuple[SensorDefinition, ...] = (
    run_failure_alert_sensor,
    missed_session_sensor,
    residuals_sensor,
)

__all__ = (
    "ALERT_SENSORS",
    "missed_session_sensor",
    "residuals_sensor",
    "run_failure_alert_sensor",
)
