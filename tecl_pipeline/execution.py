"""Turn target weights into orders at the broker, once per session, sells before buys.

The broker is the source of truth: the plan is computed from the positions and cash the
broker reports at the moment of trading, so a re-run after a crash trades only what is
still missing, and deterministic client order ids make a resent order a duplicate the
broker refuses instead of a second trade (X3).
"""

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from tecl_pipeline.broker.models import (
    Account,
    Asset,
    Clock,
    DuplicateClientOrderIdError,
    Order,
    OrderRejectedError,
    OrderRequest,
    OrderSide,
    Position,
)
from tecl_pipeline.broker.protocol import Broker
from tecl_pipeline.calendar import EXCHANGE_TZ, TradingCalendar
from tecl_pipeline.errors import AccountError, MarketDataError, RiskLimitError, TradingWindowError
from tecl_pipeline.portfolio import (
    PlannedOrder,
    RebalancePlan,
    RiskLimits,
    check_risk,
    plan_rebalance,
    size_buys,
)
from tecl_pipeline.reconcile import price_disagreements


@dataclass(frozen=True)
class ExecutionPolicy:
    cash_reserve: Decimal = Decimal("0")
    min_trade_notional: Decimal = Decimal("1")
    risk: RiskLimits = field(default_factory=RiskLimits)
    # How far (a fraction) a decision price may be from the broker's latest trade before the
    # session is refused: beyond it one of the two is unadjusted, stale or wrong (T4, X2).
    max_price_gap: Decimal = Decimal("0.05")
    # How long one phase (sells, then buys) waits for its orders to fill before cancelling
    # what is left, and how often it asks; the whole execution never runs past `deadline`.
    fill_timeout: float = 120.0
    poll_interval: float = 1.0
    deadline: float = 600.0
    # A run may start this long before the session's decision time (a late scheduler tick
    # is fine until the close; an early one would trade on a stale intraday price).
    early_start: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class ExecutionReport:
    session: date
    broker: str
    plan: RebalancePlan
    sent: tuple[Order, ...]
    """Orders this run sent, in their final known state."""
    skipped: tuple[tuple[str, str], ...]
    session_orders: tuple[Order, ...]
    """Every order of this session at the broker after this run, earlier runs' included."""
    cancelled: tuple[str, ...] = ()
    """Client order ids this run cancelled because they had not filled in time (T6)."""


@dataclass(frozen=True)
class Pacing:
    """Time as execution sees it; tests pass a fake clock so no test waits for real."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


def check_trading_window(
    clock: Clock, session: date, calendar: TradingCalendar, policy: ExecutionPolicy
) -> None:
    """Trade only inside this session's window by the broker's own clock (T2, T3)."""
    now = clock.timestamp.astimezone(EXCHANGE_TZ)
    opens = calendar.decision_time(session) - policy.early_start
    closes = calendar.close_time(session)
    where = f"broker clock {now:%Y-%m-%d %H:%M %Z}"
    if calendar.session_for(now) != session or not opens <= now < closes:
        raise TradingWindowError(
            f"{where} is outside session {session}'s trading window "
            f"({opens:%H:%M}-{closes:%H:%M} New York); no orders"
        )
    if not clock.is_open:
        raise TradingWindowError(f"{where}: the broker says the market is closed; no orders")


def session_prefix(session: date) -> str:
    return f"tecl-{session:%Y%m%d}-"


def leg_prefix(session: date, side: OrderSide, symbol: str) -> str:
    return f"{session_prefix(session)}{side.value}-{symbol}-"


def _submit(broker: Broker, session: date, planned: PlannedOrder) -> Order | str:
    """Send one order under the leg's next client order id; return it, or why not."""
    side = OrderSide(planned.side)
    prefix = leg_prefix(session, side, planned.symbol)
    earlier = broker.list_orders(prefix)
    open_orders = [o.client_order_id for o in earlier if not o.status.is_final]
    if open_orders:
        return f"order {open_orders[0]} for this leg is still open; not sending another"
    client_order_id = f"{prefix}{len(earlier) + 1}"
    request = OrderRequest(
        symbol=planned.symbol, side=side, qty=planned.qty, client_order_id=client_order_id
    )
    try:
        return broker.submit_order(request)
    except DuplicateClientOrderIdError:
        existing = broker.get_order_by_client_id(client_order_id)
        if existing is None:
            raise
        return existing
    except OrderRejectedError as exc:
        return f"rejected by the broker: {exc}"


@dataclass(frozen=True)
class BrokerSnapshot:
    """What the broker says right now, and the plan that follows from it."""

    account: Account
    held: Mapping[str, Decimal]
    assets: Mapping[str, Asset]
    plan: RebalancePlan
    price_problems: tuple[str, ...] = ()
    """Decision prices the broker's latest trades do not confirm (T4, X2): no order may
    follow while there is one (`pre_trade_ready` shows them, `execute` refuses)."""

    def require_prices_confirmed(self) -> None:
        if self.price_problems:
            raise MarketDataError(
                "decision prices disagree with the broker, no orders: "
                + "; ".join(self.price_problems)
            )

    @property
    def fractionable(self) -> dict[str, bool]:
        return {symbol: asset.fractionable for symbol, asset in self.assets.items()}


