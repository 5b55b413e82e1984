"""`evaluate_tecl` against the spec's decision tree (spec: Decision tree, Public entry point).

Expected leaves and weights below are copied from the spec's tables, never from the code.
"""

import math
import pickle
from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tecl_pipeline.core.errors import MissingIndicatorError
from tecl_pipeline.core.strategy import (
    ALLOCATIONS,
    LEAVES,
    Decision,
    evaluate_tecl,
    evaluate_tecl_history,
)
from tecl_pipeline.core.universe import HOLDINGS, SYMBOLS

Indicators = dict[str, dict[str, float]]

SPEC_LEAVES = (
    "B1", "B2", "B3a", "B3b", "B4a", "B4b",
    "R1", "R2", "R3a", "R3b", "R4a", "R4b", "R5a", "R5b",
)  # fmt: skip

D = Decimal
UVXY_BIL_25_75 = {"UVXY": D("0.25"), "BIL": D("0.75")}
UVXY_BIL_15_85 = {"UVXY": D("0.15"), "BIL": D("0.85")}
ALL_BIL = {"BIL": D(1)}
ALL_TECL = {"TECL": D(1)}


def indicators(regime: str = "bull", **rsi: float) -> Indicators:
    """A full input that reaches B4b (bull) or R5b -> SQQQ (bear), with RSI overrides.

    `rsi` keys: SYMBOL for RSI(10), SYMBOL_9 for RSI(9).
    """
    values: Indicators = {
        symbol: {"price": 100.0, "sma_200": 90.0, "rsi_10": 50.0, "rsi_9": 50.0}
        for symbol in SYMBOLS
    }
    values["SPY"].update(price=450.0, sma_200=400.0 if regime == "bull" else 500.0)
    values["XLK"]["rsi_10"] = 40.0  # KMLM (50) stronger, XLK not oversold
    values["BSV"]["rsi_9"] = 40.0  # SQQQ (50) stronger
    for key, value in rsi.items():
        symbol, _, period = key.partition("_")
        values[symbol][f"rsi_{period or 10}"] = value
    return values


# leaf case -> (input, spec allocation, what the path reads, in the spec's order)
BULL_READS = [("SPY", "price"), ("SPY", "sma_200"), ("TQQQ", "rsi_10")]
BEAR_READS = [("SPY", "price"), ("SPY", "sma_200"), ("TQQQ", "rsi_10")]
XLK_KMLM = [("XLK", "rsi_10"), ("KMLM", "rsi_10")]
BEAR_TO_R4 = [*BEAR_READS, ("SPXL", "rsi_10"), ("UVXY", "rsi_10"), *XLK_KMLM]
CASES: dict[str, tuple[Indicators, Mapping[str, Decimal], list[tuple[str, str]]]] = {
    "B1": (indicators(TQQQ=85), UVXY_BIL_25_75, BULL_READS),
    "B2": (indicators(SPY=85), UVXY_BIL_25_75, [*BULL_READS, ("SPY", "rsi_10")]),
    "B3a": (indicators(XLK=82), ALL_BIL, [*BULL_READS, ("SPY", "rsi_10"), *XLK_KMLM]),
    "B3b": (indicators(XLK=60), ALL_TECL, [*BULL_READS, ("SPY", "rsi_10"), *XLK_KMLM]),
    "B4a": (indicators(XLK=20), ALL_TECL, [*BULL_READS, ("SPY", "rsi_10"), *XLK_KMLM]),
    "B4b": (indicators(), ALL_BIL, [*BULL_READS, ("SPY", "rsi_10"), *XLK_KMLM]),
    "R1": (indicators("bear", TQQQ=20), ALL_TECL, BEAR_READS),
    "R2": (indicators("bear", SPXL=20), {"SPXL": D(1)}, [*BEAR_READS, ("SPXL", "rsi_10")]),
    "R3a": (
        indicators("bear", UVXY=90),
        UVXY_BIL_15_85,
        [*BEAR_READS, ("SPXL", "rsi_10"), ("UVXY", "rsi_10")],
    ),
    "R3b": (
        indicators("bear", UVXY=80),
        ALL_BIL,
        [*BEAR_READS, ("SPXL", "rsi_10"), ("UVXY", "rsi_10")],
    ),
    "R4a": (indicators("bear", XLK=82), ALL_BIL, BEAR_TO_R4),
    "R4b": (indicators("bear", XLK=60), ALL_TECL, BEAR_TO_R4),
    "R5a": (indicators("bear", XLK=20), ALL_TECL, BEAR_TO_R4),
    "R5b->SQQQ": (
        indicators("bear"),
        {"SQQQ": D(1)},
        [*BEAR_TO_R4, ("BSV", "rsi_9"), ("SQQQ", "rsi_9")],
    ),
    "R5b->BSV": (
        indicators("bear", BSV_9=60),
        {"BSV": D(1)},
        [*BEAR_TO_R4, ("BSV", "rsi_9"), ("SQQQ", "rsi_9")],
    ),
}


