"""Turn target weights into orders at the broker, once per session, sells before buys.

The broker is the source of truth: the plan is computed from the positions and cash the
broker reports at the moment of trading, so a re-run after a crash trades only what is
still missing, and deterministic client order ids make a resent order a duplicate the
broker refuses instead of a second trade (X3).

One order per leg, whatever runs where (C2). A leg is (session, side, symbol); its attempts
carry the client order ids `<leg prefix>1`, `2`, ... Any number of runs, on any number of
hosts and with any local state, may trade one session at once: no lock on one machine is
relied on. A run sends attempt n+1 of a leg only when

(a) the session's orders, listed *before* it read the positions it planned from, held
    exactly n attempts of the leg, all final (`OrdersSeen`), and
(b) the session's orders, listed again right before the POST, are those same orders in
    the same final states, apart from this run's own: nothing appeared or moved since (a).

Why no leg fills twice:
- Positions read after attempts 1..n were final include their fills, so the quantity sent
  is what is still missing, never what another attempt already bought or sold.
- An attempt that reached the broker between (a) and (b), or was still open at (a), shows
  at (b) as new, moved or open: this run sends nothing more and says why; the next run
  plans from positions that include it. (b) looks at every symbol, not only the one about
  to be sent: another run that traded any of the session's symbols since (a) is trading
  from another snapshot, perhaps another decision, and this run's remaining orders, sized
  from cash and positions read before that, would mix the two.
- An attempt that reaches the broker after (b) was decided from the same n attempts, so it
  carries the same id n+1: the broker places one order per client order id and refuses
  the others (422). The run that lost waits for the winner's order and reports that
  another run sent it; it never makes up a new id.
- Attempt n+2 can only come from a run whose (a) saw attempt n+1 final, i.e. whose
  positions already hold n+1's fill.
A run that cannot be sure therefore sends nothing for that leg and names why. The session
lock in `TECL_LOCAL_DIR` only spares one machine the needless race.

One direction per symbol per session: runs of one session on hosts with slightly different
market data may decide differently, and each would trade its own decision. The broker's
orders of the session are the one record every host sees, so the rule is kept there
(`first_reversal`), not in a journal a host may not share: an order that would reverse a
filled order of the session (buy what it sold, sell what it bought) is never sent.

The broker's clock is read again before every order (T2, T3): fill waits and retries can
carry a run past the close, and an order sent then would be queued for the next session.
"""

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar
from tecl_pipeline.core.errors import (
    AccountError,
    MarketDataError,
    RiskLimitError,
    SessionReversalError,
    TradingStopped,
    TradingWindowError,
)
from tecl_pipeline.core.portfolio import (
    PlannedOrder,
    RebalancePlan,
    RiskLimits,
    buy_limit,
    check_risk,
    plan_rebalance,
    size_buys,
)
from tecl_pipeline.trading.broker import Broker
from tecl_pipeline.trading.errors import (
    DuplicateClientOrderIdError,
    OrderRejectedError,
    OrderStateError,
)
from tecl_pipeline.trading.models import (
    Account,
    Asset,
    Clock,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    Trade,
)
from tecl_pipeline.trading.reconcile import (
    borrowing_problem,
    currency_problem,
    price_disagreements,
    stale_prices,
)
from tecl_pipeline.trading.stopping import StopRequest as StopRequest  # its home; re-exported


@dataclass(frozen=True)
class ExecutionPolicy:
    cash_reserve: Decimal = Decimal("0")
    min_trade_notional: Decimal = Decimal("1")
    risk: RiskLimits = field(default_factory=RiskLimits)
    # How far (a fraction) a decision price may be from the broker's latest trade before the
    # session is refused: beyond it one of the two is unadjusted, stale or wrong (T4, X2).
    max_price_gap: Decimal = Decimal("0.05")
    # How old the broker's latest trade of a decided symbol may be, by the broker's clock:
    # older, and the decision price it confirms is as stale (a halt, a feed that stopped).
    # 20 minutes lets the 15-minute delayed SIP feed trade and refuses anything staler.
    max_price_age: timedelta = timedelta(minutes=20)
    # How long one phase (sells, then buys) waits for its orders to fill before cancelling
    # what is left, and how often it asks; the whole execution never runs past `deadline`.
    fill_timeout: float = 120.0
    poll_interval: float = 1.0
    # The first look at orders just sent or cancelled comes this soon; each next wait
    # doubles, up to `poll_interval` per order still working (each look is one request per
    # order): a fill usually takes moments, and a session's looks stay at one request per
    # `poll_interval`, far inside Alpaca's 200 a minute.
    first_poll: float = 0.05
    # How long cancels are waited for once sent: a broker confirms one within moments, and
    # the buys wait behind the sells' cancels.
    cancel_timeout: float = 15.0
    deadline: float = 600.0
    # A run may start this long before the session's decision time (a late scheduler tick
    # is fine until the close; an early one would trade on a stale intraday price).
    early_start: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        for name in ("poll_interval", "first_poll", "cancel_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ExecutionPolicy.{name} must be > 0, got {getattr(self, name)}")


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


