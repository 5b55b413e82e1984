"""Weights -> quantities -> rebalance plan -> risk checks (T5, C3, B7, T9).

The property tests recompute the bounds with `fractions.Fraction` (exact rational arithmetic)
rather than with the Decimal code under test.
"""

from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tecl_pipeline.core.errors import PortfolioInputError
from tecl_pipeline.core.portfolio import (
    FRACTIONAL_QTY_QUANTUM,
    PlannedOrder,
    RebalancePlan,
    RiskLimits,
    buy_limit,
    check_risk,
    plan_rebalance,
    round_price,
    round_qty,
    size_buys,
    target_quantities,
    to_decimal,
    validate_prices,
    validate_weights,
)
from tecl_pipeline.core.universe import HOLDINGS

D = Decimal
PRICES = {"TECL": D("80.12"), "BIL": D("91.50"), "UVXY": D("12.34"), "SPXL": D("150.00")}
FRACTIONABLE = {"TECL": True, "BIL": False, "UVXY": True, "SPXL": True}


# -- conversion (C3) ----------------------------------------------------------------------------


def test_to_decimal_goes_through_str() -> None:
    """C3: a float becomes the Decimal of its shortest repr, not of its binary value."""
    assert to_decimal(0.1, "price") == D("0.1")
    assert to_decimal(0.1, "price") != D(0.1)
    assert to_decimal(1.15, "price") == D("1.15")
    assert to_decimal(3, "qty") == D(3)
    assert to_decimal(" 12.5 ", "qty") == D("12.5")
    assert to_decimal(D("7.25"), "qty") == D("7.25")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), True, "abc", None])
def test_to_decimal_rejects_non_numbers_naming_what(bad: object) -> None:
    """C3: NaN, infinities, booleans and garbage are refused, naming the field."""
    with pytest.raises(PortfolioInputError, match="TECL close"):
        to_decimal(bad, "TECL close")  # pyright: ignore[reportArgumentType]


def test_to_decimal_rejects_decimal_nan() -> None:
    """C3: a Decimal NaN is as untrustworthy as a float one."""
    with pytest.raises(PortfolioInputError, match="equity"):
        to_decimal(D("NaN"), "equity")


# -- rounding (T5) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qty", "fractionable", "expected"),
    [
        (D("1.999999999999"), True, D("1.999999999")),
        (D("1.9999"), False, D("1")),
        (D("0.99"), False, D("0")),
        (D("5"), False, D("5")),
        (D("2.0000000009"), True, D("2.000000000")),
        (D("0"), True, D("0")),
    ],
)
def test_round_qty_always_rounds_down(qty: Decimal, fractionable: bool, expected: Decimal) -> None:
    """T5: whole shares for non-fractionable assets, 9 decimals otherwise, never rounded up."""
    rounded = round_qty(qty, fractionable)
    assert rounded == expected
    assert rounded <= qty
    quantum = FRACTIONAL_QTY_QUANTUM if fractionable else D("1")
    assert rounded == rounded.quantize(quantum)


def test_round_qty_rejects_negative_and_float() -> None:
    """T5/C3: negative or binary-float quantities are refused."""
    with pytest.raises(PortfolioInputError, match="negative"):
        round_qty(D("-1"), True)
    with pytest.raises(PortfolioInputError, match="Decimal"):
        round_qty(1.5, True)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (D("12.345"), D("12.34")),  # half-even: ties go to the even cent
        (D("12.355"), D("12.36")),
        (D("12.3451"), D("12.35")),
        (D("1"), D("1.00")),
        (D("0.12345"), D("0.1234")),  # sub-dollar: $0.0001 tick
        (D("0.12355"), D("0.1236")),
        (D("0.99996"), D("1.00")),  # rounds into the one-cent regime
        (D("0.0001"), D("0.0001")),
    ],
)
def test_round_price_uses_broker_ticks(price: Decimal, expected: Decimal) -> None:
    """T5: $0.01 at or above $1, $0.0001 below, half-even."""
    rounded = round_price(price)
    assert rounded == expected
    assert rounded.as_tuple().exponent == expected.as_tuple().exponent


@pytest.mark.parametrize("bad", [D("0"), D("-1.5"), D("0.00004"), D("Infinity")])
def test_round_price_rejects_unusable_prices(bad: Decimal) -> None:
    """T5: a price that is not positive after rounding cannot be sent."""
    with pytest.raises(PortfolioInputError, match="price"):
        round_price(bad)


