"""The backtest core: its convention on hand-made histories, and its figures on the real data."""

import math
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tecl_pipeline.core.backtest import (
    BENCHMARKS,
    STRATEGY,
    BacktestResult,
    figures,
    render_png,
    run_backtest,
    simulate,
)
from tecl_pipeline.core.strategy import signal_history
from tecl_pipeline.core.universe import HOLDINGS
from tecl_pipeline_tests.market_history import read_symbol

DAYS = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"])


def history(*holdings: dict[str, str]) -> pd.DataFrame:
    """A signal history in signal_history's shape, one session per allocation."""
    rows = [
        {"leaf": "X", **{h: Decimal(allocation.get(h, "0")) for h in HOLDINGS}}
        for allocation in holdings
    ]
    return pd.DataFrame(rows, index=DAYS[: len(rows)])


def closes(**prices: list[float]) -> pd.DataFrame:
    """Flat 10.0 for every holding and SPY unless given."""
    n = len(next(iter(prices.values())))
    columns = {s: prices.get(s, [10.0] * n) for s in (*HOLDINGS, "SPY")}
    return pd.DataFrame(columns, index=DAYS[:n])


def test_a_weight_decided_on_day_t_earns_the_return_to_t_plus_1() -> None:
    # TECL rises 10% into day 1 and falls 10% into day 2; held only on day 0's decision.
    signals = history({"TECL": "1"}, {"BIL": "1"}, {"TECL": "1"})
    result = run_backtest(signals, closes(TECL=[100.0, 110.0, 99.0]))
    assert list(result.returns[STRATEGY].iloc[:2]) == pytest.approx([0.10, 0.0])
    assert list(result.equity[STRATEGY]) == pytest.approx([1.0, 1.1, 1.1])
    # The last decision's period has not ended: no return yet.
    assert math.isnan(result.returns[STRATEGY].iloc[-1])


def test_costs_reduce_returns_by_turnover_times_bps() -> None:
    signals = history({"TECL": "1"}, {"BIL": "1"}, {"BIL": "1"})
    prices = closes(TECL=[100.0, 110.0, 121.0])
    gross = run_backtest(signals, prices)
    net = run_backtest(signals, prices, cost_bps=10)
    # Entry from cash is 1.0, a full switch 2.0, holding still 0.
    assert list(net.turnover[STRATEGY]) == pytest.approx([1.0, 2.0, 0.0])
    assert net.returns[STRATEGY].iloc[0] == pytest.approx((1 - 0.001) * 1.1 - 1)
    assert net.returns[STRATEGY].iloc[1] == pytest.approx((1 - 0.002) * 1.0 - 1)
    assert net.equity[STRATEGY].iloc[-1] == pytest.approx(0.999 * 1.1 * 0.998)
    assert gross.equity[STRATEGY].iloc[-1] == pytest.approx(1.1)


def test_turnover_counts_the_rebalance_of_drifted_weights() -> None:
    weights = pd.DataFrame({"TECL": [0.5, 0.5], "BIL": [0.5, 0.5]}, index=DAYS[:2])
    prices = pd.DataFrame({"TECL": [10.0, 20.0], "BIL": [10.0, 10.0]}, index=DAYS[:2])
    _, returns, turnover = simulate(weights, prices)
    assert returns.iloc[0] == pytest.approx(0.5)
    # After TECL doubled the book is 2/3 TECL, 1/3 BIL; back to 1/2 each trades 1/3.
    assert list(turnover) == pytest.approx([1.0, 1 / 3])


