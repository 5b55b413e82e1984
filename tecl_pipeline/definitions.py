"""The one `Definitions` object, built from the deployment settings in the environment."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import Definitions, EnvVar

from tecl_pipeline.config.settings import Mode, Settings
from tecl_pipeline.defs.assets import TRADING_ASSETS
from tecl_pipeline.defs.checks import TRADING_CHECKS
from tecl_pipeline.defs.history import HISTORY_ASSETS, signal_history_job
from tecl_pipeline.defs.jobs import daily_trading_job
from tecl_pipeline.defs.resources import (
    BrokerResource,
    MarketDataResource,
    ObservabilityResource,
    StateResource,
    TradingPolicyResource,
)
from tecl_pipeline.defs.schedules import daily_trading_schedule
from tecl_pipeline.defs.sensors import ALERT_SENSORS
from tecl_pipeline.trading.execution import StopRequest


def _alpaca_credentials(settings: Settings) -> dict[str, object]:
    if settings.secret_id:
        # The id names the secret; the keys stay in Secrets Manager until a run needs them.
        return {"secret_id": settings.secret_id}
    # EnvVar, not the value: the secret never enters the code location snapshot (S2).
    return {"api_key": EnvVar("ALPACA_API_KEY"), "secret_key": EnvVar("ALPACA_SECRET_KEY")}


def resources_for(
    settings: Settings,
    environ: Mapping[str, str],
    resource_config: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, object]:
    """The deployment's resources; `resource_config` sets fields of the broker, the trading
    policy and observability on top (drills use it for fast fill polling and backoff, the
    CLI for a quiet stderr)."""
    extra = resource_config or {}
    unknown = sorted(set(extra) - {"broker", "trading_policy", "observability"})
    if unknown:
        raise ValueError(f"resource_config: no configurable resource {', '.join(unknown)}")
    local_dir = settings.machine_dir
    demo = settings.mode is Mode.DEMO
    if settings.data_dir is not None:
        market_data = MarketDataResource(source="csv", data_dir=str(settings.data_dir))
    elif demo:
        market_data = MarketDataResource(source="demo")
    else:
        market_data = MarketDataResource(
            source="alpaca", url=settings.data_url, **_alpaca_credentials(settings)
        )
    # In demo mode against a separately started simulator, real-looking keys are optional.
    real_keys = not demo or settings.secret_id or environ.get("ALPACA_API_KEY")
    credentials = _alpaca_credentials(settings) if real_keys else {}
    observability = ObservabilityResource(
        log_dir=str(settings.logs_dir),
        alert_file=environ.get("TECL_ALERT_FILE") or None,
        webhook_url=EnvVar("TECL_ALERT_WEBHOOK_URL")
        if environ.get("TECL_ALERT_WEBHOOK_URL")
        else None,
        **extra.get("observability", {}),
    )
    broker = BrokerResource(
        mode=settings.mode.value,
        url=settings.broker_url,
        data_url=settings.data_url,
        book_path=str(local_dir / "demo-broker" / "account.json"),
        market_data_source=market_data,
        observability=observability,
        **credentials,
        **extra.get("broker", {}),
    )
    return {
        # Never set here; `tecl run` passes its own, which its SIGTERM handler sets.
        "stop_request": StopRequest(),
        "market_data_source": market_data,
        "broker": broker,
        "observability": observability,
        "state": StateResource(state_uri=settings.state_uri, local_dir=str(local_dir)),
        "trading_policy": TradingPolicyResource(**extra.get("trading_policy", {})),
    }


def build_definitions(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    resource_config: Mapping[str, Mapping[str, Any]] | None = None,
) -> Definitions:
    return Definitions(
        assets=[*TRADING_ASSETS, *HISTORY_ASSETS],
        asset_checks=TRADING_CHECKS,
        jobs=[daily_trading_job, signal_history_job],
        schedules=[daily_trading_schedule],
        sensors=list(ALERT_SENSORS),
        resources=resources_for(
            settings, os.environ if environ is None else environ, resource_config or {}
        ),
    )


defs = build_definitions(Settings.from_env(os.environ, cwd=Path.cwd()))