def _never() -> str | None:
    return None


@dataclass(frozen=True)
class Pacing:
    """Time as execution sees it; tests pass a fake clock so no test waits for real.
    `stop_requested` names why to stop (e.g. "SIGTERM"), or None to carry on."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    stop_requested: Callable[[], str | None] = _never


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


ORDER_ID_PREFIX = "tecl-"
"""Every client order id this pipeline sends starts with it, then the session, side and symbol."""


def session_prefix(session: date) -> str:
    return f"{ORDER_ID_PREFIX}{session:%Y%m%d}-"


def orders_window_start(session: date) -> datetime:
    """A moment before any order of the session can have been sent, when every order is sent
    inside the session's trading window (`check_trading_window`, by the broker's clock, which
    also stamps the order): midnight of the day before, more than a day's margin. Listing from
    there keeps every listing a few sessions long however many years of orders the account
    holds."""
    day_before = session - timedelta(days=1)
    return datetime(day_before.year, day_before.month, day_before.day, tzinfo=EXCHANGE_TZ)


def list_session_orders(broker: Broker, session: date, *, windowed: bool = True) -> list[Order]:
    """The session's orders at the broker, every run's, open and closed, oldest first.
    `windowed=False` reads the account's whole history: for a caller that does not hold its
    orders to the session's trading window, they may carry any date. An order replaced at
    the broker stops the caller (`require_not_replaced`)."""
    since = orders_window_start(session) if windowed else None
    orders = broker.list_orders(session_prefix(session), submitted_after=since)
    return [require_not_replaced(order) for order in orders]


def require_not_replaced(order: Order) -> Order:
    """`order`, unless another order replaced it at the broker: this pipeline never replaces
    one, so someone or something else changed the session's trading, and the replacing
    order (which does not carry the leg's client order id) may still fill. Nothing more is
    sent until a person has looked."""
    if order.status is OrderStatus.REPLACED:
        raise OrderStateError(
            f"order {order.client_order_id} was replaced at the broker by another order; this "
            "pipeline never replaces orders, so someone or something else changed this "
            "session's trading: stopping, no further order this session. Look at the "
            "replacing order at the broker before the next run"
        )
    return order


def leg_prefix(session: date, side: OrderSide, symbol: str) -> str:
    return f"{session_prefix(session)}{side.value}-{symbol}-"


@dataclass(frozen=True)
class OrdersSeen:
    """The session's orders as listed before the positions that the plan comes from were
    read (rule (a) in the module docstring), keyed by client order id."""

    orders: Mapping[str, Order]

    def moved_since(self, current: Iterable[Order]) -> list[str]:
        """Orders in `current` that are new since, or were not yet final then, or have
        changed: the positions the plan came from may not include their fills."""
        moved = []
        for order in current:
            then = self.orders.get(order.client_order_id)
            if (
                then is None
                or not then.status.is_final
                or (then.status, then.filled_qty) != (order.status, order.filled_qty)
            ):
                moved.append(order.client_order_id)
        return moved


def another_run(seen: OrdersSeen, session_orders: Iterable[Order], own: set[str]) -> str | None:
    """Why this run must send nothing more, if another run traded the session since this
    run's plan was made (rule (b)): an order not this run's that is new, was open, or moved."""
    moved = seen.moved_since(o for o in session_orders if o.client_order_id not in own)
    if not moved:
        return None
    return (
        f"order {moved[0]} appeared or finished after this run read the positions it planned "
        "from (another run is trading this session); not sending"
    )


_DONE = MappingProxyType({OrderSide.BUY: "bought", OrderSide.SELL: "sold"})


def first_reversal(
    session: date, planned: Iterable[PlannedOrder], session_orders: Iterable[Order]
) -> str | None:
    """Why an order of `planned` would reverse a filled order of the session, or None.

    Only fills count: an order cancelled or rejected with nothing filled traded nothing, so
    the other direction is still open to the session.
    """
    prefix = session_prefix(session)
    traded: dict[tuple[str, OrderSide], str] = {}
    for order in sorted(session_orders, key=lambda o: o.submitted_at):
        if order.filled_qty > 0 and order.client_order_id.startswith(prefix):
            traded.setdefault((order.symbol, order.side), order.client_order_id)
    for order in planned:
        side = OrderSide(order.side)
        opposite = OrderSide.SELL if side is OrderSide.BUY else OrderSide.BUY
        earlier = traded.get((order.symbol, opposite))
        if earlier is not None:
            return (
                f"session {session} already {_DONE[opposite]} {order.symbol} ({earlier}); "
                f"this run's decision would {side.value} it: not sending"
            )
    return None


@dataclass(frozen=True)
class NotSent:
    """Why a planned order was not sent; `other` is the order another run sent for the
    same leg under the same client order id at the same moment, to be followed."""

    reason: str
    other: Order | None = None


def _submit(
    broker: Broker,
    session: date,
    planned: PlannedOrder,
    session_orders: Iterable[Order],
    limit_markup: Decimal,
) -> Order | NotSent:
    """Send one order under the leg's next client order id; return it, or why not.
    `session_orders` are the session's orders as listed right before this call, checked by
    the caller against what it planned from (rule (b)). A sell goes at the market; a buy
    with a limit `limit_markup` above its reference price (`buy_limit`): the broker checks
    buying power at the limit, not at its market-order collar (Alpaca adds up to 4% to the
    price), and never fills it above the price the cash was budgeted at (B7)."""
    side = OrderSide(planned.side)
    prefix = leg_prefix(session, side, planned.symbol)
    symbol_orders = [o for o in session_orders if o.symbol == planned.symbol]
    open_orders = [o.client_order_id for o in symbol_orders if not o.status.is_final]
    if open_orders:
        return NotSent(f"order {open_orders[0]} for {planned.symbol} is still open; not sending")
    earlier = [o for o in symbol_orders if o.client_order_id.startswith(prefix)]
    client_order_id = f"{prefix}{len(earlier) + 1}"
    limit = sent_limit(planned, limit_markup)
    request = OrderRequest(
        symbol=planned.symbol,
        side=side,
        qty=planned.qty,
        client_order_id=client_order_id,
        limit_price=limit,
    )
    try:
        return broker.submit_order(request)
    except DuplicateClientOrderIdError:
        # The adapter resolves its own lost answers; a refusal here means another run sent
        # this very attempt since the check above.
        existing = broker.get_order_by_client_id(client_order_id)
        if existing is None:
            raise
        return NotSent(
            f"order {client_order_id} was sent by another run at the same moment; "
            "not sending another",
            other=existing,
        )
    except OrderRejectedError as exc:
        return NotSent(f"rejected by the broker: {exc}")


def sent_limit(planned: PlannedOrder, markup: Decimal) -> Decimal | None:
    """The limit an order is sent with: a buy's `markup` (the cash reserve) above its price
    (`buy_limit`), a sell's none (at market)."""
    return buy_limit(planned.reference_price, markup) if planned.side == "buy" else None


@dataclass(frozen=True)
class BrokerSnapshot:
    """What the broker says right now, and the plan that follows from it."""

    account: Account
    held: Mapping[str, Decimal]
    assets: Mapping[str, Asset]
    plan: RebalancePlan
    price_problems: tuple[str, ...] = ()
    """Decision prices the broker's latest trades do not confirm (T4, X2), or confirm only
    with a trade older than the policy allows (T1): no order may follow while there is one
    (`pre_trade_ready` shows them, `execute` refuses)."""
    quotes: Mapping[str, Trade] = field(default_factory=dict)
    """The broker's latest trade of each decided symbol it quotes."""
    quoted_at: datetime | None = None
    """The broker's clock when they were read (their ages are measured against it)."""

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
    calendar: TradingCalendar | None = None,
) -> BrokerSnapshot:
    """Read account, positions and assets, and plan the rebalance within the risk limits.

    Compares decision prices with the broker's latest trades (T4, X2): of every symbol the
    plan trades or holds (which the broker must quote), and of those the decision only read
    (`read_prices`) where the broker quotes them; quantities sized on one of two inconsistent
    prices would trade against a phantom. The latest trade of every symbol the plan trades
    or holds must also be recent (T1): no older than `max_price_age` at the broker's clock,
    or, with `calendar`, at the session's close once that has passed (a plan made after the
    close, by `tecl doctor`, is judged on the session's last trades). What disagrees is in
    `price_problems`.
    """
    account = broker.get_account()
    if problem := currency_problem(account):
        raise AccountError(f"{problem}; not trading")
    if problem := borrowing_problem(account.cash):
        raise AccountError(
            f"account {account.account_number}: {problem}, nor trades on a loan; deposit, or "
            "sell by hand, until its cash is at least zero"
        )
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
    quotes, quoted_at, price_problems = _price_problems(
        broker, session, prices, read_prices or {}, positions, plan, policy, calendar
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
        quotes=quotes,
        quoted_at=quoted_at,
    )


