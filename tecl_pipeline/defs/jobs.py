"""Jobs a person or a schedule launches."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from tecl_pipeline.defs.assets import GROUP
from tecl_pipeline.defs.failure_alerts import run_failure_alert_hook

daily_trading_job = define_asset_job(
    "daily_trading_job",
    selection=AssetSelection.groups(GROUP),
    description="Decide and trade one session: data, indicators, signal, target, orders, "
    "positions. Blocking checks stop it before any order on untrustworthy data.",
    # The failure alert comes from inside the run, so it fires however the run started (C1).
    hooks={run_failure_alert_hook},
    # Steps in the run's own process, one after another, as `tecl run` executes them: the
    # steps are a chain and each takes milliseconds to a second, where a new interpreter
    # per step (the multiprocess executor) took two seconds each, 20 of a launched run's
    # 32 s. A crash of any step ends the run, which run monitoring and the next run handle.
    executor_def=in_process_executor,
)
