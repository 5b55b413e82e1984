"""What the account did session by session, and how it compares with the backtest of the
same sessions: the figures an operator reads every day."""

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tecl_pipeline.core.performance import (
    BACKTEST,
    LIVE,
    AccountPoint,
    account_figures,
    compare_with_backtest,
    figures_after,
    position_figures,
)
from tecl_pipeline.core.universe import HOLDINGS

D = [date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6), date(2024, 3, 7)]


def point(day: date, equity: str, **kwargs: object) -> AccountPoint:
    values: dict = {
        "session": day,
        "equity": Decimal(equity),
        "cash": Decimal("100"),
        "leaf": "risk-on",
        "positions": {},
        "target_weights": {"TECL": Decimal(1)},
    }
    values.update(kwargs)
    return AccountPoint(**values)


def test_day_and_total_pnl_and_drawdown_from_the_running_peak():
    rows = account_figures(
        [
            point(D[2], "9000"),  # given out of order: figures follow the sessions
            point(D[0], "10000"),
            point(D[1], "11000"),
            point(D[3], "9900"),
        ]
    )
    assert [r.session for r in rows] == D
    assert [r.day_pnl for r in rows] == [0, 1000, -2000, 900]
    assert [r.total_pnl for r in rows] == [0, 1000, -1000, -100]
    assert [r.total_return for r in rows] == [0, Decimal("0.1"), Decimal("-0.1"), Decimal("-0.01")]
    # The peak is 11,000 from the second session on: 9,000 is 18.18% below it.
    assert [r.drawdown for r in rows] == [0, 0, Decimal("-0.1818"), Decimal("-0.1")]
    assert [r.previous_session for r in rows] == [None, *D[:3]]
    assert {r.first_session for r in rows} == {D[0]}
    assert all(isinstance(r.day_pnl, Decimal) for r in rows)


def test_positions_are_valued_at_the_prices_and_weighted_by_equity():
    rows = position_figures(
        positions={"TECL": Decimal("10"), "BIL": Decimal("3")},
        prices={"TECL": Decimal("55.55"), "BIL": Decimal("91.2")},
        equity=Decimal("1000"),
        target_weights={"TECL": Decimal("0.5"), "SPXL": Decimal("0.5")},
    )
    by_symbol = {r.symbol: r for r in rows}
    assert set(by_symbol) == {"TECL", "BIL", "SPXL"}  # held or targeted
    assert by_symbol["TECL"].value == Decimal("555.50")
    assert by_symbol["TECL"].weight == Decimal("0.5555")
    assert by_symbol["BIL"].target_weight == 0
    assert by_symbol["SPXL"].qty == 0 and by_symbol["SPXL"].target_weight == Decimal("0.5")


def test_a_position_without_a_price_has_no_value_rather_than_zero():
    (row,) = position_figures({"TECL": Decimal("10")}, {}, Decimal("1000"), {})
    assert row.price is None and row.value is None and row.weight is None


def _market(days: list[date], tecl: list[float], bil: list[float]) -> pd.DataFrame:
    closes = pd.DataFrame(
        {s: np.full(len(days), 100.0) for s in HOLDINGS}, index=pd.DatetimeIndex(days)
    )
    closes["TECL"] = tecl
    closes["BIL"] = bil
    return closes


def _signals(days: list[date], leaves: list[str], tecl: list[str]) -> pd.DataFrame:
    rows = []
    for leaf, weight in zip(leaves, tecl, strict=True):
        row: dict[str, object] = {s: Decimal(0) for s in HOLDINGS}
        row["TECL"] = Decimal(weight)
        row["BIL"] = 1 - Decimal(weight)
        row["leaf"] = leaf
        rows.append(row)
    return pd.DataFrame(rows, index=pd.DatetimeIndex(days))


def test_live_that_followed_the_strategy_tracks_the_backtest_exactly():
    closes = _market(D, [50, 55, 44, 48.4], [100, 100, 100, 100])
    signals = _signals(D, ["on"] * 4, ["1"] * 4)
    # All in TECL from 10,000: 200 shares, the equity is 200 x the close.
    points = [
        point(d, str(200 * c), leaf="on", positions={"TECL": Decimal(200)}, cash=Decimal(0))
        for d, c in zip(D, [50, 55, 44, 48.4], strict=True)
    ]
    result = compare_with_backtest(points, signals, closes)
    assert list(result.equity[BACKTEST]) == pytest.approx([10000, 11000, 8800, 9680])
    assert list(result.equity[LIVE]) == pytest.approx([10000, 11000, 8800, 9680])
    assert result.tracking["cumulative"].abs().max() == pytest.approx(0, abs=1e-12)
    assert result.divergences == ()
    assert result.figures[LIVE].max_drawdown == pytest.approx(-0.2)
    assert result.figures[BACKTEST].total_return == pytest.approx(-0.032)
    assert result.allocation.loc[pd.Timestamp(D[1]), "TECL"] == pytest.approx(1.0)


