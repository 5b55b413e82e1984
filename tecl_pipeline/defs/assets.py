"""The daily trading chain, one partition per session:
market data -> indicators -> signal -> target allocation -> executed orders -> positions.

Each asset loads its inputs, calls the pure core, and returns the result with the metadata
a person checks in the UI. Anything that makes trading unsafe stops the chain as a refusal.
"""

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
from dagster import AssetExecutionContext, Failure, MetadataValue, Output, ResourceParam, asset

from tecl_pipeline.common.events import EventSink, Severity
from tecl_pipeline.core.data_quality import require_trustworthy
from tecl_pipeline.core.errors import RefusedToTrade, TradingStopped, describe
from tecl_pipeline.core.indicators import indicator_table
from tecl_pipeline.core.outcomes import OUTCOME, Outcome
from tecl_pipeline.core.performance import (
    SessionFigures,
    account_figures,
    figures_after,
    position_figures,
)
from tecl_pipeline.core.portfolio import round_price, to_decimal
from tecl_pipeline.core.strategy import Decision, evaluate_tecl_table
from tecl_pipeline.core.universe import HOLDINGS, SYMBOLS
from tecl_pipeline.defs.daily_summary import DAILY_SUMMARY, daily_summary
from tecl_pipeline.defs.partitions import CALENDAR, session_partitions
from tecl_pipeline.defs.presentation import (
    ORDER_HEADERS,
    markdown_table,
    money,
    order_rows,
    percent,
    share_price,
)
from tecl_pipeline.defs.refusals import refusing_to_trade, tell_checks_session_refused
from tecl_pipeline.defs.resources import (
    BrokerResource,
    MarketDataResource,
    ObservabilityResource,
    StateResource,
    TradingPolicyResource,
)
from tecl_pipeline.defs.run_tags import LEAF_TAG, OUTCOME_TAG, tag_run, trading_outcome
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline.state.journal.records import SessionRecord, account_point, record_basis
from tecl_pipeline.state.locks import session_lock
from tecl_pipeline.trading.broker import Broker
from tecl_pipeline.trading.execution import (
    ORDER_ID_PREFIX,
    BrokerSnapshot,
    ExecutionReport,
    Pacing,
    StopRequest,
    execute,
    list_session_orders,
    orders_window_start,
    plan_from_broker,
    session_prefix,
)
from tecl_pipeline.trading.models import Order, Trade
from tecl_pipeline.trading.reconcile import (
    PositionChange,
    fills_after_record,
    minutes,
    residuals,
    traded_at,
    unexplained_position_changes,
)

GROUP = "trading"
RESIDUAL_REPORT = "residual_report"
"""Metadata key of post_trade_positions' residuals as JSON (see `Residuals.to_json`)."""


@dataclass(frozen=True)
class TargetAllocation:
    """The decision's weights at the session's prices, and the broker state they meet."""

    session: date
    weights: dict[str, Decimal]
    prices: dict[str, Decimal]
    broker_before: BrokerSnapshot
    unexplained_changes: tuple[PositionChange, ...] = ()
    """Journal-vs-broker differences no order explains (corporate actions, D4/X2)."""
    sessions_without_record: tuple[date, ...] = ()
    """Sessions between the last journal record and this one that have none (D4)."""


@dataclass(frozen=True)
class PostTradePositions:
    session: date
    positions: dict[str, Decimal]
    targets: dict[str, Decimal]
    residuals: dict[str, Decimal]
    """target - held where the difference is worth a trade (the minimum-trade rule)."""
    cash: Decimal
    equity: Decimal
    journal_record: str
    prices: dict[str, Decimal]
    session_orders: tuple[Order, ...]
    """The session's orders as the broker reports them after trading."""
    min_trade_notional: Decimal
    """The minimum trade execution used: residuals below it were left on purpose."""
    residuals_below_minimum: dict[str, Decimal]
    """target - held where the difference was not worth a trade: left on purpose."""