def leaf_of(case: str) -> str:
    return case.partition("->")[0]


def assert_decision(decision: Decision, leaf: str, allocation: Mapping[str, Decimal]) -> None:
    assert decision.leaf == leaf
    assert dict(decision.allocation) == dict(allocation)
    assert all(type(w) is Decimal and w > 0 for w in decision.allocation.values())
    assert sum(decision.allocation.values()) == Decimal(1)
    assert decision.regime == ("bull" if leaf.startswith("B") else "bear")


def test_leaves_are_the_specs_fourteen_in_order() -> None:
    assert LEAVES == SPEC_LEAVES


@pytest.mark.parametrize("case", list(CASES))
def test_every_leaf_is_reached_with_its_exact_allocation(case: str) -> None:
    values, allocation, _ = CASES[case]
    assert_decision(evaluate_tecl(values), leaf_of(case), allocation)


def test_cases_cover_every_leaf() -> None:
    assert {leaf_of(case) for case in CASES} == set(SPEC_LEAVES)


def test_allocation_table_weights_are_exact_and_sum_to_one() -> None:
    for outcome, allocation in ALLOCATIONS.items():
        assert set(allocation) <= set(HOLDINGS), outcome
        assert all(type(w) is Decimal and w > 0 for w in allocation.values()), outcome
        assert sum(allocation.values()) == Decimal(1), outcome


def test_mix_is_not_collapsed_to_its_largest_weight() -> None:
    """Pitfall: 100% BIL instead of 25/75 UVXY/BIL (B1, B2) or 15/85 (R3a)."""
    for case in ("B1", "B2", "R3a"):
        allocation = evaluate_tecl(CASES[case][0]).allocation
        assert len(allocation) == 2 and allocation["UVXY"] in (D("0.25"), D("0.15")), case


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    tqqq=st.floats(0, 100),
    spy=st.floats(0, 100),
    xlk=st.floats(0, 100),
    kmlm=st.floats(0, 100),
    sqqq=st.floats(0, 100),
    bsv=st.floats(0, 100),
)
def test_bull_never_goes_to_the_bear_sqqq_bsv_choice(
    tqqq: float, spy: float, xlk: float, kmlm: float, sqqq: float, bsv: float
) -> None:
    """Pitfall: the bull "KMLM stronger" case is B4a/B4b (TECL/BIL), never SQQQ/BSV."""
    decision = evaluate_tecl(
        indicators(TQQQ=tqqq, SPY=spy, XLK=xlk, KMLM=kmlm, SQQQ_9=sqqq, BSV_9=bsv)
    )
    assert decision.regime == "bull"
    assert not {"SQQQ", "BSV"} & set(decision.allocation)
    if tqqq <= 79 and spy <= 80 and xlk <= kmlm:
        assert decision.leaf in ("B4a", "B4b")


