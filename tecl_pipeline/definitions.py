"""The one `Definitions` object, built from the deployment settings in the environment."""

from collections.abc import Mapping
from typing import Any

from dagster import Definitions

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.defs.assets import TRADING_ASSETS
from tecl_pipeline.defs.checks import TRADING_CHECKS
from tecl_pipeline.defs.deployments import deployment_resources
from tecl_pipeline.defs.history import HISTORY_ASSETS, signal_history_job
from tecl_pipeline.defs.jobs import daily_trading_job
from tecl_pipeline.defs.performance import (
    PERFORMANCE_ASSETS,
    live_performance_job,
    live_performance_sensor,
)
from tecl_pipeline.defs.schedules import daily_trading_schedule
from tecl_pipeline.defs.sensors import ALERT_SENSORS


def build_definitions(
    settings: Settings,
    *,
    resource_config: Mapping[str, Mapping[str, Any]] | None = None,
    shared_outputs: bool = True,
) -> Definitions:
    return Definitions(
        assets=[*TRADING_ASSETS, *PERFORMANCE_ASSETS, *HISTORY_ASSETS],
        asset_checks=TRADING_CHECKS,
        jobs=[daily_trading_job, signal_history_job, live_performance_job],
        schedules=[daily_trading_schedule],
        sensors=[*ALERT_SENSORS, live_performance_sensor],
        resources=deployment_resources(settings, resource_config, shared_outputs=shared_outputs),
    )


defs = build_definitions(Settings.read())