def plan_from_broker(
    broker: Broker,
    weights: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    policy: ExecutionPolicy,
    *,
    session: date,
    read_prices: Mapping[str, Decimal] | None = None,
) -> BrokerSnapshot:
    """Read account, positions and assets, and plan the rebalance within the risk limits.

    Compares decision prices with the broker's latest trades (T4, X2): of every symbol the
    plan trades or holds (which the broker must quote), and of those the decision only read
    (`read_prices`) where the broker quotes them; quantities sized on one of two inconsistent
    prices would trade against a phantom. What disagrees is in `price_problems`.
    """
    account = broker.get_account()
    if account.currency != "USD":
        raise AccountError(f"account currency is {account.currency}, not USD; not trading")
    positions = broker.get_positions()
    held = {symbol: p.qty for symbol, p in positions.items()}
    assets = {symbol: broker.get_asset(symbol) for symbol in sorted(set(weights) | set(held))}
    plan = plan_rebalance(
        held,
        weights,
        account.equity,
        account.cash,
        prices,
        {symbol: asset.fractionable for symbol, asset in assets.items()},
        cash_reserve=policy.cash_reserve,
        min_trade_notional=policy.min_trade_notional,
    )
    price_problems = _price_problems(
        broker, session, prices, read_prices or {}, positions, plan, policy
    )
    violations = check_risk(plan, account.equity, policy.risk)
    if violations:
        raise RiskLimitError("risk limits refuse the plan: " + "; ".join(violations))
    return BrokerSnapshot(
        account=account,
        held=held,
        assets=assets,
        plan=plan,
        price_problems=tuple(price_problems),
    )


def _price_problems(
    broker: Broker,
    session: date,
    prices: Mapping[str, Decimal],
    read_prices: Mapping[str, Decimal],
    positions: Mapping[str, Position],
    plan: RebalancePlan,
    policy: ExecutionPolicy,
) -> list[str]:
    traded = {o.symbol for o in plan.orders} | set(positions)
    decided = {**read_prices, **{s: p for s, p in prices.items() if s in traded}}
    if not decided:
        return []
    quoted = {s: p.current_price for s, p in positions.items()}
    quoted.update(broker.latest_trades(tuple(sorted(decided))))
    return price_disagreements(decided, quoted, session, policy.max_price_gap, required=traded)


class _OrderTracker:
    """The latest known state of each order, updated by status precedence (B5): a reply
    that arrives late never moves an order back, and fills only accumulate."""

    def __init__(self, broker: Broker, policy: ExecutionPolicy, pacing: Pacing) -> None:
        self._broker = broker
        self._policy = policy
        self._pacing = pacing
        self._started = pacing.monotonic()
        self.orders: dict[str, Order] = {}
        self.cancelled: list[str] = []

    def track(self, order: Order) -> None:
        known = self.orders.get(order.id)
        if known is None or order.newer_than(known):
            self.orders[order.id] = order

    def _refresh(self, ids: Iterable[str]) -> None:
        for order_id in ids:
            self.track(self._broker.get_order(order_id))

    def settle(self, ids: Iterable[str]) -> None:
        """Wait for these orders to finish; cancel what is still open when time is up (T6)."""
        pending = list(ids)
        overall_end = self._started + self._policy.deadline
        end = min(self._pacing.monotonic() + self._policy.fill_timeout, overall_end)
        while pending := [i for i in pending if not self.orders[i].status.is_final]:
            if self._pacing.monotonic() >= end:
                for order_id in pending:
                    self._broker.cancel_order(order_id)
                    self.cancelled.append(self.orders[order_id].client_order_id)
                self._refresh(pending)
                return
            self._pacing.sleep(self._policy.poll_interval)
            self._refresh(pending)


def execute(
    broker: Broker,
    session: date,
    weights: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    policy: ExecutionPolicy,
    pacing: Pacing | None = None,
) -> ExecutionReport:
    """Trade the session's target: finish earlier runs' open orders, then sells, then buys.

    Quantities always come from the broker's positions at that moment, never from what an
    earlier attempt meant to send, so nothing is re-ordered blindly (T6, A2).
    """
    tracker = _OrderTracker(broker, policy, pacing or Pacing())
    # A killed run may have left orders working: let them finish (or cancel them) first.
    left_open = [o for o in broker.list_orders(session_prefix(session)) if not o.status.is_final]
    for order in left_open:
        tracker.track(order)
    tracker.settle(o.id for o in left_open)

    snapshot = plan_from_broker(broker, weights, prices, policy, session=session)
    snapshot.require_prices_confirmed()
    plan, assets = snapshot.plan, snapshot.assets
    sent: list[str] = []
    skipped: list[tuple[str, str]] = list(plan.skipped)

    def send(orders: tuple[PlannedOrder, ...]) -> None:
        phase: list[str] = []
        for planned in orders:
            if not assets[planned.symbol].tradable:
                skipped.append((planned.symbol, "asset is not tradable at the broker"))
                continue
            outcome = _submit(broker, session, planned)
            if isinstance(outcome, str):
                skipped.append((planned.symbol, outcome))
            else:
                tracker.track(outcome)
                phase.append(outcome.id)
        tracker.settle(phase)
        sent.extend(phase)

    send(plan.sells)
    if plan.buys:
        # Buy with what the broker says is available once the sells are done (B7).
        buying_power = broker.get_account().buying_power
        buys, too_small = size_buys(
            plan.buys, buying_power, snapshot.fractionable, policy.min_trade_notional
        )
        skipped.extend(too_small)
        send(buys)
    return ExecutionReport(
        session=session,
        broker=broker.description,
        plan=plan,
        sent=tuple(tracker.orders[i] for i in sent),
        skipped=tuple(skipped),
        session_orders=tuple(broker.list_orders(session_prefix(session))),
        cancelled=tuple(tracker.cancelled),
    )
