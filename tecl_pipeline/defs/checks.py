"""Checks that stand between the data and the orders."""

import warnings
from collections.abc import Callable
from datetime import date

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    PreviewWarning,
    asset_check,
)

from tecl_pipeline.data_quality import FRESHNESS_KINDS, data_problems
from tecl_pipeline.defs.assets import market_data
from tecl_pipeline.defs.partitions import session_partitions
from tecl_pipeline.defs.presentation import markdown_table
from tecl_pipeline.defs.resources import ObservabilityResource


def _evaluate(
    context: AssetCheckExecutionContext,
    market_data: pd.DataFrame,
    observability: ObservabilityResource,
    *,
    fresh: bool,
) -> AssetCheckResult:
    """One family of data problems (freshness, or sanity of the values) for the session;
    on failure the alert names every symbol and date, and nothing downstream runs."""
    session = date.fromisoformat(context.partition_key)
    problems = [
        p for p in data_problems(market_data, session) if (p.kind in FRESHNESS_KINDS) == fresh
    ]
    what = "fresh" if fresh else "sane"
    if problems:
        observability.alert(
            "refused",
            f"session {session}: market data not {what}, no orders",
            "; ".join(str(p) for p in problems),
            session=session,
            run_id=context.run.run_id,
        )
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"market data {what} for session {session}"
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


def _market_data_fresh(
    context: AssetCheckExecutionContext,
    market_data: pd.DataFrame,
    observability: ObservabilityResource,
) -> AssetCheckResult:
    """Every symbol is there, its latest bar is the session, with a full warm-up (T1)."""
    return _evaluate(context, market_data, observability, fresh=True)


def _market_data_sane(
    context: AssetCheckExecutionContext,
    market_data: pd.DataFrame,
    observability: ObservabilityResource,
) -> AssetCheckResult:
    """Dates unique and in order, no NaN in the window, positive prices, and no one-day
    move beyond what the fund can make without a corporate action (T1, T4, X2)."""
    return _evaluate(context, market_data, observability, fresh=False)


def _blocking_check(name: str, fn: Callable[..., AssetCheckResult]) -> AssetChecksDefinition:
    # A check on a partitioned asset needs the partitions (or it loads every partition);
    # Dagster marks that as preview, which we accept knowingly rather than warn each load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return asset_check(
            asset=market_data, name=name, blocking=True, partitions_def=session_partitions
        )(fn)


TRADING_CHECKS = [
    _blocking_check("market_data_fresh", _market_data_fresh),
    _blocking_check("market_data_sane", _market_data_sane),
]
