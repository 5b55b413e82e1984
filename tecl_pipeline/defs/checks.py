"""Checks that stand between the data and the orders."""

import warnings
from datetime import date

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    PreviewWarning,
    asset_check,
)

from tecl_pipeline.data_quality import data_problems
from tecl_pipeline.defs.assets import market_data
from tecl_pipeline.defs.partitions import session_partitions
from tecl_pipeline.defs.presentation import markdown_table
from tecl_pipeline.defs.resources import ObservabilityResource


def _market_data_trustworthy(
    context: AssetCheckExecutionContext,
    market_data: pd.DataFrame,
    observability: ObservabilityResource,
) -> AssetCheckResult:
    """Every symbol has a bar for the session, no NaN, positive prices and a full warm-up.

    Blocking: on failure nothing downstream runs, so no order is sent on such data (T1).
    """
    session = date.fromisoformat(context.partition_key)
    problems = data_problems(market_data, session)
    if problems:
        observability.alert(
            "refused",
            f"session {session}: market data unfit, no orders",
            "; ".join(str(p) for p in problems),
            session=session,
            run_id=context.run.run_id,
        )
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"market data fit for session {session}"
            if not problems
            else f"not trading session {session}: " + "; ".join(str(p) for p in problems)
        ),
        metadata={
            "session": session.isoformat(),
            "problems": markdown_table(
                ("symbol", "problem", "detail"), [(p.symbol, p.kind, p.detail) for p in problems]
            ),
        },
    )


# A check on a partitioned asset needs the partitions (or it loads every partition); Dagster
# marks that as preview, which we accept knowingly rather than warn on every load.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PreviewWarning)
    market_data_trustworthy = asset_check(
        asset=market_data,
        name="market_data_trustworthy",
        blocking=True,
        partitions_def=session_partitions,
    )(_market_data_trustworthy)

TRADING_CHECKS = [market_data_trustworthy]
