"""`daily_trading_job`'s shape with every body empty: what a run costs in Dagster itself.

Same asset keys, partitions, inputs (so the IO manager stores and loads every value as in the
real run), and the same checks with the same blocking flags; no resources, no work. It lives
here, not in the product: it exists only to be measured against the real job. `job_shape`
lets the benchmark refuse to run when this copy has drifted from the real job.
"""

import warnings
from collections.abc import Callable

from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetsDefinition,
    Definitions,
    JobDefinition,
    PreviewWarning,
    asset,
    asset_check,
    define_asset_job,
)

from tecl_pipeline.defs.partitions import session_partitions

GROUP = "trading"
JOB = "daily_trading_job"


@asset(group_name=GROUP, partitions_def=session_partitions)
def market_data() -> object:
    return None


@asset(group_name=GROUP, partitions_def=session_partitions)
def indicators(market_data: object) -> object:
    return None


@asset(group_name=GROUP, partitions_def=session_partitions)
def signal(indicators: object) -> object:
    return None


@asset(group_name=GROUP, partitions_def=session_partitions)
def target_allocation(signal: object, market_data: object) -> object:
    return None


@asset(group_name=GROUP, partitions_def=session_partitions)
def executed_orders(target_allocation: object) -> object:
    return None


@asset(group_name=GROUP, partitions_def=session_partitions)
def post_trade_positions(
    executed_orders: object, target_allocation: object, signal: object
) -> object:
    return None


# Each check takes its asset's value, so Dagster loads it, as for the real check.
def _market_data_fresh(market_data: object) -> AssetCheckResult:
    return AssetCheckResult(passed=True)


def _market_data_sane(market_data: object) -> AssetCheckResult:
    return AssetCheckResult(passed=True)


def _post_trade_reconciled(post_trade_positions: object) -> AssetCheckResult:
    return AssetCheckResult(passed=True)


def _pre_trade_ready(target_allocation: object) -> AssetCheckResult:
    return AssetCheckResult(passed=True)


def _signal_parity(signal: object) -> AssetCheckResult:
    return AssetCheckResult(passed=True)


def _check(
    asset_def: AssetsDefinition,
    name: str,
    fn: Callable[..., AssetCheckResult],
    *,
    blocking: bool,
) -> AssetChecksDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return asset_check(
            asset=asset_def, name=name, blocking=blocking, partitions_def=session_partitions
        )(fn)


def noop_definitions() -> Definitions:
    checks = [
        _check(market_data, "market_data_fresh", _market_data_fresh, blocking=True),
        _check(market_data, "market_data_sane", _market_data_sane, blocking=True),
        _check(
            post_trade_positions,
            "post_trade_reconciled",
            _post_trade_reconciled,
            blocking=False,
        ),
        _check(target_allocation, "pre_trade_ready", _pre_trade_ready, blocking=True),
        _check(signal, "signal_parity", _signal_parity, blocking=False),
    ]
    assets = [
        market_data,
        indicators,
        signal,
        target_allocation,
        executed_orders,
        post_trade_positions,
    ]
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[define_asset_job(JOB, selection=assets)],
    )


def job_shape(job: JobDefinition) -> dict[str, object]:
    """Assets with their parents and partitions, checks with their blocking flag."""
    graph = job.asset_layer.asset_graph
    return {
        "assets": {
            key.to_user_string(): (
                sorted(p.to_user_string() for p in graph.get(key).parent_keys),
                graph.get(key).partitions_def,
            )
            for key in graph.get_all_asset_keys()
        },
        "checks": {
            f"{key.asset_key.to_user_string()}:{key.name}": graph.get_check_spec(key).blocking
            for key in graph.asset_check_keys
        },
    }