def _price_problems(
    broker: Broker,
    session: date,
    prices: Mapping[str, Decimal],
    read_prices: Mapping[str, Decimal],
    positions: Mapping[str, Position],
    plan: RebalancePlan,
    policy: ExecutionPolicy,
    calendar: TradingCalendar | None,
) -> tuple[dict[str, Trade], datetime | None, list[str]]:
    """The broker's latest trades of the decided symbols, when they were read by the
    broker's clock, and what they do not confirm: a price too far from the decision's, or,
    for a symbol the plan trades or holds, too old to confirm anything. A symbol the decision
    only read may trade rarely on the feed (a small fund on IEX): its age is shown, and its
    price still checked, but it refuses nothing."""
    traded = {o.symbol for o in plan.orders} | set(positions)
    decided = {**read_prices, **{s: p for s, p in prices.items() if s in traded}}
    if not decided:
        return {}, None, []
    trades = broker.latest_trades(tuple(sorted(decided)))
    now = broker.get_clock().timestamp
    quoted = {s: p.current_price for s, p in positions.items()}
    quoted.update({symbol: trade.price for symbol, trade in trades.items()})
    problems = price_disagreements(decided, quoted, session, policy.max_price_gap, required=traded)
    judged_at = now if calendar is None else min(now, calendar.close_time(session))
    sized_on = {symbol: trade for symbol, trade in trades.items() if symbol in traded}
    problems += stale_prices(sized_on, judged_at, policy.max_price_age, session)
    return trades, now, problems


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
        require_not_replaced(order)
        known = self.orders.get(order.id)
        if known is None or order.newer_than(known):
            self.orders[order.id] = order

    def _refresh(self, ids: Iterable[str]) -> None:
        for order_id in ids:
            self.track(self._broker.get_order(order_id))

    def _wait(self, pending: list[str], end: float) -> list[str]:
        """Poll `pending` until each is final, time reaches `end` or a stop is asked; those
        still working."""
        wait = min(self._policy.first_poll, self._policy.poll_interval)
        while pending := [i for i in pending if not self.orders[i].status.is_final]:
            now = self._pacing.monotonic()
            if self._pacing.stop_requested() or now >= end:
                break
            self._pacing.sleep(min(wait, end - now))
            wait = min(wait * 2, self._policy.poll_interval * len(pending))
            self._refresh(pending)
        return pending

    def settle(self, ids: Iterable[str]) -> None:
        """Wait for these orders to finish; cancel what is still open when time is up (T6),
        and wait for the cancels too: a broker cancels asynchronously (pending_cancel), and
        a fill may still come before the cancel takes."""
        overall_end = self._started + self._policy.deadline
        end = min(self._pacing.monotonic() + self._policy.fill_timeout, overall_end)
        pending = self._wait(list(ids), end)
        if not pending or self._pacing.stop_requested():
            return  # anything left working stays at the broker; the caller reports it
        for order_id in pending:
            self._broker.cancel_order(order_id)
            self.cancelled.append(self.orders[order_id].client_order_id)
        self._refresh(pending)
        end = min(self._pacing.monotonic() + self._policy.cancel_timeout, overall_end)
        self._wait(pending, end)


