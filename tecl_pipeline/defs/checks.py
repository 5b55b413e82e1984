"""Checks that stand between the data and the orders, and that check the broker after."""

import functools
import warnings
from collections.abc import Callable
from datetime import date

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetsDefinition,
    PreviewWarning,
    asset_check,
)

from tecl_pipeline.core.data_quality import (
    FRESHNESS_KINDS,
    data_problems,
    describe_problems,
    group_problems,
)
from tecl_pipeline.core.errors import TradingWindowError
from tecl_pipeline.core.outcomes import CHECKED
from tecl_pipeline.core.strategy import Decision
from tecl_pipeline.core.universe import HOLDINGS
from tecl_pipeline.defs.assets import (
    PostTradePositions,
    TargetAllocation,
    market_data,
    post_trade_positions,
    signal,
    target_allocation,
)
from tecl_pipeline.defs.history import history_db
from tecl_pipeline.defs.partitions import CALENDAR, session_partitions
from tecl_pipeline.defs.presentation import markdown_table
from tecl_pipeline.defs.refusals import tell_checks_session_refused
from tecl_pipeline.defs.resources import (
    BrokerResource,
    StateResource,
    TradingPolicyResource,
)
from tecl_pipeline.state.history_store import read_signals
from tecl_pipeline.trading.execution import check_trading_window
from tecl_pipeline.trading.reconcile import post_trade_problems, pre_trade_problems


def _evaluate(
    context: AssetCheckExecutionContext,
    market_data: pd.DataFrame,
    *,
    fresh: bool,
) -> AssetCheckResult:
    """One family of data problems (freshness, or sanity of the values) for the session;
    on failure the description names every symbol and date (the run's alert carries it),
    and nothing downstream runs."""
    session = date.fromisoformat(context.partition_key)
    problems = [
        p
        for p in data_problems(market_data, session, CALENDAR)
        if (p.kind in FRESHNESS_KINDS) == fresh
    ]
    what = "fresh" if fresh else "sane"
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"market data {what} for session {session}"
            if not problems
            else f"not trading session {session}: {describe_problems(problems)}"
        ),
        metadata={
            "session": session.isoformat(),
            "problems": markdown_table(
                ("symbols", "problem", "detail"),
                [(", ".join(g.symbols), g.kind, g.detail) for g in group_problems(problems)],
                empty=f"no problem: market data {what} for session {session}",
            ),
        },
    )


# Failure mode T1 (missing or stale data).
def _market_data_fresh(
    context: AssetCheckExecutionContext, market_data: pd.DataFrame
) -> AssetCheckResult:
    """Every symbol is there, its latest bar is the session, with a full warm-up."""
    return _evaluate(context, market_data, fresh=True)


# Failure modes T1 (bad data), T4 (implausible jumps), X2 (unadjusted corporate actions).
def _market_data_sane(
    context: AssetCheckExecutionContext, market_data: pd.DataFrame
) -> AssetCheckResult:
    """Dates unique and in order, no NaN in the window, positive prices, and no one-day
    move beyond what the fund can make without a corporate action."""
    return _evaluate(context, market_data, fresh=False)


# Failure modes D4 (desynchronisation), B6 (partial fills), X3 (duplicate triggers),
# B7 (buying power).
def _post_trade_reconciled(
    context: AssetCheckExecutionContext, post_trade_positions: PostTradePositions
) -> AssetCheckResult:
    """No residual worth a trade by the minimum-trade rule execution used, no order of the
    session still working, no client order id used twice, no margin loan."""
    after = post_trade_positions
    problems = post_trade_problems(
        after.targets,
        after.positions,
        after.prices,
        after.session_orders,
        min_trade_notional=after.min_trade_notional,
        cash=after.cash,
    )
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems) or f"session {after.session} reconciled with the broker",
        metadata={
            "problems": len(problems),
            "orders": len(after.session_orders),
            "min_trade_notional": float(after.min_trade_notional),
            "residuals_below_minimum": len(after.residuals_below_minimum),
        },
    )