# Each threshold: (input with the value exactly on it, leaf it must NOT give, leaf it gives).
ON_THRESHOLD = {
    "TQQQ RSI 79 (B1)": (indicators(TQQQ=79), "B1", "B4b"),
    "SPY RSI 80 (B2)": (indicators(SPY=80), "B2", "B4b"),
    "XLK RSI 81 (B3a)": (indicators(XLK=81), "B3a", "B3b"),
    "XLK RSI 29 (B4a)": (indicators(XLK=29), "B4a", "B4b"),
    "TQQQ RSI 31 (R1)": (indicators("bear", TQQQ=31), "R1", "R5b"),
    "SPXL RSI 29 (R2)": (indicators("bear", SPXL=29), "R2", "R5b"),
    "UVXY RSI 74 (R3)": (indicators("bear", UVXY=74), "R3b", "R5b"),
    "UVXY RSI 84 (R3a)": (indicators("bear", UVXY=84), "R3a", "R3b"),
    "XLK RSI 81 (R4a)": (indicators("bear", XLK=81), "R4a", "R4b"),
    "XLK RSI 29 (R5a)": (indicators("bear", XLK=29), "R5a", "R5b"),
    # Equal at 85, a non-strict XLK > KMLM would give B3a / R4a.
    "XLK == KMLM (bull)": (indicators(XLK=85, KMLM=85), "B3a", "B4b"),
    "XLK == KMLM (bear)": (indicators("bear", XLK=85, KMLM=85), "R4a", "R5b"),
    # Equal at 20, a non-strict XLK > KMLM would give B3b / R4b.
    "XLK == KMLM low (bull)": (indicators(XLK=20, KMLM=20), "B3b", "B4a"),
    "XLK == KMLM low (bear)": (indicators("bear", XLK=20, KMLM=20), "R4b", "R5a"),
}


@pytest.mark.parametrize("name", list(ON_THRESHOLD))
def test_value_exactly_on_a_threshold_does_not_fire(name: str) -> None:
    """T8: comparisons are strict; a value on the threshold does not fire."""
    values, not_leaf, leaf = ON_THRESHOLD[name]
    decision = evaluate_tecl(values)
    assert decision.leaf != not_leaf
    assert decision.leaf == leaf


def test_spy_price_equal_to_its_sma_is_bear() -> None:
    """T8: bull needs SPY price strictly above its SMA(200)."""
    values = indicators()
    values["SPY"]["price"] = values["SPY"]["sma_200"] = 431.17
    decision = evaluate_tecl(values)
    assert decision.regime == "bear"
    assert decision.leaf.startswith("R")


def test_sqqq_bsv_tie_goes_to_sqqq() -> None:
    """T8: R5b picks BSV only if its RSI(9) is strictly higher; a tie is SQQQ."""
    decision = evaluate_tecl(indicators("bear", SQQQ_9=37.5, BSV_9=37.5))
    assert_decision(decision, "R5b", {"SQQQ": D(1)})


def around(threshold: float) -> st.SearchStrategy[float]:
    """The threshold, its float neighbours, and values near it."""
    exact = [
        threshold,
        math.nextafter(threshold, math.inf),
        math.nextafter(threshold, -math.inf),
    ]
    return st.one_of(st.sampled_from(exact), st.floats(threshold - 3, threshold + 3))


# name -> (build input from the drawn value, threshold, ">" or "<", leaf when it fires, else)
SingleThreshold = tuple[Callable[[float], Indicators], float, str, str, str]
THRESHOLDS: dict[str, SingleThreshold] = {
    "B1 TQQQ > 79": (lambda v: indicators(TQQQ=v), 79, ">", "B1", "B4b"),
    "B2 SPY > 80": (lambda v: indicators(SPY=v), 80, ">", "B2", "B4b"),
    "B3a XLK > 81": (lambda v: indicators(XLK=v, KMLM=70), 81, ">", "B3a", "B3b"),
    "B4a XLK < 29": (lambda v: indicators(XLK=v, KMLM=70), 29, "<", "B4a", "B4b"),
    "R1 TQQQ < 31": (lambda v: indicators("bear", TQQQ=v), 31, "<", "R1", "R5b"),
    "R2 SPXL < 29": (lambda v: indicators("bear", SPXL=v), 29, "<", "R2", "R5b"),
    "R3 UVXY > 74": (lambda v: indicators("bear", UVXY=v), 74, ">", "R3b", "R5b"),
    "R3a UVXY > 84": (lambda v: indicators("bear", UVXY=v), 84, ">", "R3a", "R3b"),
    "R4a XLK > 81": (lambda v: indicators("bear", XLK=v, KMLM=70), 81, ">", "R4a", "R4b"),
    "R5a XLK < 29": (lambda v: indicators("bear", XLK=v, KMLM=70), 29, "<", "R5a", "R5b"),
}