def test_round_price_names_the_price() -> None:
    """T5: a price too small for the tick is refused, naming which price it was."""
    with pytest.raises(PortfolioInputError, match=r"UVXY close 7\.5E-17 rounds to \$0"):
        round_price(D("7.5E-17"), "UVXY close")


def test_planned_order_notional_is_rounded_to_cents() -> None:
    """T5: notionals are cent amounts."""
    order = PlannedOrder("TECL", "buy", D("1.234567891"), D("80.12"))
    assert order.notional == D("98.91")
    assert order.cost_ceiling == D("98.92")


@pytest.mark.parametrize(
    ("side", "qty", "price", "match"),
    [
        ("hold", D("1"), D("1"), "side"),
        ("buy", D("0"), D("1"), "qty"),
        ("sell", D("-1"), D("1"), "qty"),
        ("buy", D("1"), D("0"), "reference price"),
    ],
)
def test_planned_order_validates(side: str, qty: Decimal, price: Decimal, match: str) -> None:
    """T5: an order that could not be sent cannot be planned."""
    with pytest.raises(PortfolioInputError, match=match):
        PlannedOrder("TECL", side, qty, price)  # pyright: ignore[reportArgumentType]


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [
        {"TECL": D("1")},
        {"TECL": D("0.25"), "BIL": D("0.75")},
        {"TECL": D("0.15"), "BSV": D("0.85"), "UVXY": D("0")},
    ],
)
def test_valid_weights_pass(weights: dict[str, Decimal]) -> None:
    """T5: the strategy's exact splits are accepted."""
    validate_weights(weights)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"TECL": D("0.5"), "BIL": D("0.49")}, r"sum to exactly 1.*0\.99"),
        ({"TECL": D("0.6"), "BIL": D("0.6")}, r"sum to exactly 1.*1\.2"),
        ({"TECL": D("1.25"), "BIL": D("-0.25")}, r"BIL weight -0\.25 is outside 0\.\.1"),
        ({"TECL": 0.25, "BIL": D("0.75")}, r"TECL weight is a float.*sum of valid weights: 0\.75"),
        ({"TECL": D("NaN")}, "TECL weight NaN"),
        ({}, "no weights"),
    ],
)
def test_invalid_weights_refused(weights: dict[str, object], match: str) -> None:
    """T5/C3: wrong sums, out-of-range and float weights are refused, naming the problem and sum."""
    with pytest.raises(PortfolioInputError, match=match):
        validate_weights(weights)  # pyright: ignore[reportArgumentType]


def test_weights_one_third_each_do_not_sum_to_one() -> None:
    """T5: 'almost 1' is not 1; the strategy's weights are exact fractions."""
    third = D(1) / D(3)
    with pytest.raises(PortfolioInputError, match="sum"):
        validate_weights({"TECL": third, "BIL": third, "BSV": third})


@pytest.mark.parametrize(
    ("prices", "match"),
    [
        ({"TECL": D("80")}, "BIL: no price"),
        ({"TECL": D("80"), "BIL": D("0")}, "BIL: price 0 is not positive"),
        ({"TECL": D("80"), "BIL": D("-1")}, "BIL: price -1 is not positive"),
        ({"TECL": D("NaN"), "BIL": D("1")}, "TECL: price is NaN"),
        ({"TECL": D("Infinity"), "BIL": D("1")}, "TECL: price is Infinity"),
        ({"TECL": 80.0, "BIL": D("1")}, "TECL: price is a float"),
    ],
)
def test_bad_prices_refused_naming_symbol(prices: dict[str, object], match: str) -> None:
    """T5/C3: missing, non-positive, non-finite or float prices are refused per symbol."""
    with pytest.raises(PortfolioInputError, match=match):
        validate_prices(prices, ["TECL", "BIL"])  # pyright: ignore[reportArgumentType]


# -- targets ------------------------------------------------------------------------------------


def test_target_quantities_round_down_per_asset() -> None:
    """T5: fractional where allowed, whole shares otherwise, zero weights absent."""
    weights = {"TECL": D("0.75"), "BIL": D("0.25"), "UVXY": D("0")}
    targets = target_quantities(weights, D("10000"), PRICES, FRACTIONABLE)
    assert targets == {"BIL": D("27"), "TECL": D("93.609585621")}  # 2500/91.5 = 27.32; 7500/80.12