def execute(
    broker: Broker,
    session: date,
    weights: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    policy: ExecutionPolicy,
    pacing: Pacing | None = None,
    *,
    calendar: TradingCalendar | None = None,
) -> ExecutionReport:
    """Trade the session's target: finish earlier runs' open orders, then sells, then buys.

    Quantities always come from the broker's positions at that moment, never from what an
    earlier attempt meant to send, so nothing is re-ordered blindly (T6, A2).

    With `calendar`, the broker's clock must be inside the session's window
    (`check_trading_window`) when execution starts, else `TradingWindowError`, and again
    before every order: once it is not, nothing more is sent and the orders left are
    reported as not sent with the reason (orders may already be out, so this is not a
    refusal; the residuals make the session end not clean). Without it the caller vouches
    for the time (the order logic's own tests).

    A plan that would reverse a filled order of the session is refused before any order
    (`SessionReversalError`): it comes from a decision other than the one the session
    already traded on, so none of it is sent, not only the reversing leg (a run that sold
    TECL for BIL against a session that bought TECL would otherwise still buy BIL). A
    reversing order that appears only while this run trades (another host's, sent after
    this run listed the session) stops the rest of this run the same way as a closed window.
    """
    pacing = pacing or Pacing()
    tracker = _OrderTracker(broker, policy, pacing)
    sent: list[str] = []
    own: set[str] = set()  # client order ids this run sent
    # Why this run sends nothing more (the window closed, the session was reversed).
    halted: list[str] = []
    # Only orders held to the session's window can be listed from the day before it.
    windowed = calendar is not None

    def window_problem() -> str | None:
        if calendar is None:
            return None
        try:
            check_trading_window(broker.get_clock(), session, calendar, policy)
        except TradingWindowError as exc:
            return str(exc)
        return None

    if (closed := window_problem()) is not None:
        raise TradingWindowError(closed)

    def stop_if_asked() -> None:
        why = pacing.stop_requested()
        if why:
            working = [o.client_order_id for o in tracker.orders.values() if not o.status.is_final]
            raise TradingStopped(
                f"stopped by {why} before session {session} was finished: {len(sent)} order(s) "
                f"sent this run, nothing sent after the signal; still working at the broker: "
                f"{', '.join(working) or 'none'}"
            )

    # A killed run may have left orders working: let them finish (or cancel them) first.
    listed = list_session_orders(broker, session, windowed=windowed)
    left_open = [o for o in listed if not o.status.is_final]
    for order in left_open:
        tracker.track(order)
    tracker.settle(o.id for o in left_open)
    # Listed (and settled) before the positions are read: what each leg's next attempt
    # must still find at the broker when it is sent.
    seen = OrdersSeen({o.client_order_id: tracker.orders.get(o.id, o) for o in listed})
    stop_if_asked()

    snapshot = plan_from_broker(broker, weights, prices, policy, session=session, calendar=calendar)
    snapshot.require_prices_confirmed()
    plan, assets = snapshot.plan, snapshot.assets
    skipped: list[tuple[str, str]] = list(plan.skipped)
    reversal = first_reversal(session, plan.orders, seen.orders.values())
    if reversal is not None:
        raise SessionReversalError(reversal)

    def send(orders: tuple[PlannedOrder, ...]) -> None:
        phase: list[str] = []
        others: list[str] = []
        for planned in orders:
            if not assets[planned.symbol].tradable:
                skipped.append((planned.symbol, "asset is not tradable at the broker"))
                continue
            stop_if_asked()
            session_orders: list[Order] = []
            if not halted:
                why = window_problem()
                if why is None:
                    session_orders = list_session_orders(broker, session, windowed=windowed)
                    why = first_reversal(session, plan.orders, session_orders)
                if why is None:
                    why = another_run(seen, session_orders, own)
                if why is not None:
                    halted.append(why)
            if halted:
                skipped.append((planned.symbol, halted[0]))
                continue
            outcome = _submit(broker, session, planned, session_orders, policy.cash_reserve)
            if isinstance(outcome, NotSent):
                skipped.append((planned.symbol, outcome.reason))
                if outcome.other is not None:
                    tracker.track(outcome.other)
                    others.append(outcome.other.id)
            else:
                tracker.track(outcome)
                phase.append(outcome.id)
                sent.append(outcome.id)
                own.add(outcome.client_order_id)
        tracker.settle([*phase, *others])
        stop_if_asked()

    send(plan.sells)
    if plan.buys and halted:
        skipped.extend((planned.symbol, halted[0]) for planned in plan.buys)
    elif plan.buys:
        # Buy with what the broker says is available once the sells are done (B7), and only
        # with the account's own cash: a margin account's buying power would borrow.
        buys, too_small = size_buys(
            plan.buys,
            broker.get_account().cash_to_buy_with,
            snapshot.fractionable,
            policy.min_trade_notional,
            limit_markup=policy.cash_reserve,
        )
        skipped.extend(too_small)
        send(buys)
    return ExecutionReport(
        session=session,
        broker=broker.description,
        plan=plan,
        sent=tuple(tracker.orders[i] for i in sent),
        skipped=tuple(skipped),
        session_orders=tuple(list_session_orders(broker, session, windowed=windowed)),
        cancelled=tuple(tracker.cancelled),
    )