@pytest.mark.parametrize("name", list(THRESHOLDS))
@settings(derandomize=True, max_examples=60, deadline=None)
@given(data=st.data())
def test_strict_comparison_around_each_threshold(name: str, data: st.DataObject) -> None:
    """T8: just above/below the threshold fires exactly as the strict comparison says."""
    build, threshold, op, fires, otherwise = THRESHOLDS[name]
    value = data.draw(around(threshold))
    fired = value > threshold if op == ">" else value < threshold
    assert evaluate_tecl(build(value)).leaf == (fires if fired else otherwise)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    xlk=st.floats(30, 80),
    nudge=st.sampled_from([-1, 0, 1]),
    regime=st.sampled_from(["bull", "bear"]),
)
def test_strict_xlk_above_kmlm(xlk: float, nudge: int, regime: str) -> None:
    """T8: XLK must be strictly stronger than KMLM (one ulp decides)."""
    kmlm = xlk if nudge == 0 else math.nextafter(xlk, math.inf * nudge)
    decision = evaluate_tecl(indicators(regime, XLK=xlk, KMLM=kmlm))
    stronger = {"bull": "B3b", "bear": "R4b"}[regime]
    assert (decision.leaf == stronger) == (xlk > kmlm)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(sma_200=st.floats(1, 1000), nudge=st.sampled_from([-1, 0, 1]))
def test_strict_spy_above_sma(sma_200: float, nudge: int) -> None:
    """T8: bull only if SPY's price is strictly above its SMA(200)."""
    price = sma_200 if nudge == 0 else math.nextafter(sma_200, math.inf * nudge)
    values = indicators()
    values["SPY"].update(price=price, sma_200=sma_200)
    assert (evaluate_tecl(values).regime == "bull") == (price > sma_200)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(sqqq=st.floats(0, 100), nudge=st.sampled_from([-1, 0, 1]))
def test_strict_bsv_above_sqqq(sqqq: float, nudge: int) -> None:
    """T8: R5b is BSV only if BSV's RSI(9) is strictly higher; otherwise SQQQ."""
    bsv = sqqq if nudge == 0 else math.nextafter(sqqq, math.inf * nudge)
    decision = evaluate_tecl(indicators("bear", SQQQ_9=sqqq, BSV_9=bsv))
    assert decision.leaf == "R5b"
    assert dict(decision.allocation) == ({"BSV": D(1)} if bsv > sqqq else {"SQQQ": D(1)})


def spec_tree(v: Indicators) -> str:
    """The spec's tables as a plain if-chain, for the random cross-check below."""

    def r(s: str) -> float:
        return v[s]["rsi_10"]

    if v["SPY"]["price"] > v["SPY"]["sma_200"]:
        if r("TQQQ") > 79:
            return "B1"
        if r("SPY") > 80:
            return "B2"
        if r("XLK") > r("KMLM") and r("XLK") > 81:
            return "B3a"
        if r("XLK") > r("KMLM"):
            return "B3b"
        if r("XLK") <= r("KMLM") and r("XLK") < 29:
            return "B4a"
        return "B4b"
    if r("TQQQ") < 31:
        return "R1"
    if r("SPXL") < 29:
        return "R2"
    if r("UVXY") > 74 and r("UVXY") > 84:
        return "R3a"
    if r("UVXY") > 74:
        return "R3b"
    if r("XLK") > r("KMLM") and r("XLK") > 81:
        return "R4a"
    if r("XLK") > r("KMLM"):
        return "R4b"
    if r("XLK") < 29:
        return "R5a"
    return "R5b->BSV" if v["BSV"]["rsi_9"] > v["SQQQ"]["rsi_9"] else "R5b->SQQQ"


EDGY = st.sampled_from(
    [t + d for t in (29, 31, 74, 79, 80, 81, 84) for d in (-1e-9, 0, 1e-9)] + [0, 50, 100]
)


