"""Target weights -> share quantities -> a rebalance plan, all in `Decimal` (T5, C3, B7, T9).

Pure: no I/O, no Dagster. Every figure is a `Decimal`; the single way in for a float is
`to_decimal`, which goes through `str` (C3). Rounding is chosen so that no step can size an
order above what the weights or the cash allow: quantities round down, intermediate results
truncate, and cash is budgeted with every order's cost rounded *up* to the cent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from numbers import Integral, Real
from typing import Literal

from tecl_pipeline.core.errors import PortfolioInputError

Side = Literal["buy", "sell"]

# Alpaca accepts up to 9 decimal places for fractional qty.
FRACTIONAL_QTY_QUANTUM = Decimal("0.000000001")
WHOLE_SHARE = Decimal("1")
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ZERO = Decimal("0")
ONE = Decimal("1")

# Enough digits that realistic equity/price/quantity products never round, and that
# quantize() to 1e-9 cannot overflow the precision (it raises InvalidOperation if it would).
_PRECISION = 60


def _context(rounding: str = ROUND_DOWN) -> Context:
    # A fresh Context per call: a shared module-level one would be mutable global state.
    # ROUND_DOWN by default: with non-negative operands every truncated intermediate is at or
    # below the exact value, so sizing can only err towards buying less.
    return Context(
        prec=_PRECISION, rounding=rounding, traps=[InvalidOperation, DivisionByZero, Overflow]
    )


# -- conversion and checks --------------------------------------------------------------------


def to_decimal(value: float | int | str | Decimal, what: str) -> Decimal:
    """`value` as a finite Decimal.

    Floats go through `str`: 0.1 becomes Decimal("0.1"), not the binary 0.1000000000000000055...
    """
    if isinstance(value, bool):
        raise PortfolioInputError(f"{what} must be a number, got the boolean {value}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, Integral):
        result = Decimal(int(value))
    elif isinstance(value, Real | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise PortfolioInputError(f"{what} is not a number: {value!r}") from None
    else:
        raise PortfolioInputError(
            f"{what} must be a Decimal, int, float or str, got {type(value).__name__}: {value!r}"
        )
    if not result.is_finite():
        raise PortfolioInputError(f"{what} is {value}; expected a finite number")
    return result


def _require_decimal(value: object, what: str) -> Decimal:
    # Inside the core only Decimals are accepted: a float reaching here would mean a boundary
    # forgot to convert, and silently converting it would hide that (C3).
    if not isinstance(value, Decimal):
        raise PortfolioInputError(
            f"{what} must be a Decimal, got {type(value).__name__}: {value!r} "
            f"(convert at the boundary with to_decimal)"
        )
    if not value.is_finite():
        raise PortfolioInputError(f"{what} is {value}; expected a finite number")
    return value


def _require_positive(value: object, what: str) -> Decimal:
    number = _require_decimal(value, what)
    if number <= 0:
        raise PortfolioInputError(f"{what} must be positive, got {number}")
    return number


def _require_non_negative(value: object, what: str) -> Decimal:
    number = _require_decimal(value, what)
    if number < 0:
        raise PortfolioInputError(f"{what} must not be negative, got {number}")
    return number


def _require_symbol(symbol: object) -> str:
    if not isinstance(symbol, str) or not symbol:
        raise PortfolioInputError(f"symbol must be a non-empty string, got {symbol!r}")
    return symbol


def _require_fractionable(fractionable: Mapping[str, bool], symbols: Iterable[str]) -> None:
    for symbol in symbols:
        flag = fractionable.get(symbol)
        if not isinstance(flag, bool):
            raise PortfolioInputError(
                f"{symbol}: fractionable flag missing or not a bool ({flag!r}); read the asset "
                f"from the broker before sizing orders (T7)"
            )


def _cents(amount: Decimal, rounding: str) -> Decimal:
    return amount.quantize(CENT, rounding=rounding, context=_context(rounding))


def _value(qty: Decimal, price: Decimal) -> Decimal:
    # Exact at this precision for any realistic quantity and price, where the default
    # 28-digit context could round a product up.
    return _context().multiply(qty, price)


# -- rounding to what the broker accepts (T5) -------------------------------------------------


def round_qty(qty: Decimal, fractionable: bool) -> Decimal:
    """`qty` rounded DOWN to whole shares, or to 9 decimals if the asset is fractionable."""
    qty = _require_non_negative(qty, "qty")
    if not isinstance(fractionable, bool):
        raise PortfolioInputError(f"fractionable must be a bool, got {fractionable!r}")
    quantum = FRACTIONAL_QTY_QUANTUM if fractionable else WHOLE_SHARE
    try:
        return qty.quantize(quantum, rounding=ROUND_DOWN, context=_context())
    except InvalidOperation:
        raise PortfolioInputError(f"qty {qty} is too large to size an order") from None


def round_price(price: Decimal, what: str = "price") -> Decimal:
    """The broker's tick: $0.01 at or above $1, $0.0001 below (half-even).

    `what` names the price in errors (e.g. "UVXY close").
    """
    price = _require_positive(price, what)
    context = _context(ROUND_HALF_EVEN)
    if price >= ONE:
        return price.quantize(CENT, context=context)
    rounded = price.quantize(SUB_PENNY, context=context)
    if rounded >= ONE:  # 0.99995 -> 1.0000, which is in the one-cent regime
        return rounded.quantize(CENT, context=context)
    if rounded == 0:
        raise PortfolioInputError(f"{what} {price} rounds to $0 at the $0.0001 tick")
    return rounded


# -- input validation ---------------------------------------------------------------------------


def validate_weights(weights: Mapping[str, Decimal]) -> None:
    """Decimal weights, each within 0..1, summing to exactly 1."""
    problems: list[str] = []
    total = ZERO
    # Inexact trapped: a sum that had to round could pass as exactly 1 when it is not.
    exact = Context(prec=_PRECISION, traps=[Inexact, InvalidOperation])
    for symbol, weight in weights.items():
        _require_symbol(symbol)
        if not isinstance(weight, Decimal):
            problems.append(
                f"{symbol} weight is a {type(weight).__name__} ({weight!r}), not a Decimal"
            )
        elif not weight.is_finite() or not ZERO <= weight <= ONE:
            problems.append(f"{symbol} weight {weight} is outside 0..1")
        else:
            try:
                total = exact.add(total, weight)
            except Inexact:
                problems.append(f"{symbol} weight {weight} has too many digits to sum exactly")
    if not weights:
        problems.append("no weights given")
    elif not problems and total != ONE:
        problems.append("weights do not sum to exactly 1")
    if problems:
        raise PortfolioInputError(
            f"invalid target weights: {'; '.join(problems)} (sum of valid weights: {total})"
        )


def validate_prices(prices: Mapping[str, Decimal], symbols: Iterable[str]) -> None:
    """Every symbol in `symbols` has a finite, positive Decimal price."""
    problems: list[str] = []
    for symbol in symbols:
        if symbol not in prices:
            problems.append(f"{symbol}: no price")
            continue
        price = prices[symbol]
        if not isinstance(price, Decimal):
            problems.append(
                f"{symbol}: price is a {type(price).__name__} ({price!r}), not a Decimal"
            )
        elif not price.is_finite():
            problems.append(f"{symbol}: price is {price}")
        elif price <= 0:
            problems.append(f"{symbol}: price {price} is not positive")
    if problems:
        raise PortfolioInputError(f"invalid prices: {'; '.join(problems)}")


def _validate_holdings(current: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Held quantities, zero positions dropped; negative (short) positions are refused."""
    holdings: dict[str, Decimal] = {}
    for symbol, qty in current.items():
        _require_symbol(symbol)
        held = _require_decimal(qty, f"{symbol} position qty")
        if held < 0:
            raise PortfolioInputError(
                f"{symbol} position qty is {held}: a short position, and the pipeline never "
                "shorts nor trades around one; buy it back by hand, then run again"
            )
        if held > 0:
            holdings[symbol] = held
    return holdings


