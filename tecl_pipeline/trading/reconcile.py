"""Reconciling what the broker holds with what the pipeline knows (X2, D4). Pure.

A position that changed without an order is a corporate action (a split, a merger), not a
reason to trade; a broker price far from the price the pipeline decided on means one of
the two is unadjusted or wrong, and sizing orders on it would trade against a phantom.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.portfolio import RebalancePlan, trade_notional, worth_trading
from tecl_pipeline.trading.models import Account, Order, OrderSide, Trade

# Quantities are exact to Alpaca's 9 decimal places; anything smaller is rounding.
_QTY_EPSILON = Decimal("0.000000001")


@dataclass(frozen=True)
class PositionChange:
    symbol: str
    expected: Decimal
    actual: Decimal

    def __str__(self) -> str:
        ratio = ""
        if self.expected:
            # Fixed-point, never "0e+9": a broker holding nothing is a ratio of 0.
            factor = (self.actual / self.expected).quantize(Decimal("0.0001")).normalize()
            ratio = f" (x{factor:f})"
        return (
            f"{self.symbol}: journal and fills say {self.expected}, "
            f"broker holds {self.actual}{ratio}"
        )


def unexplained_position_changes(
    previous: Mapping[str, Decimal], fills: Iterable[Order], current: Mapping[str, Decimal]
) -> list[PositionChange]:
    """Positions that differ from `previous` plus the fills since: corporate actions (X2)."""
    expected = dict(previous)
    for order in fills:
        signed = order.filled_qty if order.side is OrderSide.BUY else -order.filled_qty
        expected[order.symbol] = expected.get(order.symbol, Decimal(0)) + signed
    changes = []
    for symbol in sorted(set(expected) | set(current)):
        before = expected.get(symbol, Decimal(0))
        after = current.get(symbol, Decimal(0))
        if abs(after - before) > _QTY_EPSILON:
            changes.append(PositionChange(symbol, before, after))
    return changes


def fills_after_record(recorded: Iterable[Order], orders: Iterable[Order]) -> list[Order]:
    """What `orders` filled beyond what a journal record saw of them (D4), each as an order
    whose `filled_qty` is only that part.

    `orders` are the broker's orders of the record's session and every session after it: a
    recorded order counts with what it filled after the record was written, any other (a
    later session's, or a later run's of the same session that left no record) counts whole.
    """
    seen = {o.client_order_id: o.filled_qty for o in recorded}
    fills = []
    for order in orders:
        more = order.filled_qty - seen.get(order.client_order_id, Decimal(0))
        if more:
            fills.append(order.model_copy(update={"filled_qty": more}))
    return fills


def price_disagreements(
    decided: Mapping[str, Decimal],
    quoted: Mapping[str, Decimal],
    session: date,
    tolerance: Decimal,
    required: Iterable[str] = (),
) -> list[str]:
    """Symbols whose decision price for `session` is more than `tolerance` (a fraction) away
    from the broker's price; a `required` symbol (one the plan trades) the broker does not
    quote is one too, since its price cannot be confirmed."""
    must = set(required)
    problems = []
    for symbol, ours in sorted(decided.items()):
        theirs = quoted.get(symbol)
        if theirs is None or theirs <= 0:
            if symbol in must:
                problems.append(
                    f"{symbol}: decided at {ours} for {session}, but the broker quotes no "
                    "price to confirm it"
                )
            continue
        gap = ours / theirs - 1
        if abs(gap) > tolerance:
            problems.append(
                f"{symbol}: decided at {ours} for {session}, but the broker's latest price is "
                f"{theirs}: they disagree by {gap:+.2%} (tolerance {tolerance:.2%}): a split, "
                "unadjusted data or a bad price"
            )
    return problems


def stale_prices(
    trades: Mapping[str, Trade], now: datetime, limit: timedelta, session: date
) -> list[str]:
    """Symbols whose latest trade is older than `limit` by the broker's clock `now` (T1):
    the decision price it confirms is as old, from a halted symbol, a delayed feed or a
    feed that stopped."""
    problems = []
    for symbol, trade in sorted(trades.items()):
        age = trade.age(now)
        if age > limit:
            problems.append(
                f"{symbol}: its latest trade on feed {trade.feed} is {minutes(age)} old "
                f"({traded_at(trade)}), more than the {minutes(limit)} a decision "
                f"price for {session} may be (max_price_age): a halt, a delayed feed or stale "
                "data"
            )
    return problems


def traded_at(trade: Trade) -> str:
    """When a trade was, as a person reads it: exchange time to the second."""
    return f"{trade.at.astimezone(EXCHANGE_TZ):%Y-%m-%d %H:%M:%S %Z}"


def minutes(span: timedelta) -> str:
    """A span as a person reads a price's age: minutes to a tenth."""
    return f"{span.total_seconds() / 60:.1f} min"


