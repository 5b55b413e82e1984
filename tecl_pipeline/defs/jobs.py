"""Jobs a person or a schedule launches."""

from dagster import AssetSelection, define_asset_job

from tecl_pipeline.defs.assets import GROUP
from tecl_pipeline.defs.failure_alerts import run_failure_alert_hook

daily_trading_job = define_asset_job(
    "daily_trading_job",
    selection=AssetSelection.groups(GROUP),
    description="Decide and trade one session: data, indicators, signal, target, orders, "
    "positions. Blocking checks stop it before any order on untrustworthy data.",
    # The failure alert comes from inside the run, so it fires however the run started (C1).
    hooks={run_failure_alert_hook},
)
