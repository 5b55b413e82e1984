"""History side: every historical signal in a queryable table, and a backtest of it.

Why yearly partitions and not one per session: each materialized asset-partition costs the
instance ~15-100 ms of event-log writes, so ~1,200 session partitions would spend a minute or
more in Dagster alone while signal_history computes every session in well under a second.
A session is a real event only for trading (decisions, orders, reconciliation: the daily
chain keeps per-session partitions); for history a year is a unit a person backfills or
inspects, and the whole history is a handful of partitions. One run (BackfillPolicy
.single_run) computes signal_history over the full closes once (RSI needs the warm-up
anyway) and replaces the requested range in SQLite; it returns MaterializeResult, so no
pickle IO manager ever sees a multi-partition output.
"""

import base64
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    BetaWarning,
    Config,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionsDefinition,
    asset,
    define_asset_job,
)

from tecl_pipeline.core.backtest import (
    BENCHMARKS,
    FIGURE_HEADERS,
    STRATEGY,
    figure_rows,
    leaf_rows,
    render_png,
    run_backtest,
)
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.data_quality import require_sessions_only
from tecl_pipeline.core.strategy import signal_history
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.presentation import inline_table, markdown_table
from tecl_pipeline.defs.resources import MarketDataResource, StateResource
from tecl_pipeline.defs.run_report import error_cause, is_untrusted_input
from tecl_pipeline.state.history_store import Provenance, read_signals, replace_range

GROUP: Final = "history"
HISTORY_DB: Final = "history.sqlite"
BACKTEST_PNG: Final = "backtest.png"
HISTORY_JOB: Final = "signal_history_job"
# The tags of a single run over a range of partitions, as the UI's single-run backfill sets
# them: the values of Dagster's ASSET_PARTITION_RANGE_START_TAG / _END_TAG in
# dagster/_core/storage/tags.py, which Dagster does not export.
PARTITION_RANGE_START_TAG: Final = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG: Final = "dagster/asset_partition_range_end"
# The earliest year any supported data set has a signal: the demo data start 2019-01-02 and
# are warm 250 bars later, in late 2019. The real data (KMLM from December 2020) start
# 2021-11-29, so their 2019 and 2020 partitions materialize with zero rows.
HISTORY_START_YEAR: Final = 2019

# Key "2024" = sessions of 2024. end_offset=1: the current, unfinished year is a partition.
history_partitions = TimeWindowPartitionsDefinition(
    cron_schedule="0 0 1 1 *",
    start=f"{HISTORY_START_YEAR}",
    fmt="%Y",
    timezone=str(EXCHANGE_TZ),
    end_offset=1,
)


def history_db(state: StateResource) -> Path:
    """Machine-local, like the session locks: a derived table, rebuilt from closes any time."""
    return Path(state.local_dir) / HISTORY_DB


def _signal_history_table(
    context: AssetExecutionContext,
    market_data_source: MarketDataResource,
    state: StateResource,
) -> MaterializeResult:
    # A single-run backfill over several years arrives as one run whose time window spans
    # the whole range; a single partition is the same code with a one-year window.
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()  # sessions in [start, end)
    source = market_data_source.open(CALENDAR)
    through = min(source.latest_session(SYMBOLS), end - timedelta(days=1))
    # Computed from the first bar whatever the range: the RSI's value on a session depends on
    # every bar before it, and signal_history on the full closes equals it on a cut.
    closes = source.closes(SYMBOLS, through=through)
    require_sessions_only(closes, CALENDAR)
    history = signal_history(closes)
    rows = history.loc[pd.Timestamp(start) : pd.Timestamp(end) - pd.Timedelta(days=1)]
    provenance = Provenance(
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data_source=source.description,
        run_id=context.run.run_id,
    )
    written = replace_range(history_db(state), rows, start, end, provenance)
    per_year = rows.groupby(pd.DatetimeIndex(rows.index).year).size()
    leaf_counts = rows["leaf"].value_counts()
    context.log.info("wrote %d signal rows for [%s, %s)", written, start, end)
    return MaterializeResult(
        # One result for the whole range: Dagster records it on every partition of the run,
        # so the figures describe the run's range, broken down per year.
        metadata={
            "range": f"{start} .. {end - timedelta(days=1)}",
            "rows_written": written,
            "first_session": str(rows.index[0].date()) if written else "-",
            "last_session": str(rows.index[-1].date()) if written else "-",
            "rows_per_year": markdown_table(
                ("year", "sessions"),
                [(y, int(n)) for y, n in per_year.items()],
                empty="no sessions with enough data in this range",
            ),
            "leaf_counts": markdown_table(("leaf", "sessions", "share"), leaf_rows(leaf_counts))
            if written
            else MetadataValue.md("no sessions with enough data in this range"),
            "data_source": source.description,
            "table": MetadataValue.path(str(history_db(state))),
        }
    )


