"""The strategy's indicators over daily closes (spec: Indicators): SMA(200), Wilder RSI(10)/(9).

Pure and vectorised: no Dagster, no I/O, no loop over days. Every function takes adjusted
closes with sessions ascending down the index and one column per symbol; a symbol's column is
NaN before its first bar. After its first bar a symbol must have a close on every row: a gap
(or a trailing NaN, i.e. stale data) is a data error, never something to skip over.
"""

from collections.abc import Hashable
from types import MappingProxyType
from typing import Final, TypeVar

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.core.universe import RSI_FAST_PERIOD, RSI_PERIOD, SMA_WINDOW, WARMUP_BARS

# The indicators `evaluate_tecl` reads, in the order the Dagster layer shows them.
INDICATORS: Final = ("price", "sma_200", "rsi_10", "rsi_9")
# `indicator_table` also shows how much history each value rests on.
TABLE_COLUMNS: Final = (*INDICATORS, "bars")
_RSI_COLUMNS: Final = MappingProxyType({"rsi_10": RSI_PERIOD, "rsi_9": RSI_FAST_PERIOD})

Closes = TypeVar("Closes", pd.Series, pd.DataFrame)


def sma(closes: Closes, window: int = SMA_WINDOW) -> Closes:
    """Simple mean of the last `window` closes, today's included; NaN until `window` closes exist.

    Each value is the mean of exactly its own window, so it does not depend on how much older
    history was passed in: a live run fed 300 bars gets the same bits as a backtest fed 30 years.
    (A running sum, as in `rolling().mean()`, drifts by a few ulps with the start point.)
    """
    if window < 1:
        raise ValueError(f"SMA window must be at least 1, got {window}")
    values = _checked_values(_as_frame(closes))
    out = np.full(values.shape, np.nan)
    if len(values) >= window:
        # One contiguous row per symbol so every window is a contiguous run of `window` values.
        per_symbol = np.ascontiguousarray(values.T)
        out[window - 1 :] = sliding_window_view(per_symbol, window, axis=1).mean(axis=-1).T
    return _shaped_like(closes, out)


def wilder_rsi(closes: Closes, period: int) -> Closes:
    """Wilder's RSI over `period` daily changes, exactly as the spec defines it.

    The first average gain/loss is the simple mean of a symbol's first `period` changes (its
    recursion starts at its own first bar); after that `avg = (avg_prev * (period - 1) + x) /
    period`, which is an exponential mean with alpha = 1/period seeded with that simple mean.
    RSI = 100 - 100 / (1 + avg_gain / avg_loss); avg_loss == 0 gives 100, both zero give 50.
    NaN until `period` changes exist. This does not apply the 250-bar warm-up: see
    `indicator_table` and `signal_history` for where that is enforced.
    """
    if period < 1:
        raise ValueError(f"RSI period must be at least 1, got {period}")
    values = _checked_values(_as_frame(closes))
    n_rows, n_symbols = values.shape
    changes = np.diff(values, axis=0, prepend=np.nan)
    gains = np.maximum(changes, 0.0)
    losses = np.maximum(-changes, 0.0)

    # Gains in the left half, losses in the right; NaN before each symbol's seed row, so that
    # the exponential mean below starts at the seed, per column.
    seeded = np.full((n_rows, 2 * n_symbols), np.nan)
    for col in range(n_symbols):
        present = np.flatnonzero(~np.isnan(values[:, col]))
        if present.size <= period:
            continue
        first = present[0]
        seed = first + period  # the row of the symbol's `period`-th change
        for half, moves in ((0, gains), (n_symbols, losses)):
            seeded[seed, half + col] = moves[first + 1 : seed + 1, col].mean()
            seeded[seed + 1 :, half + col] = moves[seed + 1 :, col]

    averages = pd.DataFrame(seeded).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()
    avg_gain, avg_loss = averages[:, :n_symbols], averages[:, n_symbols:]
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    rsi = np.where(avg_loss == 0.0, np.where(avg_gain == 0.0, 50.0, 100.0), rsi)
    return _shaped_like(closes, rsi)


