"""Reconciling what the broker holds with what the pipeline knows (X2, D4). Pure.

A position that changed without an order is a corporate action (a split, a merger), not a
reason to trade; a broker price far from the price the pipeline decided on means one of
the two is unadjusted or wrong, and sizing orders on it would trade against a phantom.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from tecl_pipeline.broker.models import Account, Order, OrderSide
from tecl_pipeline.portfolio import RebalancePlan

# Quantities are exact to Alpaca's 9 decimal places; anything smaller is rounding.
_QTY_EPSILON = Decimal("0.000000001")


@dataclass(frozen=True)
class PositionChange:
    symbol: str
    expected: Decimal
    actual: Decimal

    def __str__(self) -> str:
        ratio = f" (x{self.actual / self.expected:.4g})" if self.expected else ""
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


def post_trade_problems(
    targets: Mapping[str, Decimal],
    positions: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    orders: Iterable[Order],
    tolerance: Decimal = Decimal("1"),
) -> list[str]:
    """After trading (D4, B6): holdings within `tolerance` dollars of the target, no order of
    the session still working, and no client order id used twice."""
    problems = []
    for symbol in sorted(set(targets) | set(positions)):
        target = targets.get(symbol, Decimal(0))
        held = positions.get(symbol, Decimal(0))
        off = abs(target - held) * prices.get(symbol, Decimal(0))
        if off > tolerance:
            problems.append(f"{symbol}: holds {held}, target {target} ({off:.2f} dollars off)")
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


def pre_trade_problems(account: Account, plan: RebalancePlan) -> list[str]:
    """What stops trading before the first order (X8, B7): a non-USD or blocked account, or
    buys that the cash plus the planned sells' proceeds cannot pay for."""
    problems = []
    if account.currency != "USD":
        problems.append(f"account currency is {account.currency}, not USD")
    if account.trading_blocked:
        problems.append(f"account {account.account_number} is blocked from trading")
    buys = sum((o.cost_ceiling for o in plan.buys), Decimal(0))
    funds = account.cash + sum((o.notional for o in plan.sells), Decimal(0))
    if buys > funds:
        problems.append(f"planned buys cost {buys}, more than cash plus sells ({funds})")
    return problems