class BacktestConfig(Config):
    """Costs per unit of turnover, in basis points (0 by default: the figures are gross)."""

    cost_bps: float = 0.0


# One run per backfill is what makes the full history fast; Dagster marks the policy beta,
# which we accept knowingly rather than warn on every load.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)
    signal_history_table = asset(
        group_name=GROUP,
        partitions_def=history_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"pandas", "sqlite"},
        description=(
            "signal_history on every session with enough data, one row per session in "
            f"<local_dir>/{HISTORY_DB}, table `signals` (weights as exact decimal strings)."
        ),
        name="signal_history_table",
    )(_signal_history_table)


@asset(
    group_name=GROUP,
    deps=[signal_history_table],
    kinds={"pandas"},
    description=(
        "The signal history backtested on adjusted closes against buy-and-hold TECL and SPY; "
        "figures, convention and plot in the metadata."
    ),
)
def backtest(
    context: AssetExecutionContext,
    config: BacktestConfig,
    market_data_source: MarketDataResource,
    state: StateResource,
) -> MaterializeResult:
    signals = read_signals(history_db(state))
    if len(signals) < 2:
        raise ValueError(
            f"{history_db(state)} holds {len(signals)} signal(s): materialize (backfill) "
            "signal_history_table first"
        )
    source = market_data_source.open(CALENDAR)
    last = signals.index[-1].date()
    closes = source.closes(tuple(dict.fromkeys((*SYMBOLS, *BENCHMARKS))), through=last)
    result = run_backtest(signals, closes, cost_bps=config.cost_bps)

    # A gap in the table is held through (the previous decision stays in force); say so.
    span = closes.loc[signals.index[0] : signals.index[-1]].index
    missing = span.difference(signals.index)
    png = render_png(result)
    png_path = Path(state.local_dir) / BACKTEST_PNG
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(png)
    data_uri = base64.b64encode(png).decode("ascii")
    strategy = result.figures[STRATEGY]
    return MaterializeResult(
        metadata={
            "figures": inline_table(FIGURE_HEADERS, figure_rows(result)),
            "convention": MetadataValue.md(result.convention),
            # The UI renders a markdown image with a data URI inline; the file is for sharing.
            "plot": MetadataValue.md(f"![backtest equity](data:image/png;base64,{data_uri})"),
            "plot_path": MetadataValue.path(str(png_path)),
            "leaf_counts": markdown_table(
                ("leaf", "sessions", "share"),
                leaf_rows(result.leaf_counts),
                empty="no decisions in the history",
            ),
            "first_decision": str(strategy.start.date()),
            "last_decision": str(strategy.end.date()),
            "holding_periods": strategy.periods,
            "sessions_missing_from_table": len(missing),
            "cost_bps": config.cost_bps,
            "cagr": strategy.cagr,
            "max_drawdown": strategy.max_drawdown,
            "sharpe": strategy.sharpe,
            "annual_turnover": strategy.annual_turnover,
            "data_source": source.description,
        }
    )


