"""SMA(200) and Wilder RSI against the spec's definitions (spec: Indicators).

The references below are deliberately naive loops written straight from the spec's wording, so
that the vectorised code is checked against something that shares none of its tricks.
"""

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.core.indicators import (
    INDICATORS,
    bar_counts,
    indicator_table,
    latest_indicators,
    sma,
    validate_closes,
    wilder_rsi,
)
from tecl_pipeline.core.universe import SMA_WINDOW, WARMUP_BARS

SEEDS = (20240101, 7, 31337)


def reference_rsi(closes: list[float], period: int) -> list[float]:
    """Wilder RSI by the spec, one day at a time; NaN until `period` changes exist."""
    out = [math.nan] * len(closes)
    start = next((i for i, c in enumerate(closes) if not math.isnan(c)), len(closes))
    changes = [closes[i] - closes[i - 1] for i in range(start + 1, len(closes))]
    if len(changes) < period:
        return out

    def rsi(gain: float, loss: float) -> float:
        if loss == 0:
            return 50.0 if gain == 0 else 100.0
        return 100 - 100 / (1 + gain / loss)

    gain = sum(max(c, 0.0) for c in changes[:period]) / period
    loss = sum(max(-c, 0.0) for c in changes[:period]) / period
    out[start + period] = rsi(gain, loss)
    for i in range(period, len(changes)):
        gain = (gain * (period - 1) + max(changes[i], 0.0)) / period
        loss = (loss * (period - 1) + max(-changes[i], 0.0)) / period
        out[start + i + 1] = rsi(gain, loss)
    return out


def reference_sma(closes: list[float], window: int) -> list[float]:
    out = [math.nan] * len(closes)
    for i in range(window - 1, len(closes)):
        last = closes[i - window + 1 : i + 1]
        if not any(math.isnan(c) for c in last):
            out[i] = math.fsum(last) / window
    return out