def test_divergent_sessions_name_the_reason():
    closes = _market(D, [50, 55, 44, 48.4], [100, 100, 100, 100])
    signals = _signals(D, ["on", "on", "off", "on"], ["1", "1", "0", "1"])
    points = [
        point(D[0], "10000", leaf="on", positions={"TECL": Decimal(200)}),
        # D[1]: no record (a refusal): the account kept its TECL.
        # D[2]: the run decided "on" where the backtest decided "off", and filled high.
        point(
            D[2],
            "8800",
            leaf="on",
            positions={"TECL": Decimal(200)},
            fill_prices={"TECL": Decimal("45.00")},
        ),
        point(D[3], "9680", leaf="on", positions={"TECL": Decimal(200)}),
    ]
    result = compare_with_backtest(points, signals, closes)
    reasons = {d.session: d.reasons for d in result.divergences}
    assert set(reasons) == {D[1], D[2]}
    assert "no record" in reasons[D[1]][0]
    assert any("a different decision: live on, backtest off" in r for r in reasons[D[2]])
    assert any(r.startswith("a residual: TECL held 100.0%, target 0.0%") for r in reasons[D[2]])
    assert any("a fill price: TECL filled at 45.00" in r and "+2.27%" in r for r in reasons[D[2]])
    # The backtest sat in BIL through the fall of D[2] -> D[3]; live held TECL.
    assert result.tracking.loc[pd.Timestamp(D[3]), "session"] == pytest.approx(0.1)
    assert result.equity[LIVE].isna().tolist() == [False, True, False, False]


def test_a_single_session_cannot_be_compared_yet():
    closes = _market(D[:1], [50], [100])
    with pytest.raises(ValueError, match="two recorded sessions"):
        compare_with_backtest([point(D[0], "10000")], _signals(D[:1], ["on"], ["1"]), closes)


def test_each_session_s_figures_follow_from_the_previous_one_s_basis_alone():
    """A run reads one record, not the journal: the basis it carries gives the same figures
    as the whole history does."""
    points = [point(D[0], "10000"), point(D[1], "11000"), point(D[2], "9000")]
    whole = account_figures([*points, point(D[3], "9900")])
    assert figures_after(whole[2].basis, point(D[3], "9900")) == whole[3]


def test_an_account_recorded_at_zero_is_measured_from_its_first_funded_session():
    rows = account_figures([point(D[0], "0"), point(D[1], "10000"), point(D[2], "11000")])
    assert [r.total_return for r in rows] == [0, 0, Decimal("0.1")]
    assert rows[2].first_session == D[1] and rows[2].total_pnl == 1000
    assert [r.drawdown for r in rows] == [0, 0, 0]


def test_the_tracking_difference_is_a_difference_of_returns():
    closes = _market(D[:2], [50, 55], [100, 100])
    signals = _signals(D[:2], ["on", "on"], ["1", "1"])  # the backtest makes 10%
    points = [
        point(D[0], "10000", leaf="on", positions={"TECL": Decimal(200)}),
        point(D[1], "10000", leaf="on", positions={"TECL": Decimal(200)}),  # live made 0%
    ]
    result = compare_with_backtest(points, signals, closes, weight_tolerance=Decimal(1))
    assert result.tracking["cumulative"].iloc[-1] == pytest.approx(-0.10)


def test_a_position_short_by_the_cash_reserve_is_on_target():
    closes = _market(D[:2], [50, 50], [100, 100])
    signals = _signals(D[:2], ["on", "on"], ["1", "1"])
    # 98% in TECL: the weight less a 2% reserve, exactly what trading buys.
    points = [point(d, "10000", leaf="on", positions={"TECL": Decimal(196)}) for d in D[:2]]
    assert (
        compare_with_backtest(points, signals, closes, cash_reserve=Decimal("0.02")).divergences
        == ()
    )
    [off, _] = compare_with_backtest(points, signals, closes).divergences
    assert off.reasons == ("a residual: TECL held 98.0%, target 100.0%",)


def test_sessions_before_the_account_is_funded_are_left_out_of_the_comparison():
    closes = _market(D[:3], [50, 50, 55], [100, 100, 100])
    signals = _signals(D[:3], ["on"] * 3, ["1"] * 3)
    points = [point(D[0], "0", leaf="on")] + [
        point(d, e, leaf="on", positions={"TECL": Decimal(200)})
        for d, e in ((D[1], "10000"), (D[2], "11000"))
    ]
    result = compare_with_backtest(points, signals, closes)
    assert list(result.equity.index) == [pd.Timestamp(d) for d in D[1:3]]
    assert result.figures[LIVE].total_return == pytest.approx(0.1)
