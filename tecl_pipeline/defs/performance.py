"""How the account is doing: the journal's sessions beside the backtest of the same sessions.

`live_performance` is one unpartitioned asset over every session the journal holds, brought
up to date by a sensor after each new `post_trade_positions` materialization, whichever way
the session ran (the schedule, the launchpad, `tecl run` on the same instance).
"""

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetRecordsFilter,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from tecl_pipeline.core.backtest import Figures
from tecl_pipeline.core.performance import (
    BACKTEST,
    LIVE,
    LiveComparison,
    account_figures,
    compare_with_backtest,
)
from tecl_pipeline.core.performance_charts import inline_markdown, render_live_png
from tecl_pipeline.core.strategy import signal_history
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.defs.assets import post_trade_positions
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.presentation import markdown_table, money
from tecl_pipeline.defs.resources import (
    MarketDataResource,
    ObservabilityResource,
    StateResource,
    TradingPolicyResource,
)
from tecl_pipeline.state.journal.records import account_point

GROUP: Final = "performance"
LIVE_PNG: Final = "live_performance.png"
LIVE_PERFORMANCE_JOB: Final = "live_performance_job"
STUCK_AFTER: Final = timedelta(hours=1)
"""A live_performance run takes seconds; one unfinished after this long is not waited on."""
RECENT: Final = 10
"""Sessions shown in the per-session tracking table (the plot and the figures cover all)."""


@asset(
    group_name=GROUP,
    deps=[post_trade_positions],
    kinds={"pandas"},
    description=(
        "The account's equity from the journal since its first session beside the backtest "
        "of the same sessions from the same starting equity on the same closes: plot, "
        "allocation, drawdown, tracking difference, and the sessions where the two held "
        "different things, with the reason."
    ),
)
def live_performance(
    context: AssetExecutionContext,
    market_data_source: MarketDataResource,
    state: StateResource,
    trading_policy: TradingPolicyResource,
    observability: ObservabilityResource,
) -> MaterializeResult:
    journal = state.journal(
        on_event=observability.event_sink(
            run_id=context.run.run_id, log=observability.redact_step_log(context.log)
        )
    )
    recorded = [account_point(record) for record in journal.history()]
    source = market_data_source.open(CALENDAR)
    closes = source.closes(SYMBOLS, through=recorded[-1].session) if recorded else None
    signals = signal_history(closes) if closes is not None else None
    # Sessions before the market data's warm-up have no backtest to stand beside: left
    # out, and said; so are those before the account was funded (compare_with_backtest).
    points = [
        p for p in recorded if signals is not None and pd.Timestamp(p.session) in signals.index
    ]
    if closes is None or signals is None or sum(p.equity > 0 for p in points) < 2:
        return MaterializeResult(
            metadata={
                "sessions": len(recorded),
                "journal": journal.location,
                "comparison": MetadataValue.md(
                    f"The journal holds {len(recorded)} recorded session(s), {len(points)} "
                    "of them funded and within the market data's signals; the comparison "
                    "with the backtest starts with the second."
                ),
            }
        )
    comparison = compare_with_backtest(
        points, signals, closes, cash_reserve=trading_policy.policy().cash_reserve
    )
    png = render_live_png(comparison)
    png_path = Path(state.local_dir) / LIVE_PNG
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(png)
    latest = account_figures(recorded)[-1]
    tracking = comparison.tracking
    return MaterializeResult(
        metadata={
            "equity_curves": MetadataValue.md(inline_markdown(comparison)),
            "figures": _figures_table(comparison),
            "equity": float(latest.equity),
            "total_pnl": float(latest.total_pnl),
            "live_return": round(comparison.figures[LIVE].total_return, 6),
            "backtest_return": round(comparison.figures[BACKTEST].total_return, 6),
            "tracking_difference": round(float(tracking["cumulative"].iloc[-1]), 6),
            "divergent_sessions": len(comparison.divergences),
            "divergences": markdown_table(
                ("session", "why live and the backtest held different things"),
                [(d.session, "; ".join(d.reasons)) for d in comparison.divergences],
                empty="none: on every session live held what the backtest held",
            ),
            "tracking_by_session": markdown_table(
                ("session", "live equity", "backtest equity", "session difference", "cumulative"),
                _tracking_rows(comparison),
            ),
            "sessions": len(comparison.tracking),
            "sessions_left_out": len(recorded) - len(comparison.tracking),
            "first_session": str(comparison.tracking.index[0].date()),
            "last_session": str(points[-1].session),
            "plot": MetadataValue.md(
                "![live vs backtest](data:image/png;base64,"
                f"{base64.b64encode(png).decode('ascii')})"
            ),
            "plot_path": MetadataValue.path(str(png_path)),
            "journal": journal.location,
            "data_source": source.description,
        }
    )