def test_target_quantities_keep_the_cash_reserve() -> None:
    """T5: the reserve is held back from what is invested."""
    targets = target_quantities({"SPXL": D("1")}, D("10000"), PRICES, FRACTIONABLE, D("0.1"))
    assert targets == {"SPXL": D("60")}


def test_zero_weight_symbols_need_no_price() -> None:
    """T5: a symbol with weight 0 is absent, so its price is irrelevant."""
    targets = target_quantities({"TECL": D("1"), "SQQQ": D("0")}, D("100"), PRICES, FRACTIONABLE)
    assert set(targets) == {"TECL"}


@pytest.mark.parametrize(
    ("equity", "reserve", "match"),
    [
        (D("0"), D("0"), "equity must be positive"),
        (D("-5"), D("0"), "equity must be positive"),
        (D("100"), D("1.5"), "cash_reserve must be within 0..1"),
        (D("100"), D("-0.1"), "cash_reserve must not be negative"),
    ],
)
def test_target_quantities_refuse_bad_account_figures(
    equity: Decimal, reserve: Decimal, match: str
) -> None:
    """T5: a non-positive equity or impossible reserve cannot be sized."""
    with pytest.raises(PortfolioInputError, match=match):
        target_quantities({"TECL": D("1")}, equity, PRICES, FRACTIONABLE, reserve)


def test_missing_fractionable_flag_refused() -> None:
    """T5: sizing needs the broker's fractionable flag; guessing it is a T7 failure."""
    with pytest.raises(PortfolioInputError, match="SQQQ: fractionable flag missing"):
        target_quantities({"SQQQ": D("1")}, D("100"), {"SQQQ": D("10")}, FRACTIONABLE)


# -- plan ---------------------------------------------------------------------------------------


def test_sells_come_before_buys() -> None:
    """B7: sell proceeds fund the buys, so sells are ordered first."""
    plan = plan_rebalance(
        current={"UVXY": D("100")},
        weights={"TECL": D("1")},
        equity=D("1234"),
        cash=D("0"),
        prices=PRICES,
        fractionable=FRACTIONABLE,
    )
    assert [order.side for order in plan.orders] == ["sell", "buy"]
    assert plan.sells[0] == PlannedOrder("UVXY", "sell", D("100"), D("12.34"))
    assert plan.buys[0].symbol == "TECL"
    assert not plan.is_empty


def test_dropped_symbol_is_fully_liquidated_even_fractional() -> None:
    """T5: a held symbol without weight is sold to zero, fractional remainder included."""
    plan = plan_rebalance(
        current={"UVXY": D("10.123456789"), "TECL": D("10")},
        weights={"TECL": D("1")},
        equity=D("926.44"),
        cash=D("0"),
        prices=PRICES,
        fractionable={"TECL": True},  # UVXY's flag is not needed to sell it all
    )
    assert plan.sells == (PlannedOrder("UVXY", "sell", D("10.123456789"), D("12.34")),)
    assert plan.targets["UVXY"] == 0


def test_zero_weight_held_symbol_is_liquidated() -> None:
    """T5: weight 0 means absent, so a held zero-weight symbol is sold."""
    plan = plan_rebalance(
        current={"BIL": D("3")},
        weights={"TECL": D("1"), "BIL": D("0")},
        equity=D("274.50"),
        cash=D("0"),
        prices=PRICES,
        fractionable=FRACTIONABLE,
    )
    assert plan.sells == (PlannedOrder("BIL", "sell", D("3"), D("91.50")),)


def test_small_trades_are_skipped_with_a_reason() -> None:
    """T5: a trade below the minimum notional is not sent, and the plan says why."""
    plan = plan_rebalance(
        current={"TECL": D("12.47")},
        weights={"TECL": D("1")},
        equity=D("1000"),
        cash=D("0.9"),
        prices=PRICES,
        fractionable=FRACTIONABLE,
    )
    # Target 1000/80.12 = 12.481278..., i.e. a buy of ~0.0113 shares (~$0.90).
    assert plan.is_empty
    assert len(plan.skipped) == 1
    symbol, reason = plan.skipped[0]
    assert symbol == "TECL"
    assert "below the minimum trade notional $1" in reason