def _session(context: AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def _refusals(
    context: AssetExecutionContext, observability: ObservabilityResource
) -> AbstractContextManager[None]:
    """A refusal stops the chain and reaches the alert path, naming the session and why;
    the checks it leaves unrun say so too. Every trading step enters here first, so this is
    also where its own log lines get the run's redaction."""
    observability.redact_step_log(context.log)
    session = _session(context)

    def alert(reason: str) -> None:
        observability.alert(
            "refused",
            f"session {session}: refused to trade",
            reason,
            session=session,
            run_id=context.run.run_id,
        )
        tell_checks_session_refused(context, context.asset_key, reason, own_checks=True)

    return refusing_to_trade(alert)


def _journal_alerts(
    context: AssetExecutionContext, observability: ObservabilityResource
) -> EventSink:
    """Journal events (quarantined objects, spooled or dropped records) for the run's
    event log and the alert path."""
    return observability.event_sink(
        session=_session(context),
        run_id=context.run.run_id,
        log=observability.redact_step_log(context.log),
    )


def session_prices(closes: pd.DataFrame, symbols: tuple[str, ...]) -> dict[str, Decimal]:
    """Reference prices at the session close, at the broker's tick size."""
    last = closes.iloc[-1]
    return {s: round_price(to_decimal(float(last[s]), f"{s} close")) for s in symbols}


@asset(group_name=GROUP, partitions_def=session_partitions, kinds={"pandas"})
def market_data(
    context: AssetExecutionContext,
    market_data_source: MarketDataResource,
    state: StateResource,
    observability: ObservabilityResource,
) -> Output:
    """Adjusted daily closes of the ten symbols up to and including the session."""
    session = _session(context)
    with _refusals(context, observability):
        CALENDAR.require_session(session)
        # The state answers before anything is stored in it (A4, A5): with the state in S3
        # this step's output is the first thing written there (defs/step_outputs.py).
        # target_allocation asks again before trading: a re-execution may start there.
        state.journal(on_event=_journal_alerts(context, observability)).preflight()
        source = market_data_source.open(CALENDAR)
        closes = source.closes(SYMBOLS, through=session)
        # Shown beside the decision prices; the broker's own trades confirm them later.
        trades = source.latest_trades(SYMBOLS)
    latest = closes.apply(lambda col: col.last_valid_index())
    rows = [
        (
            s,
            latest[s].date() if latest[s] is not None else "-",
            share_price(float(closes[s].iloc[-1])),
            *_trade_cells(trades.get(s)),
        )
        for s in closes.columns
    ]
    context.log.info(f"market data: {source.description}")
    return Output(
        closes,
        metadata={
            "source": source.description,
            "demo_data": source.is_demo,
            "session": session.isoformat(),
            "rows": len(closes),
            "first_date": str(closes.index[0].date()) if len(closes) else "-",
            "decision_price": source.price_basis,
            "latest_bars": markdown_table(
                ("symbol", "latest bar", "close", "latest trade", "traded at", "feed"),
                rows,
                empty="no closes: the data source returned no symbol",
            ),
        },
    )


def _trade_cells(trade: Trade | None) -> tuple[str, str, str]:
    if trade is None:
        return ("-", "-", "-")
    return (share_price(trade.price), traded_at(trade), trade.feed)


@asset(group_name=GROUP, partitions_def=session_partitions, kinds={"pandas"})
def indicators(
    context: AssetExecutionContext,
    market_data: pd.DataFrame,
    observability: ObservabilityResource,
) -> Output:
    """Price, SMA(200), RSI(10) and RSI(9) per symbol at the session (Wilder RSI)."""
    session = _session(context)
    with _refusals(context, observability):
        require_trustworthy(market_data, session, CALENDAR)
        table = indicator_table(market_data[list(SYMBOLS)])
    rows = [
        (
            s,
            share_price(float(r.price)),
            share_price(float(r.sma_200)),
            f"{r.rsi_10:.2f}",
            f"{r.rsi_9:.2f}",
        )
        for s, r in table.iterrows()
    ]
    return Output(
        table,
        metadata={
            "session": session.isoformat(),
            "indicators": markdown_table(("symbol", "price", "SMA200", "RSI10", "RSI9"), rows),
        },
    )


@asset(group_name=GROUP, partitions_def=session_partitions, kinds={"python"})
def signal(
    context: AssetExecutionContext,
    indicators: pd.DataFrame,
    observability: ObservabilityResource,
) -> Output:
    """The strategy's decision: leaf, the path that led to it, and the target weights."""
    with _refusals(context, observability):
        decision = evaluate_tecl_table(indicators)
    context.log.info(f"leaf {decision.leaf}: {decision.reason}")
    tag_run(context.instance, context.run.run_id, {LEAF_TAG: decision.leaf})
    return Output(
        decision,
        metadata={
            "leaf": decision.leaf,
            "regime": decision.regime,
            "reason": MetadataValue.md(decision.reason),
            "allocation": markdown_table(
                ("symbol", "weight"),
                [(s, percent(w)) for s, w in decision.allocation.items()],
                empty="no holding: the decision allocates nothing",
            ),
        },
    )


# The reconciliation with the journal is failure mode D4, the corporate action X2.
@asset(group_name=GROUP, partitions_def=session_partitions, kinds={"python", "alpaca"})
def target_allocation(
    context: AssetExecutionContext,
    signal: Decision,
    market_data: pd.DataFrame,
    broker: BrokerResource,
    trading_policy: TradingPolicyResource,
    state: StateResource,
    observability: ObservabilityResource,
) -> Output:
    """Weights turned into share quantities at the account's equity, and the planned orders.

    Also reconciles the broker's positions with the journal of the last session and the
    fills since: a difference no order explains is a corporate action, shown here and never
    traded against, since quantities always come from the broker.
    """
    session = _session(context)
    with _refusals(context, observability):
        # No trading without the state it needs (A4, A5): the journal answers first, and
        # records an earlier failed write left in the spool are written now (D1).
        journal = state.journal(on_event=_journal_alerts(context, observability))
        journal.preflight()
        replayed = journal.replay_spool()
        previous = journal.latest_before(session)
        policy = trading_policy.policy()
        prices = session_prices(market_data, HOLDINGS)
        read_prices = session_prices(market_data, SYMBOLS)
        with broker.connect(session) as client:
            snapshot = plan_from_broker(
                client,
                signal.allocation,
                prices,
                policy,
                session=session,
                read_prices=read_prices,
                calendar=CALENDAR,
            )
            changes, unrecorded = _journal_vs_broker(previous, session, client, snapshot.held)
    for change in changes:
        context.log.warning(f"position changed without an order (corporate action?): {change}")
    if unrecorded:
        context.log.warning(
            f"no journal record for session(s) {_days(unrecorded)}: reconciled from the "
            f"record of {previous.session if previous else '-'} and the broker's fills since"
        )
    for problem in snapshot.price_problems:
        context.log.warning(f"decision price not confirmed by the broker: {problem}")
    plan = snapshot.plan
    target = TargetAllocation(
        session=session,
        weights=dict(signal.allocation),
        prices=prices,
        broker_before=snapshot,
        unexplained_changes=tuple(changes),
        sessions_without_record=tuple(unrecorded),
    )
    rows = [
        (
            s,
            percent(signal.allocation.get(s, Decimal(0))),
            share_price(prices[s]),
            plan.targets.get(s, Decimal(0)),
            snapshot.held.get(s, Decimal(0)),
        )
        for s in HOLDINGS
        if s in signal.allocation or s in snapshot.held
    ]
    return Output(
        target,
        metadata={
            "equity": float(snapshot.account.equity),
            "cash": float(snapshot.account.cash),
            "targets": markdown_table(
                ("symbol", "weight", "price", "target qty", "held"),
                rows,
                empty="no target and nothing held",
            ),
            "journal": journal.location,
            "previous_record": f"{previous.session} run {previous.run_id}" if previous else "-",
            "spooled_records_replayed": replayed,
            "sessions_without_record": _days(unrecorded),
            "journal_vs_broker": markdown_table(
                ("symbol", "journal + fills", "broker", "note"),
                [(c.symbol, c.expected, c.actual, _no_order_note(unrecorded)) for c in changes],
                empty="no difference: the broker holds what the journal and fills say",
            ),
            "planned_orders": markdown_table(
                ("side", "symbol", "qty", "notional"),
                [(o.side, o.symbol, o.qty, money(o.notional)) for o in plan.orders],
                empty="no orders planned: every position is within a minimum trade of its target",
            ),
            "decision_prices": markdown_table(
                ("symbol", "decision price", "broker's latest trade", "traded at", "feed", "age"),
                _price_rows(read_prices, snapshot),
                empty="no decision prices",
            ),
            "max_price_age_minutes": policy.max_price_age.total_seconds() / 60,
        },
    )


def _price_rows(
    decided: Mapping[str, Decimal], snapshot: BrokerSnapshot
) -> list[tuple[object, ...]]:
    """Each decision price beside the broker trade that confirms it, and that trade's age by
    the broker's clock (the policy refuses a trade older than max_price_age)."""
    rows: list[tuple[object, ...]] = []
    for symbol, price in decided.items():
        trade = snapshot.quotes.get(symbol)
        if trade is None or snapshot.quoted_at is None:
            rows.append((symbol, share_price(price), "-", "-", "-", "-"))
            continue
        age = minutes(trade.age(snapshot.quoted_at))
        rows.append((symbol, share_price(price), *_trade_cells(trade), age))
    return rows


def _journal_vs_broker(
    previous: SessionRecord | None,
    session: date,
    client: Broker,
    held: Mapping[str, Decimal],
) -> tuple[list[PositionChange], list[date]]:
    """Positions no order explains since the last record, and the sessions in between that
    have no record (D4). A missing record (an interrupted run, a deleted or quarantined file)
    is bridged by the broker's own order history: every fill of our orders since the
    record's session, whichever run sent them."""
    if previous is None:
        return [], []
    days = CALENDAR.sessions(previous.session, session)
    since = tuple(session_prefix(day) for day in days)
    listed = client.list_orders(
        ORDER_ID_PREFIX, submitted_after=orders_window_start(previous.session)
    )
    orders = [o for o in listed if o.client_order_id.startswith(since)]
    fills = fills_after_record(previous.orders, orders)
    changes = unexplained_position_changes(previous.positions, fills, held)
    return changes, [day for day in days if previous.session < day < session]


def _days(days: list[date] | tuple[date, ...]) -> str:
    return ", ".join(day.isoformat() for day in days) or "-"


def _no_order_note(unrecorded: list[date]) -> str:
    if not unrecorded:
        return "no order explains it"
    return f"no order explains it (fills of {_days(unrecorded)} from the broker, no record)"


def _what_the_broker_has(client: Broker, session: date) -> str:
    """The session's orders and the positions as the broker reports them now, for the alert
    of a run that failed while trading; each read on its own, as either may be what failed."""
    parts = []
    try:
        orders = list_session_orders(client, session)
    except Exception as exc:
        parts.append(f"the session's orders could not be read ({describe(exc)})")
    else:
        parts.append("orders at the broker: " + (", ".join(o.summary for o in orders) or "none"))
    try:
        positions = client.get_positions()
    except Exception as exc:
        parts.append(f"positions could not be read ({describe(exc)})")
    else:
        held = ", ".join(f"{s} {p.qty}" for s, p in sorted(positions.items())) or "none"
        parts.append(f"positions now: {held}")
    return "; ".join(parts)


@asset(group_name=GROUP, partitions_def=session_partitions, kinds={"python", "alpaca"})
def executed_orders(
    context: AssetExecutionContext,
    target_allocation: TargetAllocation,
    broker: BrokerResource,
    trading_policy: TradingPolicyResource,
    state: StateResource,
    observability: ObservabilityResource,
    stop_request: ResourceParam[StopRequest],
) -> Output:
    """Orders sent to the broker for the session, sells first, each under a deterministic
    client order id so that a re-run or a second trigger cannot trade twice."""
    session = _session(context)
    policy = trading_policy.policy()
    with (
        _refusals(context, observability),
        session_lock(state.lock_dir, session),
        broker.connect(session) as client,
    ):
        context.log.info(f"trading through {client.description}")
        try:
            # The broker's clock is checked first and before every order (T2, T3).
            report = execute(
                client,
                session,
                target_allocation.weights,
                target_allocation.prices,
                policy,
                Pacing(stop_requested=stop_request),
                calendar=CALENDAR,
            )
        except RefusedToTrade:
            raise
        except TradingStopped as exc:
            observability.alert(
                Outcome.STOPPED.value,
                f"session {session}: trading stopped on request",
                str(exc),
                session=session,
                run_id=context.run.run_id,
                severity=Severity.CRITICAL,
            )
            raise Failure(
                description=str(exc),
                metadata={OUTCOME: Outcome.STOPPED.value},
                allow_retries=False,
            ) from exc
        except Exception as exc:
            # Orders may have gone out before the failure: a sell filled and its buy not is
            # a changed account with no record yet. Say what the broker has, loudly.
            where = _what_the_broker_has(client, session)
            cause = describe(exc)
            observability.alert(
                "trading_incomplete",
                f"session {session}: trading stopped part way",
                f"{cause}. {where}",
                session=session,
                run_id=context.run.run_id,
                severity=Severity.CRITICAL,
            )
            raise Failure(
                description=f"trading stopped part way: {cause}. {where}",
                metadata={OUTCOME: Outcome.INCOMPLETE.value, "error": type(exc).__name__},
            ) from exc
    return Output(
        report,
        metadata={
            "broker": report.broker,
            "orders_sent": len(report.sent),
            **_order_tables(report),
            "skipped": markdown_table(
                ("symbol", "reason"), report.skipped, empty="no skipped orders"
            ),
        },
    )


SAME_ORDERS = "the same orders as `orders`: every order of the session is one this run sent"


def _order_tables(report: ExecutionReport) -> dict[str, MetadataValue]:
    """This run's orders and the session's orders at the broker. Usually they are the same
    rows, shown once; both tables only when they differ: a re-run that sent nothing, orders
    an earlier run of the session sent, or the broker reporting an order otherwise."""
    sent = order_rows(report.sent)
    at_broker = order_rows(report.session_orders)
    orders = markdown_table(ORDER_HEADERS, sent, empty="no orders sent by this run")
    if sent and set(sent) == set(at_broker):
        return {"orders": orders, "session_orders": MetadataValue.md(SAME_ORDERS)}
    session_orders = markdown_table(
        ORDER_HEADERS, at_broker, empty="no orders of this session at the broker"
    )
    return {"orders": orders, "session_orders": session_orders}


@asset(group_name=GROUP, partitions_def=session_partitions, kinds={"python", "alpaca"})
def post_trade_positions(
    context: AssetExecutionContext,
    executed_orders: ExecutionReport,
    target_allocation: TargetAllocation,
    signal: Decision,
    market_data_source: MarketDataResource,
    broker: BrokerResource,
    trading_policy: TradingPolicyResource,
    state: StateResource,
    observability: ObservabilityResource,
) -> Output:
    """Positions at the broker after trading, their distance from the target, journaled,
    and the account's figures since its first session.

    A journal write that fails is spooled on this machine and written by the next run; the
    step still fails, loudly, so that nobody mistakes an unrecorded session for done.
    """
    # The spooled write is D1's promise.
    session = _session(context)
    with broker.connect(session) as client:
        account = client.get_account()
        positions = {s: p.qty for s, p in client.get_positions().items()}
        session_orders = tuple(list_session_orders(client, session))
    targets = dict(executed_orders.plan.targets)
    left = residuals(
        targets, positions, target_allocation.prices, trading_policy.policy().min_trade_notional
    )
    record = SessionRecord(
        session=session,
        run_id=context.run.run_id,
        written_at=datetime.now().astimezone(),
        data_source=market_data_source.open(CALENDAR).description,
        broker=executed_orders.broker,
        leaf=signal.leaf,
        reason=signal.reason,
        weights=dict(signal.allocation),
        orders=list(session_orders),
        positions=positions,
        cash=account.cash,
        equity=account.equity,
        prices=dict(target_allocation.prices),
        residuals={r.symbol: r.qty for r in left.open},
    )
    journal = state.journal(on_event=_journal_alerts(context, observability))
    figures = _figures_of(journal, record, context.log)
    if figures is not None:
        # The next session measures its figures from this record alone.
        record = record.model_copy(
            update={
                "first_session": figures.first_session,
                "first_equity": figures.first_equity,
                "peak_equity": figures.peak,
            }
        )
    path = journal.append(record)
    tag_run(
        context.instance, context.run.run_id, {OUTCOME_TAG: trading_outcome(executed_orders).value}
    )
    # The session in a few lines for a phone, once it is journaled; neither the builder
    # nor the alert path raises, so the summary never fails the step.
    summary = daily_summary(
        signal, executed_orders, target_allocation, left, figures, orders=session_orders
    )
    observability.alert(
        DAILY_SUMMARY,
        summary.title,
        summary.detail,
        session=session,
        run_id=context.run.run_id,
        severity=Severity.INFO,
    )
    result = PostTradePositions(
        session=session,
        positions=positions,
        targets=targets,
        residuals={r.symbol: r.qty for r in left.open},
        cash=account.cash,
        equity=account.equity,
        journal_record=str(path),
        prices=target_allocation.prices,
        session_orders=session_orders,
        min_trade_notional=left.min_trade_notional,
        residuals_below_minimum={r.symbol: r.qty for r in left.below_minimum},
    )
    residual_headers = ("symbol", "target - held", "value")
    held = position_figures(positions, target_allocation.prices, account.equity, signal.allocation)
    return Output(
        result,
        metadata={
            # Numbers, so that the Plots tab draws each of them by session.
            "equity": float(account.equity),
            "cash": float(account.cash),
            **_account_metadata(figures),
            "positions": markdown_table(
                ("symbol", "qty", "target qty", "price", "value", "weight", "target weight"),
                [
                    (
                        p.symbol,
                        p.qty,
                        targets.get(p.symbol, Decimal(0)),
                        share_price(p.price) if p.price is not None else "-",
                        money(p.value) if p.value is not None else "-",
                        percent(p.weight) if p.weight is not None else "-",
                        percent(p.target_weight),
                    )
                    for p in held
                ],
            ),
            "residuals": markdown_table(
                residual_headers,
                [(r.symbol, r.qty, _value(r.notional)) for r in left.open],
                empty="no residuals: every position is at its target",
            ),
            "residuals_below_minimum": markdown_table(
                residual_headers,
                [(r.symbol, r.qty, _value(r.notional)) for r in left.below_minimum],
                empty="none",
            ),
            "residual_count": len(left.open),
            # What the residuals sensor reads (B6): numbers, not the tables above.
            RESIDUAL_REPORT: MetadataValue.json(left.to_json()),
            "journal_record": MetadataValue.path(str(path)),
        },
    )


def _value(notional: Decimal | None) -> str:
    return money(notional) if notional is not None else "no price"


def _account_metadata(figures: SessionFigures | None) -> dict[str, MetadataValue]:
    if figures is None:
        return {"account": MetadataValue.md("Figures unavailable: see the run's log.")}
    return {
        "day_pnl": MetadataValue.float(float(figures.day_pnl)),
        "total_pnl": MetadataValue.float(float(figures.total_pnl)),
        "total_return": MetadataValue.float(float(figures.total_return)),
        "drawdown": MetadataValue.float(float(figures.drawdown)),
        "account": markdown_table(
            ("equity", "cash", "day P&L", "P&L since first session", "return", "drawdown"),
            [
                (
                    money(figures.equity),
                    money(figures.cash),
                    money(figures.day_pnl),
                    money(figures.total_pnl),
                    percent(figures.total_return),
                    percent(figures.drawdown),
                )
            ],
        ),
        "first_session": MetadataValue.text(str(figures.first_session)),
    }


def _figures_of(
    journal: JournalStore, record: SessionRecord, log: logging.Logger
) -> SessionFigures | None:
    """`record`'s account figures, from the previous session's record (its basis); None,
    said in the log, when the journal cannot give them: the session has traded by now, and
    its record must be written whatever the figures."""
    try:
        previous = journal.latest_before(record.session)
        basis = record_basis(previous) if previous is not None else None
        if previous is not None and basis is None:
            # A record that keeps no basis (version 1): worked out from the whole journal,
            # once; the record written now carries it on.
            past = [account_point(r) for r in journal.history() if r.session < record.session]
            basis = account_figures(past)[-1].basis
        return figures_after(basis, account_point(record))
    except Exception as exc:
        log.warning(f"account figures unavailable: {describe(exc)}")
        return None


TRADING_ASSETS = (
    market_data,
    indicators,
    signal,
    target_allocation,
    executed_orders,
    post_trade_positions,
)
