"""Jobs a person or a schedule launches."""

from dagster import AssetSelection, define_asset_job

from tecl_pipeline.defs.assets import GROUP

daily_trading_job = define_asset_job(
    "daily_trading_job",
    selection=AssetSelection.groups(GROUP),
    description="Decide and trade one session: data, indicators, signal, target, orders, "
    "positions. Blocking checks stop it before any order on untrustworthy data.",
)