def test_partial_sell_of_non_fractionable_rounds_down() -> None:
    """T5: a reduction sells whole shares of a non-fractionable asset, never more than needed."""
    plan = plan_rebalance(
        current={"BIL": D("10.5")},
        weights={"BIL": D("1")},
        equity=D("732"),  # target 8 shares at 91.50
        cash=D("0"),
        prices=PRICES,
        fractionable=FRACTIONABLE,
    )
    assert plan.sells == (PlannedOrder("BIL", "sell", D("2"), D("91.50")),)


def test_sell_rounding_to_zero_is_skipped_with_a_reason() -> None:
    """T5: half a share over target of a non-fractionable asset cannot be sold; the plan says so."""
    plan = plan_rebalance(
        current={"BIL": D("8.5")},
        weights={"BIL": D("1")},
        equity=D("732"),  # target 8 shares at 91.50
        cash=D("0"),
        prices=PRICES,
        fractionable=FRACTIONABLE,
        min_trade_notional=D("0"),
    )
    assert plan.is_empty
    assert plan.skipped == (
        ("BIL", "sell of 0.5 rounds to zero at the broker's quantity precision"),
    )


def test_buys_are_scaled_to_cash_plus_sell_proceeds() -> None:
    """B7: when equity says buy more than the cash allows, buys shrink pro rata, rounded down."""
    plan = plan_rebalance(
        current={"UVXY": D("10")},  # sells for 123.40
        weights={"TECL": D("0.5"), "SPXL": D("0.5")},
        equity=D("10000"),  # claims far more than cash + proceeds can buy
        cash=D("500"),
        prices=PRICES,
        fractionable=FRACTIONABLE,
    )
    spent = sum(order.qty * order.reference_price for order in plan.buys)
    assert spent <= D("623.40")
    assert spent > D("600")  # scaled down, not dropped
    cost = {order.symbol: order.qty * order.reference_price for order in plan.buys}
    assert abs(cost["TECL"] - cost["SPXL"]) < D("1")  # equal weights stay equal after scaling


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cash": D("-1")}, "cash must not be negative"),
        ({"current": {"TECL": D("-3")}}, "TECL position qty is -3"),
        ({"current": {"SQQQ": D("3")}}, "SQQQ: no price"),
        ({"equity": D("0")}, "equity must be positive"),
        ({"weights": {"TECL": D("0.9")}}, "sum"),
        ({"cash": 100.0}, "cash must be a Decimal"),
    ],
)
def test_plan_rebalance_refuses_bad_inputs(kwargs: dict[str, object], match: str) -> None:
    """T5/C3: negative cash or positions, unpriced holdings, zero equity, bad weights refused."""
    arguments: dict[str, object] = {
        "current": {},
        "weights": {"TECL": D("1")},
        "equity": D("1000"),
        "cash": D("1000"),
        "prices": PRICES,
        "fractionable": FRACTIONABLE,
    }
    arguments.update(kwargs)
    with pytest.raises(PortfolioInputError, match=match):
        plan_rebalance(**arguments)  # pyright: ignore[reportArgumentType]


def test_plan_at_target_is_empty() -> None:
    """T5: nothing to do when positions equal targets."""
    plan = plan_rebalance(
        current={"SPXL": D("6")},
        weights={"SPXL": D("1")},
        equity=D("900"),
        cash=D("0"),
        prices=PRICES,
        fractionable=FRACTIONABLE,
    )
    assert plan.is_empty
    assert plan.skipped == ()
    assert dict(plan.targets) == {"SPXL": D("6")}


def test_plan_is_immutable_and_picklable() -> None:
    """T5: a plan cannot be altered between the risk check and execution, yet survives the
    pickling Dagster's IO managers do."""
    plan = plan_rebalance({}, {"TECL": D("1")}, D("100"), D("100"), PRICES, FRACTIONABLE)
    with pytest.raises(TypeError):
        plan.targets["TECL"] = D("1000")  # pyright: ignore[reportIndexIssue]
    with pytest.raises(FrozenInstanceError):
        plan.buys = ()  # pyright: ignore[reportAttributeAccessIssue]
    copy = pickle.loads(pickle.dumps(plan))
    assert copy == plan
    assert copy.targets == {"TECL": D("1.248127808")}