def random_closes(seed: int, rows: int = 700, symbols: int = 4) -> pd.DataFrame:
    """Random walks with their own start rows, some on a 2-decimal grid so flat days occur."""
    print(f"random_closes seed={seed}")
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2015-01-02", periods=rows)
    columns = {}
    for k in range(symbols):
        walk = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02 * (k + 1), rows)))
        if k % 2:
            walk = np.round(walk, 2)
        walk[: int(rng.integers(0, rows // 3))] = np.nan
        columns[f"S{k}"] = walk
    return pd.DataFrame(columns, index=days)


def assert_close(actual: pd.Series, expected: list[float], rel: float = 1e-9) -> None:
    got = actual.to_numpy()
    want = np.array(expected)
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN in different places"
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=rel, atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [10, 9, 2])
def test_rsi_matches_reference_loop_on_random_series(seed: int, period: int) -> None:
    closes = random_closes(seed)
    rsi = wilder_rsi(closes, period)
    for symbol in closes.columns:
        assert_close(rsi[symbol], reference_rsi(closes[symbol].tolist(), period))


@pytest.mark.parametrize("seed", SEEDS)
def test_sma_matches_reference_loop_on_random_series(seed: int) -> None:
    closes = random_closes(seed)
    result = sma(closes)
    for symbol in closes.columns:
        assert_close(result[symbol], reference_sma(closes[symbol].tolist(), SMA_WINDOW), 1e-12)


def test_rsi_hand_checked_example() -> None:
    # Changes +1, -1, +2 with N=2: seed gain (1+0)/2=0.5, loss (0+1)/2=0.5 -> RSI 50; then
    # gain (0.5*1+2)/2=1.25, loss (0.5*1+0)/2=0.25 -> RS 5 -> RSI 100-100/6.
    rsi = wilder_rsi(pd.Series([1.0, 2.0, 1.0, 3.0]), 2)
    assert math.isnan(rsi.iloc[0]) and math.isnan(rsi.iloc[1])
    assert rsi.iloc[2] == pytest.approx(50.0)
    assert rsi.iloc[3] == pytest.approx(100 - 100 / 6)


def test_rsi_hand_checked_example_period_3() -> None:
    # Changes -2, +1, +4, -1: seed gain 5/3, loss 2/3 -> RS 2.5 -> 100-100/3.5;
    # next gain (5/3*2+0)/3=10/9, loss (2/3*2+1)/3=7/9 -> RS 10/7 -> 100-100/(17/7).
    rsi = wilder_rsi(pd.Series([10.0, 8.0, 9.0, 13.0, 12.0]), 3)
    assert rsi.iloc[:3].isna().all()
    assert rsi.iloc[3] == pytest.approx(100 - 100 / 3.5)
    assert rsi.iloc[4] == pytest.approx(100 - 100 / (17 / 7))


def test_rsi_is_100_when_average_loss_is_zero() -> None:
    rising = pd.Series(np.arange(1.0, 40.0))
    assert (wilder_rsi(rising, 10).dropna() == 100.0).all()
    # Rising then flat: the gain average decays but stays positive, the loss average stays 0.
    rising_then_flat = pd.Series([*range(1, 13), *([12] * 20)], dtype=float)
    assert (wilder_rsi(rising_then_flat, 10).dropna() == 100.0).all()


def test_rsi_is_50_on_flat_prices() -> None:
    flat = pd.Series([42.0] * 30)
    assert (wilder_rsi(flat, 10).dropna() == 50.0).all()
    assert wilder_rsi(flat, 10).notna().sum() == 30 - 10


def test_rsi_is_0_when_average_gain_is_zero() -> None:
    falling = pd.Series(np.arange(40.0, 1.0, -1.0))
    assert (wilder_rsi(falling, 10).dropna() == 0.0).all()


def test_rsi_needs_period_changes() -> None:
    closes = pd.Series(np.linspace(1.0, 2.0, 11))
    assert wilder_rsi(closes.iloc[:10], 10).isna().all()  # 9 changes
    assert wilder_rsi(closes, 10).notna().tolist() == [False] * 10 + [True]


def test_rsi_recursion_starts_at_each_columns_own_first_bar() -> None:
    closes = random_closes(SEEDS[0])
    closes["LATE"] = np.nan
    closes.loc[closes.index[400:], "LATE"] = closes["S0"].dropna().to_numpy()[:300]
    rsi = wilder_rsi(closes, 10)
    alone = wilder_rsi(closes["LATE"].iloc[400:], 10)
    assert rsi["LATE"].iloc[:410].isna().all()
    pd.testing.assert_series_equal(rsi["LATE"].iloc[400:], alone)
    # Same values, other start: the RSI is the same sequence, only shifted.
    start = closes["S0"].first_valid_index()
    shifted = wilder_rsi(closes["S0"].loc[start:], 10).to_numpy()[:300]
    np.testing.assert_array_equal(rsi["LATE"].iloc[400:].to_numpy(), shifted)


def test_series_in_series_out_frame_in_frame_out() -> None:
    closes = random_closes(SEEDS[1])
    assert isinstance(wilder_rsi(closes["S1"], 9), pd.Series)
    assert wilder_rsi(closes["S1"], 9).name == "S1"
    assert isinstance(sma(closes), pd.DataFrame)
    pd.testing.assert_series_equal(sma(closes)["S2"], sma(closes["S2"]))
    pd.testing.assert_series_equal(wilder_rsi(closes, 9)["S3"], wilder_rsi(closes["S3"], 9))


def gappy_closes() -> pd.DataFrame:
    days = pd.bdate_range("2024-01-01", periods=30)
    closes = pd.DataFrame({"SPY": np.linspace(400, 430, 30), "TQQQ": np.linspace(50, 60, 30)})
    closes.index = days
    closes.loc[days[:3], "TQQQ"] = np.nan  # before its first bar: fine
    closes.loc[days[10], "TQQQ"] = np.nan  # 2024-01-15: a gap
    closes.loc[days[12], "TQQQ"] = np.nan
    return closes


@pytest.mark.parametrize("indicator", [lambda c: wilder_rsi(c, 10), sma, validate_closes])
def test_interior_nan_raises_naming_symbol_and_first_missing_date(
    indicator: Callable[[pd.DataFrame], object],
) -> None:
    """T1: a gap after a symbol's first bar is refused, not skipped over."""
    with pytest.raises(MarketDataError, match=r"TQQQ .*2024-01-15") as caught:
        indicator(gappy_closes())
    assert "SPY" not in str(caught.value)


def test_trailing_nan_is_a_gap_too() -> None:
    closes = gappy_closes().ffill()
    closes.iloc[-1, 0] = np.nan
    with pytest.raises(MarketDataError, match=r"SPY .*2024-02-09"):
        wilder_rsi(closes, 10)


@pytest.mark.parametrize(("bad", "words"), [(np.inf, "infinite"), (0.0, "non-positive")])
def test_infinite_or_non_positive_close_raises(bad: float, words: str) -> None:
    closes = gappy_closes().ffill()
    closes.iloc[5, 1] = bad
    with pytest.raises(MarketDataError, match=rf"TQQQ has an? {words} close on 2024-01-08"):
        sma(closes)


def test_unsorted_or_duplicate_sessions_raise() -> None:
    closes = gappy_closes().ffill()
    with pytest.raises(MarketDataError, match="ascending"):
        wilder_rsi(closes.iloc[::-1], 10)
    with pytest.raises(MarketDataError, match="unique"):
        sma(pd.concat([closes, closes.iloc[-1:]]))


def test_sma_needs_200_closes() -> None:
    closes = pd.Series(np.arange(1.0, 251.0))
    assert sma(closes.iloc[:199]).isna().all()
    result = sma(closes)
    assert result.iloc[:199].isna().all()
    assert result.iloc[199] == (1 + 200) / 2  # exact: the mean of 1..200
    assert result.iloc[249] == (51 + 250) / 2


def test_sma_waits_for_each_symbols_own_200_closes() -> None:
    closes = random_closes(SEEDS[2], rows=500)
    closes["NEW"] = np.nan
    closes.loc[closes.index[-210:], "NEW"] = 10.0
    result = sma(closes)["NEW"]
    assert result.iloc[:-11].isna().all()
    assert (result.iloc[-11:] == 10.0).all()


def test_sma_does_not_depend_on_older_history() -> None:
    """A live run fed only recent bars must see the very SMA a long backtest sees."""
    closes = random_closes(SEEDS[0], rows=900)["S0"].dropna()
    full = sma(closes).iloc[-1]
    assert sma(closes.iloc[-SMA_WINDOW:]).iloc[-1] == full
    assert sma(closes.iloc[-333:]).iloc[-1] == full


def test_bar_counts_count_each_symbols_bars() -> None:
    counts = bar_counts(gappy_closes().bfill())
    assert counts["SPY"].tolist() == list(range(1, 31))
    closes = gappy_closes().ffill()
    assert bar_counts(closes)["TQQQ"].tolist() == [0, 0, 0, *range(1, 28)]


def test_latest_indicators_is_the_last_row_of_the_indicator_functions() -> None:
    closes = random_closes(SEEDS[1], rows=800)
    latest = latest_indicators(closes)
    assert set(latest) == set(closes.columns)
    for symbol in closes.columns:
        values = latest[symbol]
        assert tuple(values) == INDICATORS
        assert all(type(v) is float for v in values.values())
        assert values["price"] == closes[symbol].iloc[-1]
        assert values["sma_200"] == sma(closes[symbol]).iloc[-1]
        assert values["rsi_10"] == wilder_rsi(closes[symbol], 10).iloc[-1]
        assert values["rsi_9"] == wilder_rsi(closes[symbol], 9).iloc[-1]


def test_rsi_before_warmup_is_not_defined() -> None:
    """T1: an RSI on fewer than 250 bars is not trusted, so it is reported as NaN, not used."""
    closes = random_closes(SEEDS[2], rows=WARMUP_BARS + 50, symbols=1)
    closes["S0"] = closes["S0"].bfill()
    closes["SHORT"] = np.nan
    closes.iloc[-(WARMUP_BARS - 1) :, 1] = closes["S0"].to_numpy()[: WARMUP_BARS - 1]
    table = indicator_table(closes)
    assert table.at["SHORT", "bars"] == WARMUP_BARS - 1
    assert table.loc[["SHORT"], ["rsi_10", "rsi_9"]].isna().to_numpy().all()
    assert table.at["SHORT", "sma_200"] == sma(closes["SHORT"]).iloc[-1]  # 249 >= 200 closes
    assert table.at["S0", "bars"] == WARMUP_BARS + 50
    assert table.at["S0", "rsi_10"] == wilder_rsi(closes["S0"], 10).iloc[-1]
    assert list(table.columns) == [*INDICATORS, "bars"]


def test_latest_indicators_refuses_an_empty_history() -> None:
    with pytest.raises(MarketDataError):
        latest_indicators(pd.DataFrame({"SPY": []}, dtype=float))