def test_drawdown_cagr_and_sharpe_on_a_known_series() -> None:
    days = pd.DatetimeIndex(["2020-01-01", "2020-06-01", "2021-01-01", "2022-01-01"])
    weights = pd.DataFrame({"TECL": 1.0}, index=days)
    prices = pd.DataFrame({"TECL": [100.0, 120.0, 60.0, 90.0]}, index=days)
    equity, returns, turnover = simulate(weights, prices)
    result = figures(equity, returns, turnover)
    assert result.total_return == pytest.approx(-0.1)
    assert result.max_drawdown == pytest.approx(-0.5)  # 120 -> 60
    assert result.cagr == pytest.approx(0.9 ** (365.25 / 731) - 1)
    period = np.array([0.2, -0.5, 0.5])
    assert result.sharpe == pytest.approx(period.mean() / period.std(ddof=1) * math.sqrt(252))
    assert result.periods == 3
    assert result.annual_turnover == pytest.approx(1.0 / (731 / 365.25))


@pytest.mark.parametrize("cost_bps", [-1.0, math.nan, math.inf])
def test_invalid_costs_are_refused(cost_bps: float) -> None:
    with pytest.raises(ValueError, match="cost_bps"):
        run_backtest(history({"TECL": "1"}, {"TECL": "1"}), closes(TECL=[1.0, 2.0]), cost_bps)


def test_a_decision_without_closes_is_refused() -> None:
    signals = history({"TECL": "1"}, {"TECL": "1"}, {"TECL": "1"})
    with pytest.raises(ValueError, match="no closes"):
        run_backtest(signals, closes(TECL=[1.0, 2.0]))


def test_a_missing_price_of_a_holding_is_refused() -> None:
    with pytest.raises(ValueError, match="missing or not positive"):
        run_backtest(history({"TECL": "1"}, {"TECL": "1"}), closes(TECL=[1.0, math.nan]))


def test_the_core_imports_no_framework_or_io_client() -> None:
    forbidden = ("dagster", "alpaca", "boto3", "botocore", "requests", "matplotlib")
    code = (
        "import sys, tecl_pipeline.core.backtest; "
        f"print(','.join(m for m in {forbidden!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""


@pytest.fixture(scope="module")
def real_result(real_closes: pd.DataFrame) -> tuple[pd.DataFrame, BacktestResult]:
    signals = signal_history(real_closes)
    return signals, run_backtest(signals, real_closes)


def test_real_figures_are_finite(real_result: tuple[pd.DataFrame, BacktestResult]) -> None:
    signals, result = real_result
    assert set(result.figures) == {STRATEGY, *BENCHMARKS}
    for name, f in result.figures.items():
        values = (f.total_return, f.cagr, f.max_drawdown, f.volatility, f.sharpe)
        assert all(math.isfinite(v) for v in values), name
        assert -1 < f.max_drawdown <= 0, name
        assert f.periods == len(signals) - 1
    print("\n" + "\n".join(f"{n}: {f}" for n, f in result.figures.items()))


def test_real_buy_and_hold_equals_the_price_ratio(
    real_result: tuple[pd.DataFrame, BacktestResult], market_dir: Path
) -> None:
    signals, result = real_result
    first, last = signals.index[0], signals.index[-1]
    for symbol in BENCHMARKS:
        raw = read_symbol(market_dir, symbol)  # read independently of the code under test
        assert result.figures[symbol].total_return == pytest.approx(
            raw[last] / raw[first] - 1, rel=1e-12
        )


def test_real_leaf_counts_equal_signal_history(
    real_result: tuple[pd.DataFrame, BacktestResult],
) -> None:
    signals, result = real_result
    assert result.leaf_counts.to_dict() == signals["leaf"].value_counts().to_dict()
    assert int(result.leaf_counts.sum()) == len(signals)


def test_real_equity_compounds_the_net_returns(
    real_result: tuple[pd.DataFrame, BacktestResult],
) -> None:
    _, result = real_result
    returns = result.returns[STRATEGY].dropna()
    assert result.equity[STRATEGY].iloc[-1] == pytest.approx(float(np.prod(1 + returns)))


def test_the_plot_is_a_png(real_result: tuple[pd.DataFrame, BacktestResult]) -> None:
    _, result = real_result
    assert render_png(result).startswith(b"\x89PNG\r\n\x1a\n")