# -- size_buys (B7) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "markup", "limit"),
    [
        (D("80.12"), D("0.005"), D("80.52")),  # 80.5206 down to the cent
        (D("80.12"), D("0"), D("80.12")),
        (D("1.50"), D("0.005"), D("1.50")),  # half a cent above: not a whole cent
        (D("682.019"), D("0.005"), D("685.42")),
    ],
)
def test_a_buys_limit_is_the_reserve_above_its_price_down_to_the_cent(price, markup, limit):
    assert buy_limit(price, markup) == limit


def test_buys_are_sized_so_that_each_at_its_limit_fits_the_cash() -> None:
    """B7: 10 TECL at 80.12 cost 801.20 at the price but 805.20 at a 0.5% limit; with 803.00
    of cash they are scaled down, so that a fill at the limit still never borrows."""
    buys = (PlannedOrder("TECL", "buy", D("10"), D("80.12")),)
    assert size_buys(buys, D("803.00"), FRACTIONABLE) == (buys, ())
    [sized], _ = size_buys(buys, D("803.00"), FRACTIONABLE, limit_markup=D("0.005"))
    assert sized.qty < 10 and sized.qty * D("80.52") <= D("803.00")


def test_size_buys_keeps_buys_that_fit() -> None:
    """B7: buys that fit the buying power are unchanged."""
    buys = (PlannedOrder("TECL", "buy", D("2"), D("80.12")),)
    assert size_buys(buys, D("160.24"), FRACTIONABLE) == (buys, ())


def test_size_buys_shrinks_to_actual_buying_power() -> None:
    """B7: after sells fill lower than planned, buys are re-sized to the real buying power."""
    buys = (
        PlannedOrder("TECL", "buy", D("10"), D("80.12")),
        PlannedOrder("BIL", "buy", D("10"), D("91.50")),
    )
    sized, skipped = size_buys(buys, D("858.10"), FRACTIONABLE)  # half of 1716.20
    assert skipped == ()
    by_symbol = {order.symbol: order for order in sized}
    assert by_symbol["BIL"].qty == D("4")  # 4.99... rounded down to whole shares
    assert D("4.99") < by_symbol["TECL"].qty < D("5")
    assert sum(order.cost_ceiling for order in sized) <= D("858.10")


def test_size_buys_without_cash_skips_with_reasons() -> None:
    """B7: no buying power means no buys, each with a reason, not a rejected order."""
    buys = (
        PlannedOrder("BIL", "buy", D("1"), D("91.50")),
        PlannedOrder("TECL", "buy", D("1"), D("80.12")),
    )
    sized, skipped = size_buys(buys, D("0"), FRACTIONABLE)
    assert sized == ()
    assert [symbol for symbol, _ in skipped] == ["BIL", "TECL"]
    assert all("rounds to zero" in reason for _, reason in skipped)


def test_size_buys_refuses_sells_and_negative_cash() -> None:
    """B7: only buys are sized, and negative buying power is untrusted input."""
    with pytest.raises(PortfolioInputError, match="buy orders"):
        size_buys((PlannedOrder("TECL", "sell", D("1"), D("1")),), D("10"), FRACTIONABLE)
    with pytest.raises(PortfolioInputError, match="available_cash"):
        size_buys((), D("-1"), FRACTIONABLE)


# -- properties (T5, B7) ------------------------------------------------------------------------

_SYMBOLS = list(HOLDINGS)
_prices = st.decimals(min_value=D("0.0001"), max_value=D("5000"), places=4)
_quantities = st.decimals(min_value=D("0"), max_value=D("5000"), places=9)


@st.composite
def _weights(draw: st.DrawFn) -> dict[str, Decimal]:
    symbols = draw(st.lists(st.sampled_from(_SYMBOLS), min_size=1, max_size=4, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=len(symbols) - 1)))
    cuts = cuts[: len(symbols) - 1]
    bounds = [0, *cuts, 10_000]
    # Basis points summing to 10,000: exact Decimal weights summing to exactly 1.
    return {symbol: D(bounds[i + 1] - bounds[i]) / D(10_000) for i, symbol in enumerate(symbols)}


@st.composite
def _scenario(draw: st.DrawFn) -> dict[str, object]:
    weights = draw(_weights())
    held = draw(st.dictionaries(st.sampled_from(_SYMBOLS), _quantities, max_size=4))
    involved = sorted(set(weights) | set(held))
    return {
        "current": held,
        "weights": weights,
        "equity": draw(st.decimals(min_value=D("1"), max_value=D("10000000"), places=2)),
        "cash": draw(st.decimals(min_value=D("0"), max_value=D("1000000"), places=2)),
        "prices": {symbol: draw(_prices) for symbol in involved},
        "fractionable": {symbol: draw(st.booleans()) for symbol in involved},
        "cash_reserve": draw(st.decimals(min_value=D("0"), max_value=D("0.5"), places=3)),
        "min_trade_notional": draw(st.sampled_from([D("0"), D("1"), D("25")])),
    }


