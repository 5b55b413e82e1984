"""The resources of each deployment, built from its `Settings` and nothing else.

A deployment is a mode (demo / paper / live) and a state store (local `file://` or S3).
The mode decides where market data come from and which broker is traded with which keys;
the state URI decides where the journal lives. Resources get values, never the
environment: secrets reach them only as `EnvVar`, so none enters the code location
snapshot (S2), and each resource checks its own values when it is built.
"""

from collections.abc import Mapping
from typing import Any

from dagster import EnvVar

from tecl_pipeline.config.settings import ENV_KEYS, Mode, Settings
from tecl_pipeline.defs.resources import (
    AlertsResource,
    BrokerResource,
    MarketDataResource,
    ObservabilityResource,
    StateResource,
    TradingPolicyResource,
)
from tecl_pipeline.defs.run_tags import DATA_SOURCE_TAG, MODE_TAG
from tecl_pipeline.defs.step_outputs import s3_outputs
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline.trading.stopping import StopRequest

# The resources whose fields a caller may set on top of the deployment's (drills use it
# for fast fill polling and backoff, the CLI for a quiet stderr).
CONFIGURABLE = frozenset({"broker", "trading_policy", "observability"})


def _alpaca_credentials(settings: Settings) -> dict[str, Any]:
    if settings.secret_id:
        # The id names the secret; the keys stay in Secrets Manager until a run needs them.
        return {
            "secret_id": settings.secret_id,
            "secrets_region": settings.aws_region,
            "secrets_region_var": settings.aws_region_var,
            "secrets_endpoint_url": settings.secrets_endpoint_url,
        }
    return {
        "api_key": EnvVar(ENV_KEYS["alpaca_api_key"]),
        "secret_key": EnvVar(ENV_KEYS["alpaca_secret_key"]),
    }


def market_data_resource(settings: Settings) -> MarketDataResource:
    """Replayed CSV closes when a data folder is set; otherwise generated data in demo
    mode and Alpaca's market data in paper and live."""
    feed = settings.data_feed.value
    if settings.data_dir is not None:
        return MarketDataResource(source="csv", data_dir=str(settings.data_dir), feed=feed)
    if settings.mode is Mode.DEMO:
        return MarketDataResource(source="demo", feed=feed)
    return MarketDataResource(
        source="alpaca", url=settings.data_url, feed=feed, **_alpaca_credentials(settings)
    )


def run_labels(settings: Settings, market_data: MarketDataResource) -> dict[str, str]:
    """The tags every run of this deployment starts with: its mode and its market data
    (Alpaca's with its feed)."""
    source = market_data.source
    if source == "alpaca":
        source = f"alpaca-{market_data.feed}"
    return {MODE_TAG: settings.mode.value, DATA_SOURCE_TAG: source}


def alerts_resource(settings: Settings) -> AlertsResource:
    """The deployment's alert sinks. Apprise URLs are checked here, as the definitions load
    (https only, C4, S5): the resource itself only ever sees the EnvVar, resolved when a run
    starts."""
    redactor = Redactor.for_settings(settings)
    apprise = settings.alert_apprise_url
    if apprise is not None:
        from tecl_pipeline.observability.apprise_sink import apprise_sinks

        # Raises ConfigError naming TECL_APPRISE_URL, in one line without the URL.
        apprise_sinks(apprise.get_secret_value(), redactor)
    return AlertsResource(
        log_dir=str(settings.logs_dir),
        alert_file=None if settings.alert_file is None else str(settings.alert_file),
        webhook_url=None
        if settings.alert_webhook_url is None
        else EnvVar(ENV_KEYS["alert_webhook_url"]),
        apprise_url=None if apprise is None else EnvVar(ENV_KEYS["alert_apprise_url"]),
        redactor=redactor,
    )


def deployment_resources(
    settings: Settings,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    alerting: bool = True,
    shared_outputs: bool = True,
) -> dict[str, object]:
    """The deployment's resources; `overrides` sets fields of the resources in
    CONFIGURABLE on top. Without `alerting` (a preview: `tecl doctor`, a dry run) what
    would be an alert is logged only: no alert file, no webhook. Without `shared_outputs`
    the steps' outputs stay in the instance's storage whatever the state (the soak and the
    replay, which clear it after every session)."""
    extra = overrides or {}
    unknown = sorted(set(extra) - CONFIGURABLE)
    if unknown:
        raise ValueError(f"resource_config: no configurable resource {', '.join(unknown)}")
    demo = settings.mode is Mode.DEMO
    market_data = market_data_resource(settings)
    alerts = (
        alerts_resource(settings)
        if alerting
        else AlertsResource(redactor=Redactor.for_settings(settings))
    )
    observability = ObservabilityResource(
        log_dir=str(settings.logs_dir),
        alerts=alerts,
        run_tags=run_labels(settings, market_data),
        **extra.get("observability", {}),
    )
    # In demo mode against a separately started simulator, real-looking keys are optional.
    real_keys = not demo or settings.secret_id or settings.has_alpaca_keys
    broker = BrokerResource(
        mode=settings.mode.value,
        url=settings.broker_url,
        data_url=settings.data_url,
        book_path=str(settings.machine_dir / "demo-broker" / "account.json"),
        market_data_source=market_data,
        observability=observability,
        **(_alpaca_credentials(settings) if real_keys else {}),
        **extra.get("broker", {}),
    )
    io_manager = s3_outputs(settings.state_uri, settings.aws_region) if shared_outputs else None
    return {
        **({"io_manager": io_manager} if io_manager is not None else {}),
        # Never set here; `tecl run` passes its own, which its SIGTERM handler sets.
        "stop_request": StopRequest(),
        "market_data_source": market_data,
        "broker": broker,
        "alerts": alerts,
        "observability": observability,
        "state": StateResource(state_uri=settings.state_uri, local_dir=str(settings.machine_dir)),
        "trading_policy": TradingPolicyResource(**extra.get("trading_policy", {})),
    }