@st.composite
def tree_inputs(draw: st.DrawFn) -> Indicators:
    """Inputs on and around every threshold, with frequent exact ties between symbols."""
    shared = draw(st.one_of(EDGY, st.floats(0, 100)))  # drawn once, so ties are common
    value = st.one_of(EDGY, st.floats(0, 100), st.just(shared))
    rsi = {s: draw(value) for s in ("TQQQ", "SPY", "XLK", "KMLM", "SPXL", "UVXY")}
    rsi |= {f"{s}_9": draw(value) for s in ("SQQQ", "BSV")}
    values = indicators("bull", **rsi)
    sma_200 = draw(st.floats(1, 1000))
    nudge = draw(st.sampled_from([-1.0, 0.0, 1.0]))
    values["SPY"].update(price=math.nextafter(sma_200, math.inf * nudge) if nudge else sma_200)
    values["SPY"]["sma_200"] = sma_200
    return values


@settings(derandomize=True, max_examples=500, deadline=None)
@given(values=tree_inputs())
def test_matches_the_spec_tables_on_random_inputs(values: Indicators) -> None:
    """T8: the whole tree, first match wins, near every threshold and tie at once."""
    expected = spec_tree(values)
    decision = evaluate_tecl(values)
    assert decision.leaf == leaf_of(expected)
    assert dict(decision.allocation) == dict(CASES[expected][1])


# Any: the point is to put what the type forbids (None) where a float belongs.
PROBLEMS: dict[str, Callable[[dict[str, Any], str], object]] = {
    "missing": lambda values, name: values.pop(name),
    "NaN": lambda values, name: values.__setitem__(name, math.nan),
    "inf": lambda values, name: values.__setitem__(name, math.inf),
    "-inf": lambda values, name: values.__setitem__(name, -math.inf),
    "None": lambda values, name: values.__setitem__(name, None),
}


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("case", list(CASES))
def test_indicator_on_the_path_is_refused_off_the_path_ignored(case: str, problem: str) -> None:
    """T1: a missing/NaN/inf indicator the path needs is refused, naming symbol and indicator;
    one the path does not need changes nothing."""
    values, allocation, reads = CASES[case]
    for symbol in SYMBOLS:
        for name in ("price", "sma_200", "rsi_10", "rsi_9"):
            broken = {s: dict(v) for s, v in values.items()}
            PROBLEMS[problem](broken[symbol], name)
            if (symbol, name) in reads:
                with pytest.raises(MissingIndicatorError) as caught:
                    evaluate_tecl(broken)
                assert (caught.value.symbol, caught.value.indicator) == (symbol, name)
                assert symbol in str(caught.value) and name in str(caught.value)
                assert isinstance(caught.value, ValueError)
            else:
                assert_decision(evaluate_tecl(broken), leaf_of(case), allocation)


@pytest.mark.parametrize("case", list(CASES))
def test_missing_symbol_on_the_path_is_refused(case: str) -> None:
    """T1: a whole symbol missing from the input is refused if the path reads it."""
    values, allocation, reads = CASES[case]
    for symbol in SYMBOLS:
        without = {s: v for s, v in values.items() if s != symbol}
        if symbol in {s for s, _ in reads}:
            with pytest.raises(MissingIndicatorError, match=symbol) as caught:
                evaluate_tecl(without)
            assert caught.value.symbol == symbol
        else:
            assert_decision(evaluate_tecl(without), leaf_of(case), allocation)


def test_extra_symbols_and_indicators_are_ignored() -> None:
    for case, (values, allocation, _) in CASES.items():
        extra = {s: {**v, "rsi_14": math.nan, "bars": 9999} for s, v in values.items()}
        extra["QQQ"] = {"price": math.nan}
        extra["junk"] = {}
        assert_decision(evaluate_tecl(extra), leaf_of(case), allocation)


def test_reason_reads_like_the_spec_example() -> None:
    values = indicators(TQQQ=85)
    assert evaluate_tecl(values).reason == "bull: SPY 450.00 > SMA200 400.00; TQQQ RSI10 85.0 > 79"