@settings(derandomize=True, max_examples=400, deadline=None)
@given(_scenario())
def test_property_plan_never_buys_more_than_cash_allows(scenario: dict[str, Any]) -> None:
    """B7/T5: buys never cost more than cash + planned sell proceeds (exact arithmetic)."""
    plan = plan_rebalance(**scenario)
    available = scenario["cash"]
    assert isinstance(available, D)
    cash = Fraction(available)
    proceeds = sum(Fraction(o.qty) * Fraction(o.reference_price) for o in plan.sells)
    spent = sum(Fraction(o.qty) * Fraction(o.reference_price) for o in plan.buys)
    assert spent <= cash + proceeds
    assert sum(o.cost_ceiling for o in plan.buys) <= available + sum(
        (o.qty * o.reference_price for o in plan.sells), D(0)
    )


@settings(derandomize=True, max_examples=400, deadline=None)
@given(_scenario())
def test_property_quantities_are_sane(scenario: dict[str, Any]) -> None:
    """T5: no negative quantity, sells never exceed the position, targets never above ideal."""
    plan = plan_rebalance(**scenario)
    held: dict[str, Decimal] = scenario["current"]
    weights: dict[str, Decimal] = scenario["weights"]
    prices: dict[str, Decimal] = scenario["prices"]
    reserve = Fraction(scenario["cash_reserve"])
    investable = Fraction(scenario["equity"]) * (1 - reserve)

    assert all(qty >= 0 for qty in plan.targets.values())
    assert all(order.qty > 0 for order in plan.orders)
    for symbol, target in plan.targets.items():
        ideal = investable * Fraction(weights.get(symbol, D(0))) / Fraction(prices[symbol])
        assert Fraction(target) <= ideal, symbol
        if not scenario["fractionable"][symbol]:
            assert target == target.to_integral_value()
    for order in plan.sells:
        assert order.qty <= held[order.symbol]
    bought = {order.symbol for order in plan.buys}
    sold = {order.symbol for order in plan.sells}
    assert not bought & sold
    for order in plan.buys:
        assert held.get(order.symbol, D(0)) + order.qty <= plan.targets[order.symbol]
    # Every symbol is either at target, traded, or skipped with a reason.
    skipped = {symbol for symbol, _ in plan.skipped}
    for symbol, target in plan.targets.items():
        if held.get(symbol, D(0)) != target:
            assert symbol in bought | sold | skipped, symbol


@settings(derandomize=True, max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_SYMBOLS), _quantities.filter(bool), _prices, st.booleans()),
        max_size=6,
        unique_by=lambda item: item[0],
    ),
    st.decimals(min_value=D("0"), max_value=D("100000"), places=2),
    st.decimals(min_value=D("0"), max_value=D("0.05"), places=4),
)
def test_property_size_buys_fits_buying_power(
    raw: list[tuple[str, Decimal, Decimal, bool]], available: Decimal, markup: Decimal
) -> None:
    """B7: re-sized buys never exceed the buying power, even each filled at its limit, and
    never grow."""
    buys = [PlannedOrder(symbol, "buy", qty, price) for symbol, qty, price, _ in raw]
    fractionable = {symbol: flag for symbol, _, _, flag in raw}
    sized, skipped = size_buys(
        buys, available, fractionable, min_trade_notional=D("0"), limit_markup=markup
    )
    assert sum(Fraction(o.qty) * Fraction(o.reference_price) for o in sized) <= available
    assert sum(o.cost_ceiling for o in sized) <= available
    at_limits = (
        Fraction(o.qty) * Fraction(max(o.reference_price, buy_limit(o.reference_price, markup)))
        for o in sized
    )
    assert sum(at_limits) <= available
    original = {order.symbol: order.qty for order in buys}
    assert all(0 < order.qty <= original[order.symbol] for order in sized)
    assert {o.symbol for o in sized} | {s for s, _ in skipped} == set(original)


# -- risk limits (T9) ---------------------------------------------------------------------------


