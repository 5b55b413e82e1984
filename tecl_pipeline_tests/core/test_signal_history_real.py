"""`signal_history` on real and synthetic closes: the same leaf and weights as `evaluate_tecl`.

Real data: `../shared/data/market/<SYMBOL>.csv` beside the checkout, or $TECL_SHARED_DATA
(see conftest). Never copied into the repo.
"""

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.core.indicators import INDICATORS, indicator_frames, latest_indicators
from tecl_pipeline.core.strategy import LEAVES, Decision, evaluate_tecl, signal_history
from tecl_pipeline.core.universe import HOLDINGS, SYMBOLS, WARMUP_BARS
from tecl_pipeline_tests.market_history import read_symbol


@pytest.fixture(scope="module")
def real_history(real_closes: pd.DataFrame) -> pd.DataFrame:
    return signal_history(real_closes)


def evaluate_every_day(closes: pd.DataFrame, days: pd.Index) -> list[Decision]:
    """evaluate_tecl on each day, fed that day's row of the full-history indicator frames."""
    frames = indicator_frames(closes.loc[:, list(SYMBOLS)])
    rows = closes.index.get_indexer(days)
    stacked = np.stack([frames[name].to_numpy()[rows] for name in INDICATORS], axis=-1)
    return [
        evaluate_tecl(
            {
                symbol: dict(zip(INDICATORS, map(float, stacked[i, j]), strict=True))
                for j, symbol in enumerate(SYMBOLS)
            }
        )
        for i in range(len(rows))
    ]


def assert_same(history: pd.DataFrame, day: pd.Timestamp, decision: Decision) -> None:
    assert history.at[day, "leaf"] == decision.leaf, f"{day.date()}: {decision.reason}"
    expected = {h: decision.allocation.get(h, Decimal(0)) for h in HOLDINGS}
    actual = {h: history.at[day, h] for h in HOLDINGS}
    assert actual == expected, f"{day.date()}: {decision.reason}"


def assert_weights_exact(history: pd.DataFrame) -> None:
    assert list(history.columns) == ["leaf", *HOLDINGS]
    weights = history.loc[:, list(HOLDINGS)].to_numpy()
    assert all(type(w) is Decimal and w >= 0 for w in weights.ravel())
    assert all(sum(row, Decimal(0)) == Decimal(1) for row in weights)
    assert set(history["leaf"]) <= set(LEAVES)


def test_first_session_is_kmlms_250th_bar(real_history: pd.DataFrame, market_dir: Path) -> None:
    kmlm_250th = read_symbol(market_dir, "KMLM").index[WARMUP_BARS - 1]
    latest_250th = max(read_symbol(market_dir, s).index[WARMUP_BARS - 1] for s in SYMBOLS)
    assert real_history.index[0] == kmlm_250th == latest_250th == pd.Timestamp("2021-11-29")


def test_history_has_every_session_after_warmup(
    real_closes: pd.DataFrame, real_history: pd.DataFrame
) -> None:
    assert real_history.index.equals(real_closes.loc[real_history.index[0] :].index)
    assert real_history.index[-1] == real_closes.index[-1]


def test_real_weights_are_exact_and_sum_to_one(real_history: pd.DataFrame) -> None:
    assert_weights_exact(real_history)
    counts = real_history["leaf"].value_counts().reindex(list(LEAVES), fill_value=0)
    print(f"\nleaf counts over {len(real_history)} sessions:\n{counts.to_string()}")


def test_real_parity_on_every_session(
    real_closes: pd.DataFrame, real_history: pd.DataFrame
) -> None:
    decisions = evaluate_every_day(real_closes, real_history.index)
    for day, decision in zip(real_history.index, decisions, strict=True):
        assert_same(real_history, day, decision)


def test_real_parity_from_truncated_history(
    real_closes: pd.DataFrame, real_history: pd.DataFrame
) -> None:
    """No look-ahead: deciding a day from the closes up to it alone gives the history's row.

    Every 10th session, plus the first session of each leaf and the last session.
    """
    days = set(real_history.index[::10]) | {real_history.index[-1]}
    days |= set(real_history.reset_index().groupby("leaf")["date"].first())
    for day in sorted(days):
        assert_same(real_history, day, evaluate_tecl(latest_indicators(real_closes.loc[:day])))


