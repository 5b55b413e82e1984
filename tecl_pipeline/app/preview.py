"""What a run would do, without doing it: the trading chain up to the plan (market data,
indicators, signal, target allocation and the pre-trade checks), read from the deployment
the settings describe, with nothing sent, nothing journalled, no Dagster run recorded and no
alert raised. `tecl run --dry-run` prints it; `tecl doctor` judges it.

Each step calls what the run's asset calls (the same core functions, the same
`plan_from_broker`, the same pre-trade rules), so a preview and a run make the same plan from
the same prices and positions. The run then sizes its buys again from the cash the sells
actually brought, and finishes an earlier run's open orders first; a preview does neither.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.data_quality import require_trustworthy
from tecl_pipeline.core.errors import TradingWindowError
from tecl_pipeline.core.indicators import indicator_table
from tecl_pipeline.core.strategy import Decision, evaluate_tecl_table
from tecl_pipeline.core.universe import HOLDINGS, SYMBOLS
from tecl_pipeline.defs.assets import session_prices
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.presentation import percent, qty
from tecl_pipeline.defs.resources import BrokerResource, StateResource
from tecl_pipeline.marketdata import MarketDataSource
from tecl_pipeline.trading.broker import Broker
from tecl_pipeline.trading.execution import (
    BrokerSnapshot,
    ExecutionPolicy,
    check_trading_window,
    plan_from_broker,
    sent_limit,
)
from tecl_pipeline.trading.reconcile import minutes, pre_trade_problems


@dataclass(frozen=True)
class WouldSend:
    """One order the run would send: sells at market, buys as limit orders at their limit."""

    side: str
    symbol: str
    qty: Decimal
    reference_price: Decimal
    limit_price: Decimal | None

    @property
    def kind(self) -> str:
        return "market" if self.limit_price is None else f"limit {self.limit_price}"

    @property
    def line(self) -> str:
        qty = f"{self.qty.normalize():f}"
        decided = f"decided at {self.reference_price}"
        return f"{self.side:4} {self.symbol:5} qty {qty} {self.kind}  ({decided})"


@dataclass(frozen=True)
class Preview:
    """The plan a run of `session` would make now, and what would stop it."""

    session: date
    market_data: str
    price_basis: str
    """How the decision prices were formed (the feed's forming daily bar, or closes)."""
    decision: Decision
    prices: Mapping[str, Decimal]
    snapshot: BrokerSnapshot
    orders: tuple[WouldSend, ...]
    problems: tuple[str, ...]
    """What the pre-trade check would refuse the session for (no order would go out)."""
    broker_time: datetime
    timing: str | None
    """Why a run started now would not trade yet (or any more); None inside the window."""

    @property
    def refused(self) -> bool:
        return bool(self.problems)


def preview(
    source: MarketDataSource, broker: Broker, policy: ExecutionPolicy, session: date
) -> Preview:
    """The chain of `daily_trading_job` to the plan, reading only. A refusal on the way
    (untrusted data, a non-USD account, risk limits) raises as it does in a run."""
    CALENDAR.require_session(session)
    closes = source.closes(SYMBOLS, through=session)
    require_trustworthy(closes, session, CALENDAR)
    decision = evaluate_tecl_table(indicator_table(closes[list(SYMBOLS)]))
    prices = session_prices(closes, HOLDINGS)
    snapshot = plan_from_broker(
        broker,
        decision.allocation,
        prices,
        policy,
        session=session,
        read_prices=session_prices(closes, SYMBOLS),
        calendar=CALENDAR,
    )
    plan = snapshot.plan
    orders = tuple(
        WouldSend(
            side=order.side,
            symbol=order.symbol,
            qty=order.qty,
            reference_price=order.reference_price,
            limit_price=sent_limit(order, policy.cash_reserve),
        )
        for order in (*plan.sells, *plan.buys)
    )
    clock = broker.get_clock()
    try:
        check_trading_window(clock, session, CALENDAR, policy)
        timing = None
    except TradingWindowError as exc:
        timing = str(exc)
    return Preview(
        session=session,
        market_data=source.description,
        price_basis=source.price_basis,
        decision=decision,
        prices=prices,
        snapshot=snapshot,
        orders=orders,
        problems=(*pre_trade_problems(snapshot.account, plan), *snapshot.price_problems),
        broker_time=clock.timestamp,
        timing=timing,
    )


@dataclass(frozen=True)
class Deployment:
    """The deployment's market data, broker and policy, ready to read."""

    source: MarketDataSource
    broker: BrokerResource
    policy: ExecutionPolicy
    state: StateResource


@contextmanager
def deployment(settings: Settings, *, stderr_level: int) -> Iterator[Deployment]:
    """The resources a run would use, built as a run builds them (`deployment_resources`:
    keys only through their `EnvVar` or the secrets provider) and released after. A preview
    raises no alert: what a run would alert (a secret past its rotation, say) is logged."""
    from dagster import build_resources

    from tecl_pipeline.defs.deployments import deployment_resources

    resources = deployment_resources(
        settings, {"observability": {"stderr_level": stderr_level}}, alerting=False
    )
    needed = ("market_data_source", "broker", "observability", "alerts", "trading_policy", "state")
    with build_resources({name: resources[name] for name in needed}) as ready:
        yield Deployment(
            source=ready.market_data_source.open(CALENDAR),
            broker=ready.broker,
            policy=ready.trading_policy.policy(),
            state=ready.state,
        )


def report(result: Preview) -> str:
    """The dry run's report, laid out as a run's (`format_report`): plainly not a run, then
    the decision, the account, the targets and the orders that would be sent."""
    snapshot = result.snapshot
    account = snapshot.account
    when = result.broker_time.astimezone(EXCHANGE_TZ)
    decision = result.decision
    lines = [
        f"DRY RUN      session {result.session}: nothing sent, no run recorded "
        f"(broker clock {when:%Y-%m-%d %H:%M %Z})",
        f"data         {result.market_data}",
        f"prices       {result.price_basis}{_oldest(snapshot)}",
        f"decision     leaf {decision.leaf}: {decision.reason}",
        "target       " + ", ".join(f"{s} {percent(w)}" for s, w in decision.allocation.items()),
        f"account      {account.account_number}: equity {account.equity:,.2f}, "
        f"cash {account.cash:,.2f} {account.currency}",
    ]
    lines += [
        f"  {symbol:5} held {qty(snapshot.held.get(symbol, Decimal(0)))}, target "
        f"{qty(snapshot.plan.targets.get(symbol, Decimal(0)))} at {result.prices[symbol]}"
        for symbol in HOLDINGS
        if symbol in snapshot.plan.targets or symbol in snapshot.held
    ]
    if result.orders:
        lines.append("would send   sells first, then buys:")
        lines += [f"  {order.line}" for order in result.orders]
    else:
        lines.append("would send   nothing: positions already at target")
    lines += [f"  skipped {symbol}: {why}" for symbol, why in snapshot.plan.skipped]
    if result.problems:
        lines.append("refused      a run would send no order: " + "; ".join(result.problems))
    if result.timing:
        lines.append(f"timing       a run started now would not trade: {result.timing}")
    return "\n".join(lines)


def _oldest(snapshot: BrokerSnapshot) -> str:
    if not snapshot.quotes or snapshot.quoted_at is None:
        return ""
    now = snapshot.quoted_at
    symbol, trade = max(snapshot.quotes.items(), key=lambda item: item[1].age(now))
    age = minutes(trade.age(now))
    return f"; the broker's oldest latest trade: {symbol} on {trade.feed}, {age} old"