def _signal_parity(
    context: AssetCheckExecutionContext, signal: Decision, state: StateResource
) -> AssetCheckResult:
    """The live decision equals the history's decision from the session's close (WARN: near a
    threshold the live price at 15:45 and the close can honestly disagree; both are shown)."""
    session = date.fromisoformat(context.partition_key)
    stored = read_signals(history_db(state), session, session)
    if stored.empty:
        # Nothing to compare with is "not checked", never a pass.
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description=(
                f"not checked: no history row for session {session} to compare with; "
                f"`tecl backfill --start {session} --end {session}` after the close"
            ),
            metadata={CHECKED: False, "live_leaf": signal.leaf},
        )
    row = stored.iloc[0]
    history_weights = {s: row[s] for s in HOLDINGS if row[s] != 0}
    same = row["leaf"] == signal.leaf and history_weights == dict(signal.allocation)
    live = f"live {signal.leaf} {dict(signal.allocation)}"
    close = f"history {row['leaf']} {history_weights}"
    return AssetCheckResult(
        passed=same,
        severity=AssetCheckSeverity.WARN,
        description=(f"live and history agree on {signal.leaf}" if same else f"{live} != {close}"),
        metadata={"live_leaf": signal.leaf, "history_leaf": str(row["leaf"])},
    )


# Failure modes: account and funding X8, B7; prices T4, X2; trading window T2, T3;
# journal vs broker D4.
def _pre_trade_ready(
    context: AssetCheckExecutionContext,
    target_allocation: TargetAllocation,
    broker: BrokerResource,
    trading_policy: TradingPolicyResource,
) -> AssetCheckResult:
    """Blocking before the orders: USD account not blocked, the plan funded, decision prices
    confirmed by the broker's latest trades, the market open inside the session's window by
    the broker's clock. Journal-vs-broker differences only warn: a split is one, and it must
    not stop the trading day."""
    session = target_allocation.session
    snapshot = target_allocation.broker_before
    problems = pre_trade_problems(snapshot.account, snapshot.plan) + list(snapshot.price_problems)
    with broker.connect(session) as client:
        try:
            check_trading_window(client.get_clock(), session, CALENDAR, trading_policy.policy())
        except TradingWindowError as exc:
            problems.append(str(exc))
    changes = [str(c) for c in target_allocation.unexplained_changes]
    unrecorded = ", ".join(d.isoformat() for d in target_allocation.sessions_without_record)
    if problems:
        severity, description = AssetCheckSeverity.ERROR, "; ".join(problems)
    else:
        severity = AssetCheckSeverity.WARN
        description = (
            "positions differ from the journal: " + "; ".join(changes)
            if changes
            else f"ready to trade session {session}"
        )
        if unrecorded:
            description += f" (no journal record for {unrecorded}: bridged by the broker's fills)"
    return AssetCheckResult(
        passed=not problems and not changes,
        severity=severity,
        description=description,
        metadata={
            "problems": len(problems),
            "journal_differences": len(changes),
            # Reconciled through the broker's fills instead (D4): said, not hidden.
            "sessions_without_record": unrecorded or "-",
        },
    )


def _refusing(
    asset: AssetsDefinition, fn: Callable[..., AssetCheckResult]
) -> Callable[..., AssetCheckResult]:
    """A blocking check that fails refuses the session: the checks downstream, which will
    not run, say so and why."""

    @functools.wraps(fn)
    def check(context: AssetCheckExecutionContext, **inputs: object) -> AssetCheckResult:
        result = fn(context, **inputs)
        if not result.passed and result.severity == AssetCheckSeverity.ERROR:
            reason = result.description or "a blocking check failed"
            tell_checks_session_refused(context, asset.key, reason, own_checks=False)
        return result

    return check


def _partitioned_check(
    asset: AssetsDefinition, name: str, fn: Callable[..., AssetCheckResult], *, blocking: bool
) -> AssetChecksDefinition:
    if blocking:
        fn = _refusing(asset, fn)
    # A check on a partitioned asset needs the partitions (or it loads every partition);
    # Dagster marks that as preview, which we accept knowingly rather than warn each load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return asset_check(
            asset=asset, name=name, blocking=blocking, partitions_def=session_partitions
        )(fn)


TRADING_CHECKS = (
    _partitioned_check(market_data, "market_data_fresh", _market_data_fresh, blocking=True),
    _partitioned_check(market_data, "market_data_sane", _market_data_sane, blocking=True),
    _partitioned_check(
        post_trade_positions, "post_trade_reconciled", _post_trade_reconciled, blocking=False
    ),
    _partitioned_check(target_allocation, "pre_trade_ready", _pre_trade_ready, blocking=True),
    _partitioned_check(signal, "signal_parity", _signal_parity, blocking=False),
)