@dataclass(frozen=True)
class Residual:
    """What separates a holding from its target after trading."""

    symbol: str
    target: Decimal
    held: Decimal
    notional: Decimal | None
    """|target - held| at the session price; None when there is no price to value it at."""

    @property
    def qty(self) -> Decimal:
        """target - held: positive means still to buy, negative still to sell."""
        return self.target - self.held

    def __str__(self) -> str:
        value = f"{self.notional:.2f} dollars off" if self.notional is not None else "no price"
        return f"{self.symbol}: holds {self.held}, target {self.target} ({value})"


@dataclass(frozen=True)
class Residuals:
    """Every difference from the target, split by the minimum-trade rule: `open` ones count
    (a shortfall to report and alert), `below_minimum` ones were not worth a trade."""

    open: tuple[Residual, ...]
    below_minimum: tuple[Residual, ...]
    min_trade_notional: Decimal

    def to_json(self) -> dict[str, object]:
        """Structured form for metadata and the residuals sensor (decimals as strings)."""

        def rows(items: tuple[Residual, ...]) -> list[dict[str, str | None]]:
            return [
                {
                    "symbol": r.symbol,
                    "target": str(r.target),
                    "held": str(r.held),
                    "qty": str(r.qty),
                    "notional": None if r.notional is None else str(r.notional),
                }
                for r in items
            ]

        return {
            "min_trade_notional": str(self.min_trade_notional),
            "open": rows(self.open),
            "below_minimum": rows(self.below_minimum),
        }


def residuals(
    targets: Mapping[str, Decimal],
    positions: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    min_trade_notional: Decimal,
) -> Residuals:
    """Differences from the target after trading, judged by the same rule that made
    execution skip a trade (`worth_trading`): below the minimum trade a residual was left
    on purpose; at or above it, or without a price to value it, it counts."""
    counted, small = [], []
    for symbol in sorted(set(targets) | set(positions)):
        target = targets.get(symbol, Decimal(0))
        held = positions.get(symbol, Decimal(0))
        if target == held:
            continue
        price = prices.get(symbol)
        if price is None or price <= 0:
            counted.append(Residual(symbol, target, held, None))
            continue
        residual = Residual(symbol, target, held, trade_notional(target - held, price))
        (counted if worth_trading(target - held, price, min_trade_notional) else small).append(
            residual
        )
    return Residuals(tuple(counted), tuple(small), min_trade_notional)


def post_trade_problems(
    targets: Mapping[str, Decimal],
    positions: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    orders: Iterable[Order],
    *,
    min_trade_notional: Decimal,
    cash: Decimal | None = None,
) -> list[str]:
    """After trading (D4, B6): no residual worth a trade (the minimum-trade rule execution
    used), no order of the session still working, no client order id used twice, and, when
    the account's `cash` is given, no loan (B7)."""
    problems = [str(r) for r in residuals(targets, positions, prices, min_trade_notional).open]
    if cash is not None and (loan := borrowing_problem(cash)):
        problems.append(loan)
    orders = list(orders)
    problems += [
        f"order {o.client_order_id} is still {o.status.value}"
        for o in orders
        if not o.status.is_final
    ]
    ids = [o.client_order_id for o in orders]
    problems += [
        f"client order id {i} was used {ids.count(i)} times"
        for i in sorted(set(ids))
        if ids.count(i) > 1
    ]
    return problems


def borrowing_problem(cash: Decimal) -> str | None:
    """Why negative cash is a problem, if it is negative (B7): a margin account lent it."""
    if cash < 0:
        return (
            f"cash is {cash}: the account owes its broker (a margin loan), and the pipeline "
            "never borrows"
        )
    return None


def currency_problem(account: Account) -> str | None:
    """Why an account cannot be traded by this strategy's dollar amounts (X8), if it can't."""
    if account.currency != "USD":
        return f"account currency is {account.currency}, not USD"
    return None


def blocked_problem(account: Account) -> str | None:
    """Why the broker will not take orders for the account, if it will not."""
    if account.trading_blocked:
        return f"account {account.account_number} is blocked from trading"
    return None


def pre_trade_problems(account: Account, plan: RebalancePlan) -> list[str]:
    """What stops trading before the first order (X8, B7): a non-USD or blocked account, or
    buys that the cash plus the planned sells' proceeds cannot pay for."""
    problems = [p for p in (currency_problem(account), blocked_problem(account)) if p]
    buys = sum((o.cost_ceiling for o in plan.buys), Decimal(0))
    funds = account.cash + sum((o.notional for o in plan.sells), Decimal(0))
    if buys > funds:
        problems.append(f"planned buys cost {buys}, more than cash plus sells ({funds})")
    return problems