def bar_counts(closes: pd.DataFrame) -> pd.DataFrame:
    """Number of closes each symbol has up to and including each row."""
    return closes.notna().cumsum().astype(np.int64)


def indicator_frames(closes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every indicator of `INDICATORS` for every row and symbol, without the warm-up rule."""
    frames = {"price": closes.astype(float), "sma_200": sma(closes)}
    frames.update({name: wilder_rsi(closes, period) for name, period in _RSI_COLUMNS.items()})
    return frames


def indicator_table(closes: pd.DataFrame) -> pd.DataFrame:
    """The indicators on the last row: index = symbol, columns `TABLE_COLUMNS`.

    An RSI of a symbol with fewer than `WARMUP_BARS` bars still depends on where its history
    began, and the spec says not to trust it; it is reported as NaN (not defined), so that
    `evaluate_tecl` refuses to decide on it if its path needs it. `bars` says why.
    """
    if closes.empty:
        raise MarketDataError("no closes: cannot compute indicators on an empty history")
    frames = indicator_frames(closes)
    table = pd.DataFrame({name: frame.iloc[-1] for name, frame in frames.items()})
    table["bars"] = bar_counts(closes).iloc[-1]
    table.loc[table["bars"] < WARMUP_BARS, list(_RSI_COLUMNS)] = np.nan
    table.index.name = "symbol"
    return table.loc[:, list(TABLE_COLUMNS)]


def latest_indicators(closes: pd.DataFrame) -> dict[str, dict[str, float]]:
    """`indicator_table` as plain floats, in the shape `evaluate_tecl` takes.

    {symbol: {"price": ..., "sma_200": ..., "rsi_10": ..., "rsi_9": ...}}, NaN where a value is
    not defined (too little history).
    """
    table = indicator_table(closes)
    rows = table.loc[:, list(INDICATORS)].to_numpy(dtype=float)
    return {
        str(symbol): {name: float(value) for name, value in zip(INDICATORS, row, strict=True)}
        for symbol, row in zip(table.index, rows, strict=True)
    }


def _as_frame(closes: pd.Series | pd.DataFrame) -> pd.DataFrame:
    if isinstance(closes, pd.Series):
        return closes.to_frame(name=closes.name if closes.name is not None else "closes")
    return closes


def _shaped_like(closes: Closes, values: np.ndarray) -> Closes:
    if isinstance(closes, pd.Series):
        return pd.Series(values[:, 0], index=closes.index, name=closes.name)
    return pd.DataFrame(values, index=closes.index, columns=closes.columns)


def validate_closes(closes: pd.DataFrame) -> None:
    """Raise `MarketDataError` on closes no indicator may be computed from.

    That is: sessions not unique and ascending, non-numeric, infinite or non-positive closes,
    and a NaN after a symbol's first bar (a gap, or stale data at the end). Each problem names
    the symbol and the first date it occurs.
    """
    _checked_values(closes)


def _checked_values(frame: pd.DataFrame) -> np.ndarray:
    if not (frame.index.is_monotonic_increasing and frame.index.is_unique):
        raise MarketDataError("closes must be indexed by unique sessions in ascending order")
    try:
        values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise MarketDataError(f"closes must be numeric: {exc}") from exc

    missing = np.isnan(values)
    started = np.logical_or.accumulate(~missing, axis=0)
    _refuse(frame, missing & started, "has no close on {day}, after its first bar")
    _refuse(frame, np.isinf(values), "has an infinite close on {day}")
    with np.errstate(invalid="ignore"):
        _refuse(frame, values <= 0.0, "has a non-positive close on {day}")
    return values


def _refuse(frame: pd.DataFrame, bad: np.ndarray, what: str) -> None:
    """Raise naming every symbol with a `bad` cell and the first date it happens."""
    columns = np.flatnonzero(bad.any(axis=0))
    if columns.size:
        problems = [
            f"{frame.columns[col]} " + what.format(day=_day(frame.index[int(bad[:, col].argmax())]))
            for col in columns.tolist()
        ]
        raise MarketDataError("; ".join(problems))


def _day(label: Hashable) -> str:
    if isinstance(label, pd.Timestamp) and label == label.normalize():
        return label.date().isoformat()
    return str(label)