def test_reason_lists_every_check_with_its_outcome() -> None:
    reason = evaluate_tecl(indicators("bear", TQQQ=60, BSV_9=60)).reason
    assert reason == (
        "bear: SPY 450.00 <= SMA200 500.00; TQQQ RSI10 60.0 >= 31; SPXL RSI10 50.0 >= 29; "
        "UVXY RSI10 50.0 <= 74; XLK RSI10 40.0 <= KMLM RSI10 50.0; XLK RSI10 40.0 >= 29; "
        "BSV RSI9 60.0 > SQQQ RSI9 50.0"
    )
    assert "TQQQ RSI10 60.0 <= 79" in evaluate_tecl(indicators(TQQQ=60)).reason


def test_reason_does_not_round_a_strict_win_into_a_tie() -> None:
    above = math.nextafter(79.0, math.inf)
    assert f"TQQQ RSI10 {above!r} > 79" in evaluate_tecl(indicators(TQQQ=above)).reason
    assert "TQQQ RSI10 79.0 <= 79" in evaluate_tecl(indicators(TQQQ=79)).reason


def test_decision_is_frozen_pickles_and_cannot_edit_the_table() -> None:
    decision = evaluate_tecl(CASES["B1"][0])
    with pytest.raises(FrozenInstanceError):
        decision.leaf = "B2"  # pyright: ignore[reportAttributeAccessIssue]
    assert pickle.loads(pickle.dumps(decision)) == decision
    decision.allocation["UVXY"] = D(1)  # pyright: ignore[reportIndexIssue]
    assert ALLOCATIONS["B1"]["UVXY"] == D("0.25")


def assert_vectorised_agrees(days: list[Indicators]) -> None:
    stacked = {
        symbol: {name: np.array([d[symbol][name] for d in days]) for name in days[0][symbol]}
        for symbol in SYMBOLS
    }
    history = evaluate_tecl_history(stacked)
    assert list(history.columns) == ["leaf", *HOLDINGS]
    for i, day in enumerate(days):
        decision = evaluate_tecl(day)
        row = history.iloc[i]
        assert row["leaf"] == decision.leaf
        assert {h: row[h] for h in HOLDINGS} == {
            h: decision.allocation.get(h, D(0)) for h in HOLDINGS
        }


def test_vectorised_tree_agrees_on_and_beside_every_threshold() -> None:
    """T8: the vectorised form (used by signal_history) is exactly as strict as evaluate_tecl:
    every threshold and tie, exactly on it and one ulp either side, plus every leaf case."""
    days = [values for values, _, _ in CASES.values()]
    days += [values for values, _, _ in ON_THRESHOLD.values()]
    for build, threshold, _, _, _ in THRESHOLDS.values():
        days += [build(threshold), *(build(math.nextafter(threshold, d)) for d in (-1e9, 1e9))]
    sma_tie = indicators()
    sma_tie["SPY"]["price"] = sma_tie["SPY"]["sma_200"]
    days += [sma_tie, indicators("bear", SQQQ_9=40, BSV_9=40)]
    assert_vectorised_agrees(days)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(days=st.lists(tree_inputs(), min_size=1, max_size=40))
def test_vectorised_tree_agrees_with_evaluate_tecl_on_random_inputs(
    days: list[Indicators],
) -> None:
    """T8: the vectorised form and evaluate_tecl agree near every threshold and tie at once."""
    assert_vectorised_agrees(days)


def test_vectorised_tree_refuses_any_undefined_input() -> None:
    """T1: every value the tree may read must be there on every session."""
    stacked = {s: {k: np.array([v, v]) for k, v in d.items()} for s, d in indicators().items()}
    stacked["BSV"]["rsi_9"][1] = math.nan  # off the bull path, but needed on some session
    with pytest.raises(MissingIndicatorError, match="BSV rsi_9") as caught:
        evaluate_tecl_history(stacked)
    assert (caught.value.symbol, caught.value.indicator) == ("BSV", "rsi_9")
    del stacked["KMLM"]
    with pytest.raises(MissingIndicatorError, match="KMLM rsi_10"):
        evaluate_tecl_history(stacked)


def test_vectorised_tree_refuses_misaligned_arrays() -> None:
    stacked = {s: {k: np.array([v, v]) for k, v in d.items()} for s, d in indicators().items()}
    stacked["XLK"]["rsi_10"] = np.array([40.0])
    with pytest.raises(ValueError, match="one length"):
        evaluate_tecl_history(stacked)