def _figures_table(comparison: LiveComparison) -> MetadataValue:
    def row(name: str, f: Figures) -> tuple[str, ...]:
        # A few weeks' return raised to a yearly rate is noise, not a figure.
        years = (f.end - f.start).days / 365.25
        cagr = f"{f.cagr:.2%}" if years >= 1 else "under a year"
        return (name, f"{f.total_return:.2%}", cagr, f"{f.max_drawdown:.2%}")

    cumulative = float(comparison.tracking["cumulative"].iloc[-1])
    return markdown_table(
        ("series", "return", "CAGR", "max drawdown"),
        [
            *(row(name, comparison.figures[name]) for name in (LIVE, BACKTEST)),
            ("live - backtest", f"{cumulative:+.2%}", "", ""),
        ],
    )


def _tracking_rows(comparison: LiveComparison) -> list[tuple[object, ...]]:
    recent = comparison.tracking.iloc[-RECENT:]
    live = comparison.equity[LIVE].loc[recent.index]
    backtest = comparison.equity[BACKTEST].loc[recent.index]
    return [
        (day.date(), money(_cents(a)), money(_cents(b)), f"{step:+.2%}", f"{total:+.2%}")
        for day, a, b, step, total in zip(
            pd.DatetimeIndex(recent.index),
            live.astype(float),
            backtest.astype(float),
            recent["session"].astype(float),
            recent["cumulative"].astype(float),
            strict=True,
        )
    ]


def _cents(value: float) -> Decimal:
    return Decimal(str(round(value, 2)))


live_performance_job = define_asset_job(
    LIVE_PERFORMANCE_JOB,
    selection=[live_performance],
    description="Bring live_performance up to date with the journal.",
)


# A run in one of these states will still read the journal, or is reading it now.
_UNFINISHED = (
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
)


def _now() -> datetime:
    return datetime.now(UTC)


def build_live_performance_sensor(
    *, clock: Callable[[], datetime] = _now, name: str = "live_performance_sensor"
) -> SensorDefinition:
    @sensor(
        name=name,
        job=live_performance_job,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="After each session's positions are recorded, update live_performance.",
    )
    def _sensor(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        """One run for every new post_trade_positions materialization, or for several at
        once: the run reads the whole journal. While a run is unfinished nothing is asked
        and the cursor stays, so a session recorded meanwhile gets the next run (a backfill
        of many sessions makes a few runs, not one each)."""
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=post_trade_positions.key), limit=1, ascending=False
        ).records
        if not records or str(records[0].storage_id) == context.cursor:
            return SkipReason("no post_trade_positions materialization since the last update")
        latest = records[0]
        # A run still unfinished after STUCK_AFTER is taken as stuck (a killed worker where
        # no run monitoring marks it failed): waiting on it would stop the updates for good.
        unfinished = context.instance.get_runs(
            RunsFilter(
                job_name=LIVE_PERFORMANCE_JOB,
                statuses=list(_UNFINISHED),
                created_after=clock() - STUCK_AFTER,
            ),
            limit=1,
        )
        if unfinished:
            return SkipReason(f"live_performance run {unfinished[0].run_id} is not finished yet")
        context.update_cursor(str(latest.storage_id))
        return RunRequest(run_key=f"after-{latest.storage_id}")

    return _sensor


live_performance_sensor = build_live_performance_sensor()


PERFORMANCE_ASSETS: Final = (live_performance,)
