"""Turn target weights into orders at the broker, once per session, sells before buys.

The broker is the source of truth: the plan is computed from the positions and cash the
broker reports at the moment of trading, so a re-run after a crash trades only what is
still missing, and deterministic client order ids make a resent order a duplicate the
broker refuses instead of a second trade (X3).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from tecl_pipeline.broker.models import (
    Account,
    Asset,
    DuplicateClientOrderIdError,
    Order,
    OrderRejectedError,
    OrderRequest,
    OrderSide,
)
from tecl_pipeline.broker.protocol import Broker
from tecl_pipeline.errors import AccountError, RiskLimitError
from tecl_pipeline.portfolio import (
    PlannedOrder,
    RebalancePlan,
    RiskLimits,
    check_risk,
    plan_rebalance,
    size_buys,
)


@dataclass(frozen=True)
class ExecutionPolicy:
    cash_reserve: Decimal = Decimal("0")
    min_trade_notional: Decimal = Decimal("1")
    risk: RiskLimits = field(default_factory=RiskLimits)


@dataclass(frozen=True)
class ExecutionReport:
    session: date
    broker: str
    plan: RebalancePlan
    sent: tuple[Order, ...]
    skipped: tuple[tuple[str, str], ...]
    session_orders: tuple[Order, ...]
    """Every order of this session at the broker after this run, earlier runs' included."""


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

    @property
    def fractionable(self) -> dict[str, bool]:
        return {symbol: asset.fractionable for symbol, asset in self.assets.items()}


def plan_from_broker(
    broker: Broker,
    weights: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    policy: ExecutionPolicy,
) -> BrokerSnapshot:
    """Read account, positions and assets, and plan the rebalance within the risk limits."""
    account = broker.get_account()
    if account.currency != "USD":
        raise AccountError(f"account currency is {account.currency}, not USD; not trading")
    held = {symbol: p.qty for symbol, p in broker.get_positions().items()}
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
    violations = check_risk(plan, account.equity, policy.risk)
    if violations:
        raise RiskLimitError("risk limits refuse the plan: " + "; ".join(violations))
    return BrokerSnapshot(account=account, held=held, assets=assets, plan=plan)


def execute(
    broker: Broker,
    session: date,
    weights: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    policy: ExecutionPolicy,
) -> ExecutionReport:
    snapshot = plan_from_broker(broker, weights, prices, policy)
    plan, assets = snapshot.plan, snapshot.assets
    sent: list[Order] = []
    skipped: list[tuple[str, str]] = list(plan.skipped)

    def send(orders: tuple[PlannedOrder, ...]) -> None:
        for planned in orders:
            if not assets[planned.symbol].tradable:
                skipped.append((planned.symbol, "asset is not tradable at the broker"))
                continue
            outcome = _submit(broker, session, planned)
            if isinstance(outcome, str):
                skipped.append((planned.symbol, outcome))
            else:
                sent.append(outcome)

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
        sent=tuple(sent),
        skipped=tuple(skipped),
        session_orders=tuple(broker.list_orders(session_prefix(session))),
    )