def synthetic_closes(seed: int, rows: int = 2500) -> pd.DataFrame:
    """Ten symbols on regime-switching random walks, so that both regimes and RSI extremes
    occur often; staggered first bars so that the warm-up is set by one late symbol."""
    print(f"synthetic_closes seed={seed}")
    rng = np.random.default_rng(seed)
    # Market drift switches every ~15-60 sessions between rally, slide and chop.
    lengths = rng.integers(15, 60, size=rows)
    regime = np.repeat(rng.choice([0.012, -0.012, 0.0], size=rows), lengths)[:rows]
    market = regime + rng.normal(0, 0.012, rows)
    loadings = {
        "SPY": 1.0, "TQQQ": 3.0, "XLK": 1.3, "KMLM": -0.4, "TECL": 3.0,
        "BIL": 0.0, "UVXY": -4.0, "SPXL": 3.0, "SQQQ": -3.0, "BSV": 0.05,
    }  # fmt: skip
    noise = {"KMLM": 0.015, "BIL": 0.0005, "BSV": 0.003}
    days = pd.bdate_range("2010-01-04", periods=rows)
    columns = {}
    for symbol, beta in loadings.items():
        returns = beta * market + rng.normal(0, noise.get(symbol, 0.01), rows)
        if symbol == "UVXY":
            # Volatility spikes of its own, so that R3 is reached without R1/R2 firing first.
            returns += 0.08 * (rng.random(rows) < 0.08)
        columns[symbol] = 100 * np.exp(np.cumsum(returns))
    closes = pd.DataFrame(columns, index=days)
    closes.loc[closes.index[: int(rng.integers(100, 400))], "KMLM"] = np.nan
    return closes


SYNTHETIC_SEEDS = (11, 2024)


@pytest.mark.parametrize("seed", SYNTHETIC_SEEDS)
def test_synthetic_parity_on_every_session(seed: int) -> None:
    closes = synthetic_closes(seed)
    history = signal_history(closes)
    assert history.index[0] == closes.index[closes["KMLM"].notna().to_numpy()][WARMUP_BARS - 1]
    assert_weights_exact(history)
    decisions = evaluate_every_day(closes, history.index)
    for day, decision in zip(history.index, decisions, strict=True):
        assert_same(history, day, decision)
    for day in history.index[::97]:
        assert_same(history, day, evaluate_tecl(latest_indicators(closes.loc[:day])))
    reached = history["leaf"].value_counts()
    print(f"leaves reached: {reached.to_dict()}")
    # The check above only means something if the data exercise most of the tree.
    assert len(reached) >= 12


def test_synthetic_seeds_reach_every_outcome_together() -> None:
    histories = [signal_history(synthetic_closes(seed)) for seed in SYNTHETIC_SEEDS]
    both = pd.concat(histories)
    assert set(both["leaf"]) == set(LEAVES)
    r5b = both[both["leaf"] == "R5b"]
    assert (r5b["SQQQ"] == 1).any() and (r5b["BSV"] == 1).any()


def test_flat_prices_sit_on_every_tie() -> None:
    """T8 over a history: flat closes give RSI 50 everywhere and SPY price == SMA (bear),
    XLK == KMLM and SQQQ == BSV: every tie must fall the strict way, to R5b -> SQQQ."""
    days = pd.bdate_range("2020-01-01", periods=WARMUP_BARS + 30)
    closes = pd.DataFrame({s: 100.0 for s in SYMBOLS}, index=days)
    history = signal_history(closes)
    assert len(history) == 31
    assert (history["leaf"] == "R5b").all()
    assert (history["SQQQ"] == Decimal(1)).all()
    assert_same(history, days[-1], evaluate_tecl(latest_indicators(closes)))


def test_extra_columns_are_ignored_and_missing_universe_column_is_named() -> None:
    closes = synthetic_closes(5, rows=400)
    with_extra = closes.assign(QQQ=closes["XLK"] * 2)
    pd.testing.assert_frame_equal(signal_history(with_extra), signal_history(closes))
    with pytest.raises(MarketDataError, match="BSV"):
        signal_history(closes.drop(columns="BSV"))


def test_gap_in_a_holding_is_refused() -> None:
    closes = synthetic_closes(5, rows=400)
    closes.loc[closes.index[300], "BIL"] = np.nan
    with pytest.raises(MarketDataError, match="BIL"):
        signal_history(closes)


def test_too_short_history_has_no_rows() -> None:
    closes = synthetic_closes(5, rows=WARMUP_BARS - 1)
    history = signal_history(closes)
    assert history.empty and list(history.columns) == ["leaf", *HOLDINGS]