HISTORY_ASSETS: Final = (signal_history_table, backtest)
# Partitioned by the selected asset (Dagster infers it); the job exists so the CLI and the UI
# address the history backfill by name, apart from the session-partitioned trading assets.
signal_history_job = define_asset_job(HISTORY_JOB, selection=[signal_history_table])


@dataclass(frozen=True)
class BackfillSummary:
    start: date
    end: date
    partitions: tuple[str, ...]
    run_id: str
    success: bool
    rows_in_range: int
    first_session: date | None
    last_session: date | None
    seconds: float
    # Why a failed run failed, in one line, and whether it was the data (not trustworthy:
    # nothing stored) rather than an error of the machine or the code.
    problem: str = ""
    untrusted_data: bool = False

    def describe(self) -> str:
        outcome = "ok" if self.success else "FAILED"
        span = f"{self.first_session} .. {self.last_session}" if self.rows_in_range else "-"
        return (
            f"backfill {self.start} .. {self.end}: {outcome}, partitions "
            f"{self.partitions[0]}..{self.partitions[-1]} in one run ({self.run_id}), "
            f"{self.rows_in_range} session(s) in range ({span}), {self.seconds:.1f} s"
        )


def history_partition_keys(start: date, end: date, instance: DagsterInstance) -> list[str]:
    """The yearly partitions overlapping [start, end] (a partition is rewritten whole)."""
    if start > end:
        raise ValueError(f"--start {start} is after --end {end}")
    keys = history_partitions.get_partition_keys()
    chosen = [k for k in keys if start.year <= int(k) <= end.year]
    if not chosen:
        raise ValueError(
            f"no history partition overlaps {start} .. {end} (partitions {keys[0]}..{keys[-1]})"
        )
    return chosen


def run_backfill(
    start: date,
    end: date,
    *,
    instance: DagsterInstance,
    defs: Definitions,
    log_level: str = "DEBUG",
) -> BackfillSummary:
    """`tecl backfill --start D --end D`: materialize the yearly partitions of
    signal_history_table overlapping [start, end] in ONE run on `instance`, as the UI's
    single-run backfill does (the partition-range tags), and report what the table holds."""
    keys = history_partition_keys(start, end, instance)
    job = defs.resolve_job_def(HISTORY_JOB)
    began = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        tags={PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    seconds = time.perf_counter() - began
    state = (defs.resources or {}).get("state")
    if not isinstance(state, StateResource):
        raise TypeError(f"resource 'state' is a {type(state).__name__}, not a StateResource")
    stored = read_signals(history_db(state), start, end)
    if result.success:
        # Every partition must have its materialization: a range run that silently skipped
        # some would leave the UI showing stale years.
        done = {
            event.partition
            for event in result.get_asset_materialization_events()
            if event.asset_key == AssetKey("signal_history_table")
        }
        if done != set(keys):
            materialized = sorted(done, key=str)
            raise RuntimeError(f"run {result.run_id} materialized {materialized}, not {keys}")
    problem, untrusted = ("", False) if result.success else _failure(result)
    return BackfillSummary(
        problem=problem,
        untrusted_data=untrusted,
        start=start,
        end=end,
        partitions=tuple(keys),
        run_id=result.run_id,
        success=result.success,
        rows_in_range=len(stored),
        first_session=stored.index[0].date() if len(stored) else None,
        last_session=stored.index[-1].date() if len(stored) else None,
        seconds=seconds,
    )


def _failure(result: ExecuteInProcessResult) -> tuple[str, bool]:
    """The failed step's cause in words, and whether it is data the pipeline refuses to
    trust (the same distinction as `tecl run`'s exit 2 and 1)."""
    failures = result.get_step_failure_events()
    if not failures:
        return "the run failed before any step ran", False
    error = failures[0].step_failure_data.error
    return error_cause(error), is_untrusted_input(error)