def _require_fraction(value: object, what: str) -> Decimal:
    number = _require_non_negative(value, what)
    if number > ONE:
        raise PortfolioInputError(f"{what} must be within 0..1, got {number}")
    return number


# -- plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedOrder:
    symbol: str
    side: Side
    qty: Decimal
    reference_price: Decimal

    def __post_init__(self) -> None:
        _require_symbol(self.symbol)
        if self.side not in ("buy", "sell"):
            raise PortfolioInputError(
                f"{self.symbol}: side must be 'buy' or 'sell', got {self.side!r}"
            )
        _require_positive(self.qty, f"{self.symbol} {self.side} qty")
        _require_positive(self.reference_price, f"{self.symbol} reference price")

    @property
    def notional(self) -> Decimal:
        """qty x reference price, rounded to the cent (half-even)."""
        return trade_notional(self.qty, self.reference_price)

    @property
    def cost_ceiling(self) -> Decimal:
        """qty x reference price rounded UP to the cent: what cash budgeting reserves for it."""
        return _cents(_value(self.qty, self.reference_price), ROUND_CEILING)


class FrozenMapping(Mapping[str, Decimal]):
    """A read-only copy of a mapping that, unlike MappingProxyType, pickles (Dagster IO
    managers pickle asset outputs, and a plan must not be edited between risk check and
    execution)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Decimal]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Decimal:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


@dataclass(frozen=True)
class RebalancePlan:
    """What to sell, then buy, to move from the current positions to `targets`.

    `targets` holds the target quantity of every symbol involved (0 for a liquidation).
    Buys may be smaller than `targets` minus the position when cash does not stretch; the
    reconciliation after trading reports that residual (B6).
    """

    targets: Mapping[str, Decimal]
    sells: tuple[PlannedOrder, ...]
    buys: tuple[PlannedOrder, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    # Prices the plan was sized with; lets check_risk value targets that need no order.
    reference_prices: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any(order.side != "sell" for order in self.sells):
            raise PortfolioInputError("RebalancePlan.sells may only contain sell orders")
        if any(order.side != "buy" for order in self.buys):
            raise PortfolioInputError("RebalancePlan.buys may only contain buy orders")
        object.__setattr__(self, "targets", FrozenMapping(self.targets))
        object.__setattr__(self, "reference_prices", FrozenMapping(self.reference_prices))
        object.__setattr__(self, "sells", tuple(self.sells))
        object.__setattr__(self, "buys", tuple(self.buys))
        object.__setattr__(self, "skipped", tuple(tuple(item) for item in self.skipped))

    @property
    def orders(self) -> tuple[PlannedOrder, ...]:
        """Sells first: their proceeds fund the buys (B7)."""
        return self.sells + self.buys

    @property
    def is_empty(self) -> bool:
        return not self.orders


def target_quantities(
    weights: Mapping[str, Decimal],
    equity: Decimal,
    prices: Mapping[str, Decimal],
    fractionable: Mapping[str, bool],
    cash_reserve: Decimal = ZERO,
) -> dict[str, Decimal]:
    """Target quantity per symbol with a positive weight: equity x (1 - reserve) x weight / price,
    rounded down to what the broker accepts. Zero-weight symbols are absent from the result."""
    validate_weights(weights)
    equity = _require_positive(equity, "equity")
    cash_reserve = _require_fraction(cash_reserve, "cash_reserve")
    active = sorted(symbol for symbol, weight in weights.items() if weight > 0)
    validate_prices(prices, active)
    _require_fractionable(fractionable, active)
    context = _context()
    investable = context.multiply(equity, context.subtract(ONE, cash_reserve))
    return {
        symbol: round_qty(
            context.divide(context.multiply(investable, weights[symbol]), prices[symbol]),
            fractionable[symbol],
        )
        for symbol in active
    }


def invested_share(weight: Decimal, cash_reserve: Decimal) -> Decimal:
    """The share of equity a weight is bought to: the reserve stays in cash
    (`target_quantities`), so a held position is measured against this, not the weight."""
    return weight * (ONE - cash_reserve)


def trade_notional(qty: Decimal, price: Decimal) -> Decimal:
    """|qty| x price, rounded to the cent (half-even): a trade's (or a residual's) value."""
    return _cents(_value(abs(qty), price), ROUND_HALF_EVEN)


def worth_trading(qty: Decimal, price: Decimal, min_trade_notional: Decimal) -> bool:
    """The minimum-trade rule, the one tolerance of the whole chain (B6): a trade, or what is
    left of the target after trading, counts when its value reaches `min_trade_notional`.
    Below it the trade is skipped on purpose, so the residual it leaves is no shortfall."""
    return trade_notional(qty, price) >= min_trade_notional


def _below_minimum(order: PlannedOrder, min_trade_notional: Decimal) -> str | None:
    if worth_trading(order.qty, order.reference_price, min_trade_notional):
        return None
    return (
        f"{order.side} {order.qty} @ {order.reference_price} = ${order.notional} is below the "
        f"minimum trade notional ${min_trade_notional}"
    )


def _trade_for(
    symbol: str,
    held: Decimal,
    target: Decimal,
    price: Decimal,
    fractionable: Mapping[str, bool],
) -> PlannedOrder | str | None:
    """The order that moves `held` to `target`, a reason why none can, or None if none is needed."""
    if held == target:
        return None
    if held > target:
        side: Side = "sell"
        # A liquidation sells the exact position, fractional remainder included, so nothing
        # lingers; a partial sell rounds like any order (down: sell no more than asked).
        qty = held if target == 0 else round_qty(held - target, fractionable[symbol])
    else:
        side = "buy"
        qty = round_qty(target - held, fractionable[symbol])
    if qty == 0:
        return f"{side} of {abs(target - held)} rounds to zero at the broker's quantity precision"
    return PlannedOrder(symbol=symbol, side=side, qty=qty, reference_price=price)


def plan_rebalance(
    current: Mapping[str, Decimal],
    weights: Mapping[str, Decimal],
    equity: Decimal,
    cash: Decimal,
    prices: Mapping[str, Decimal],
    fractionable: Mapping[str, bool],
    *,
    cash_reserve: Decimal = ZERO,
    min_trade_notional: Decimal = ONE,
) -> RebalancePlan:
    """Sells, then buys, from `current` positions towards `weights` of `equity`.

    A held symbol without weight is sold entirely. Trades below `min_trade_notional` are
    skipped with a reason. Buys never cost more than `cash` plus the planned sells' proceeds.
    """
    holdings = _validate_holdings(current)
    cash = _require_non_negative(cash, "cash")
    min_trade_notional = _require_non_negative(min_trade_notional, "min_trade_notional")
    targets = target_quantities(weights, equity, prices, fractionable, cash_reserve)
    # Held symbols need a price too: to value the sale and check its minimum notional.
    validate_prices(prices, sorted(holdings))

    symbols = sorted(set(targets) | set(holdings))
    all_targets = {symbol: targets.get(symbol, ZERO) for symbol in symbols}
    sells: list[PlannedOrder] = []
    buys: list[PlannedOrder] = []
    skipped: list[tuple[str, str]] = []
    for symbol in symbols:
        trade = _trade_for(
            symbol, holdings.get(symbol, ZERO), all_targets[symbol], prices[symbol], fractionable
        )
        if trade is None:
            continue
        if isinstance(trade, str):
            skipped.append((symbol, trade))
        elif (reason := _below_minimum(trade, min_trade_notional)) is not None:
            skipped.append((symbol, reason))
        else:
            (sells if trade.side == "sell" else buys).append(trade)

    # Proceeds rounded down to the cent, costs (in size_buys) up: errors only ever shrink buys.
    proceeds = _cents(sum((_value(o.qty, o.reference_price) for o in sells), ZERO), ROUND_DOWN)
    sized_buys, buy_skips = size_buys(
        buys, cash + proceeds, fractionable, min_trade_notional, limit_markup=cash_reserve
    )
    return RebalancePlan(
        targets=all_targets,
        sells=tuple(sells),
        buys=sized_buys,
        skipped=(*skipped, *buy_skips),
        reference_prices={symbol: prices[symbol] for symbol in symbols},
    )


def buy_limit(reference_price: Decimal, markup: Decimal) -> Decimal:
    """The limit of a buy decided at `reference_price`: `markup` (a fraction, the cash
    reserve) above it, down to the cent. The broker checks buying power at the limit and
    never fills above it, so a buy costs at most what its sizing allowed for (B7)."""
    markup = _require_fraction(markup, "markup")
    return _cents(_value(reference_price, ONE + markup), ROUND_DOWN)


def _cost_at_limit(order: PlannedOrder, markup: Decimal) -> Decimal:
    """What a buy may cost at most: qty at its limit (never below its reference price),
    rounded up to the cent."""
    price = max(order.reference_price, buy_limit(order.reference_price, markup))
    return _cents(_value(order.qty, price), ROUND_CEILING)


def size_buys(
    buys: Sequence[PlannedOrder],
    available_cash: Decimal,
    fractionable: Mapping[str, bool],
    min_trade_notional: Decimal = ONE,
    *,
    limit_markup: Decimal = ZERO,
) -> tuple[tuple[PlannedOrder, ...], tuple[tuple[str, str], ...]]:
    """Buys that fit in `available_cash` (B7) at their limits (`buy_limit` with
    `limit_markup`): unchanged if they all fit, else every quantity scaled down by the same
    factor and rounded down. Returns (buys, skipped (symbol, reason))."""
    available = _require_non_negative(available_cash, "available_cash")
    min_trade_notional = _require_non_negative(min_trade_notional, "min_trade_notional")
    if any(order.side != "buy" for order in buys):
        raise PortfolioInputError("size_buys only sizes buy orders")
    _require_fractionable(fractionable, [order.symbol for order in buys])

    total = sum((_cost_at_limit(order, limit_markup) for order in buys), ZERO)
    scale = ONE if total <= available else _scale_factor(available, total, len(buys))
    kept: list[PlannedOrder] = []
    skipped: list[tuple[str, str]] = []
    for order in buys:
        qty = (
            order.qty
            if scale == ONE
            else round_qty(_value(order.qty, scale), fractionable[order.symbol])
        )
        if qty == 0:
            skipped.append(
                (order.symbol, f"buy of {order.qty} scaled to fit ${available} cash rounds to zero")
            )
            continue
        sized = replace(order, qty=qty)
        if (reason := _below_minimum(sized, min_trade_notional)) is not None:
            skipped.append((order.symbol, reason))
        else:
            kept.append(sized)
    return tuple(kept), tuple(skipped)


def _scale_factor(available: Decimal, total: Decimal, orders: int) -> Decimal:
    # One cent per order held back: each scaled order's cost rounds up by less than a cent, so
    # the rounded-up costs of the scaled orders still sum to at most `available`.
    budget = available - CENT * orders
    if budget <= 0:
        return ZERO
    return _context().divide(budget, total)


# -- risk limits (T9) -----------------------------------------------------------------------


@dataclass(frozen=True)
class RiskLimits:
    kill_switch: bool = False
    max_order_notional: Decimal | None = None
    max_position_weight: Decimal = ONE
    # Fraction of equity; a full switch from one symbol to another turns over 2.0.
    max_daily_turnover: Decimal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kill_switch, bool):
            raise PortfolioInputError(f"kill_switch must be a bool, got {self.kill_switch!r}")
        if self.max_order_notional is not None:
            _require_positive(self.max_order_notional, "max_order_notional")
        weight = _require_positive(self.max_position_weight, "max_position_weight")
        if weight > ONE:
            raise PortfolioInputError(f"max_position_weight must be within 0..1, got {weight}")
        if self.max_daily_turnover is not None:
            _require_non_negative(self.max_daily_turnover, "max_daily_turnover")


def check_risk(
    plan: RebalancePlan,
    equity: Decimal,
    limits: RiskLimits,
    *,
    traded_today: Decimal = ZERO,
) -> list[str]:
    """Every way `plan` breaks `limits`, as sentences naming the symbol and the limit.

    An empty list means the plan may be sent. `traded_today` is the notional already traded
    in this session (a resumed run must not get a fresh turnover allowance).
    """
    equity = _require_positive(equity, "equity")
    traded_today = _require_non_negative(traded_today, "traded_today")
    violations: list[str] = []
    if limits.kill_switch:
        violations.append("kill switch is on: no order may be sent")
    violations += _order_notional_violations(plan, limits.max_order_notional)
    violations += _position_weight_violations(plan, equity, limits.max_position_weight)
    violations += _turnover_violations(plan, equity, limits.max_daily_turnover, traded_today)
    return violations


def _order_notional_violations(plan: RebalancePlan, limit: Decimal | None) -> list[str]:
    if limit is None:
        return []
    return [
        f"{order.symbol} {order.side} of {order.qty} @ {order.reference_price} is "
        f"${order.notional}, above max_order_notional ${limit}"
        for order in plan.orders
        if order.notional > limit
    ]


def _position_weight_violations(plan: RebalancePlan, equity: Decimal, limit: Decimal) -> list[str]:
    prices = {order.symbol: order.reference_price for order in plan.orders}
    prices.update(plan.reference_prices)
    violations: list[str] = []
    for symbol, qty in plan.targets.items():
        if qty == 0:
            continue
        price = prices.get(symbol)
        if price is None:
            # Fail closed: a limit that cannot be checked is not met.
            violations.append(f"{symbol}: no reference price to check max_position_weight")
            continue
        value = _cents(_value(qty, price), ROUND_HALF_EVEN)
        weight = _context(ROUND_HALF_EVEN).divide(value, equity)
        if weight > limit:
            violations.append(
                f"{symbol} target {qty} @ {price} = ${value} is {weight:.2%} of equity "
                f"${equity}, above max_position_weight {limit:.2%}"
            )
    return violations


def _turnover_violations(
    plan: RebalancePlan, equity: Decimal, limit: Decimal | None, traded_today: Decimal
) -> list[str]:
    if limit is None:
        return []
    turnover = traded_today + sum((order.notional for order in plan.orders), ZERO)
    if turnover <= limit * equity:
        return []
    symbols = ", ".join(sorted({order.symbol for order in plan.orders})) or "none"
    return [
        f"turnover ${turnover} (orders in {symbols}; ${traded_today} already traded today) is "
        f"{turnover / equity:.2%} of equity ${equity}, above max_daily_turnover {limit:.2%}"
    ]
