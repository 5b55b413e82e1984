"""The one `Definitions` object, built from the deployment settings in the environment."""

import os
from pathlib import Path

from dagster import Definitions

from tecl_pipeline.defs.assets import TRADING_ASSETS
from tecl_pipeline.defs.checks import TRADING_CHECKS
from tecl_pipeline.defs.jobs import daily_trading_job
from tecl_pipeline.defs.resources import (
    BrokerResource,
    MarketDataResource,
    StateResource,
    TradingPolicyResource,
)
from tecl_pipeline.settings import Settings


def resources_for(settings: Settings) -> dict[str, object]:
    state_dir = settings.state_dir
    return {
        "market_data_source": (
            MarketDataResource(source="csv", data_dir=str(settings.data_dir))
            if settings.data_dir is not None
            else MarketDataResource(source="demo")
        ),
        "broker": BrokerResource(book_path=str(state_dir / "demo-broker" / "book.json")),
        "state": StateResource(state_dir=str(state_dir)),
        "trading_policy": TradingPolicyResource(),
    }


def build_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=TRADING_ASSETS,
        asset_checks=TRADING_CHECKS,
        jobs=[daily_trading_job],
        resources=resources_for(settings),
    )


defs = build_definitions(Settings.from_env(os.environ, cwd=Path.cwd()))