def _plan() -> RebalancePlan:
    return plan_rebalance(
        current={"UVXY": D("100")},  # 1234.00 to sell
        weights={"TECL": D("0.75"), "BIL": D("0.25")},
        equity=D("10000"),
        cash=D("8766"),
        prices=PRICES,
        fractionable=FRACTIONABLE,
    )


def test_risk_limits_pass_by_default() -> None:
    """T9: default limits allow a normal plan."""
    assert check_risk(_plan(), D("10000"), RiskLimits()) == []


def test_kill_switch_blocks() -> None:
    """T9: the kill switch is reported before anything else."""
    violations = check_risk(_plan(), D("10000"), RiskLimits(kill_switch=True))
    assert violations == ["kill switch is on: no order may be sent"]


def test_max_order_notional_names_symbol_and_limit() -> None:
    """T9: each order above the notional cap is named with the cap."""
    violations = check_risk(_plan(), D("10000"), RiskLimits(max_order_notional=D("2000")))
    assert len(violations) == 2
    tecl, bil = sorted(violations, reverse=True)
    assert tecl.startswith("TECL buy") and "above max_order_notional $2000" in tecl
    assert bil.startswith("BIL buy") and "$2470.50" in bil


def test_max_position_weight_names_symbol_and_limit() -> None:
    """T9: a target above the position weight limit is named with its weight and the limit."""
    violations = check_risk(_plan(), D("10000"), RiskLimits(max_position_weight=D("0.6")))
    assert len(violations) == 1
    assert violations[0].startswith("TECL target")
    assert "75.00% of equity" in violations[0]
    assert "above max_position_weight 60.00%" in violations[0]


def test_max_position_weight_counts_positions_without_orders() -> None:
    """T9: a position already at an oversized target is still reported."""
    plan = plan_rebalance(
        {"SPXL": D("6")}, {"SPXL": D("1")}, D("900"), D("0"), PRICES, FRACTIONABLE
    )
    assert plan.is_empty
    violations = check_risk(plan, D("900"), RiskLimits(max_position_weight=D("0.5")))
    assert len(violations) == 1
    assert violations[0].startswith("SPXL")


def test_max_position_weight_fails_closed_without_a_price() -> None:
    """T9: a limit that cannot be checked counts as broken."""
    plan = RebalancePlan(targets={"TECL": D("5")}, sells=(), buys=())
    violations = check_risk(plan, D("1000"), RiskLimits())
    assert violations == ["TECL: no reference price to check max_position_weight"]


def test_max_daily_turnover_names_limit_and_symbols() -> None:
    """T9: the sum of order notionals (plus what was already traded today) is capped."""
    plan = _plan()
    total = sum(order.notional for order in plan.orders)
    assert check_risk(plan, D("10000"), RiskLimits(max_daily_turnover=D("2"))) == []
    violations = check_risk(plan, D("10000"), RiskLimits(max_daily_turnover=D("0.5")))
    assert len(violations) == 1
    assert f"turnover ${total}" in violations[0]
    assert "BIL, TECL, UVXY" in violations[0]
    assert "above max_daily_turnover 50.00%" in violations[0]
    resumed = check_risk(
        plan, D("10000"), RiskLimits(max_daily_turnover=D("2")), traded_today=D("15000")
    )
    assert len(resumed) == 1 and "$15000 already traded today" in resumed[0]


def test_all_violations_are_reported_together() -> None:
    """T9: the operator sees every broken limit at once."""
    limits = RiskLimits(
        kill_switch=True,
        max_order_notional=D("100"),
        max_position_weight=D("0.1"),
        max_daily_turnover=D("0.01"),
    )
    assert len(check_risk(_plan(), D("10000"), limits)) == 1 + 3 + 2 + 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_order_notional": D("0")}, "max_order_notional"),
        ({"max_position_weight": D("1.5")}, "max_position_weight"),
        ({"max_position_weight": 0.5}, "max_position_weight must be a Decimal"),
        ({"max_daily_turnover": D("-1")}, "max_daily_turnover"),
        ({"kill_switch": "no"}, "kill_switch"),
    ],
)
def test_risk_limits_validated(kwargs: dict[str, object], match: str) -> None:
    """T9: malformed limits are refused when configured, not ignored when checked."""
    with pytest.raises(PortfolioInputError, match=match):
        RiskLimits(**kwargs)  # pyright: ignore[reportArgumentType]
