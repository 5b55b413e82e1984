"""A backtest of the signal history against buy-and-hold TECL and SPY (pure: no Dagster, no I/O).

Convention (CONVENTION below, shown with every result): the weights decided at session t's
close are bought at that close and held to the next decision's close (the next session when
the history is complete), so a weight decided on day t earns the return from close t to
close t+1. Each decision rebalances to its target from the weights the previous holding has
drifted to; `turnover` is the traded notional over equity (buys plus sells: a full switch
from one holding to another is 2.0, the first entry from cash is 1.0), and costs are
turnover x cost_bps / 10,000 of equity, zero by default. Prices are adjusted closes, so
returns include dividends and splits.

Floats, not Decimal: these are summary figures (CAGR, drawdown, Sharpe) read to a few
digits, computed over ~1,000 sessions with numpy; float64 keeps them accurate to ~1e-12.
Accounting to the cent (real quantities and fills) belongs to the portfolio code, which
works in Decimal; the weights arrive here as exact Decimals and become floats only here.
"""

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from tecl_pipeline.core.universe import HOLDINGS

TRADING_DAYS: Final = 252
STRATEGY: Final = "strategy"
BENCHMARKS: Final = ("TECL", "SPY")

CONVENTION: Final = (
    "Decision at a session's close, bought at that close and held to the next decision's "
    "close (weights decided on day t earn close t -> close t+1). Adjusted closes (dividends "
    "reinvested). Rebalanced to target at each decision from the drifted weights; turnover = "
    "traded notional / equity, buys + sells (a full switch = 2.0, entry from cash = 1.0); "
    "costs = turnover x cost_bps, {cost_bps:g} bps here. Buy-and-hold benchmarks enter at the "
    "first decision's close and pay the same entry cost. CAGR over calendar years (365.25 "
    "days); Sharpe and volatility annualised with 252 sessions, risk-free rate 0; max drawdown "
    "from the running peak of session-close equity."
)


@dataclass(frozen=True)
class Figures:
    """The usual figures of one equity curve."""

    total_return: float
    cagr: float
    max_drawdown: float  # negative: -0.5 is a 50% fall from the running peak
    volatility: float
    sharpe: float
    annual_turnover: float
    start: pd.Timestamp
    end: pd.Timestamp
    periods: int


@dataclass(frozen=True)
class BacktestResult:
    """Equity curves (start 1.0), net per-period returns and turnover per series, figures
    per series (STRATEGY, then BENCHMARKS), leaf counts over every decision."""

    equity: pd.DataFrame
    returns: pd.DataFrame
    turnover: pd.DataFrame
    figures: dict[str, Figures]
    leaf_counts: pd.Series
    cost_bps: float

    @property
    def convention(self) -> str:
        return CONVENTION.format(cost_bps=self.cost_bps)


def target_weights(signals: pd.DataFrame) -> pd.DataFrame:
    """signal_history's Decimal weight columns as floats (HOLDINGS order)."""
    return signals.loc[:, list(HOLDINGS)].map(float).astype(np.float64)


def simulate(
    weights: pd.DataFrame, prices: pd.DataFrame, cost_bps: float = 0.0
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Equity, net returns and turnover of holding `weights` (rows: decision sessions).

    `prices` holds every weight column's close on every decision session. Returns series
    indexed by the decision sessions: equity (1.0 at the first decision, before its entry
    cost), the net return earned from each decision to the next (NaN on the last decision,
    whose holding period has not ended), and each decision's turnover.
    """
    if not math.isfinite(cost_bps) or cost_bps < 0:
        raise ValueError(f"cost_bps must be a finite number >= 0, got {cost_bps}")
    if len(weights) < 2:
        raise ValueError("a backtest needs at least two decisions (one holding period)")
    if not weights.index.is_monotonic_increasing or weights.index.has_duplicates:
        raise ValueError("decision sessions must be unique and ascending")
    missing = weights.index.difference(prices.index)
    if len(missing):
        raise ValueError(f"no closes for {len(missing)} decision session(s), first {missing[0]}")
    px = prices.loc[weights.index, list(weights.columns)].to_numpy(dtype=np.float64)
    held = weights.to_numpy(dtype=np.float64)
    if not (np.isfinite(px) & (px > 0)).all():
        raise ValueError("closes of a holding are missing or not positive on a decision session")

    asset_returns = px[1:] / px[:-1] - 1.0  # row i: close of decision i -> close of decision i+1
    gross = (held[:-1] * asset_returns).sum(axis=1)
    # What each holding has become by the next decision's close, as weights of the new equity.
    drifted = held[:-1] * (1.0 + asset_returns) / (1.0 + gross)[:, None]
    before = np.vstack([np.zeros(held.shape[1]), drifted])  # the first decision starts in cash
    turnover = np.abs(held - before).sum(axis=1)
    cost = turnover * cost_bps / 10_000.0
    net = (1.0 - cost[:-1]) * (1.0 + gross) - 1.0
    equity = np.concatenate([[1.0], np.cumprod(1.0 + net)])
    index = weights.index
    return (
        pd.Series(equity, index=index),
        pd.Series(np.append(net, np.nan), index=index),
        pd.Series(turnover, index=index),
    )


def figures(equity: pd.Series, returns: pd.Series, turnover: pd.Series) -> Figures:
    """Figures of a curve from `simulate` (the last, still-open period excluded)."""
    period = returns.dropna()
    start, end = equity.index[0], equity.index[-1]
    years = (end - start).days / 365.25
    total = float(equity.iloc[-1] / equity.iloc[0])
    std = float(period.std(ddof=1)) if len(period) > 1 else math.nan
    drawdown = float((equity / equity.cummax() - 1.0).min())
    return Figures(
        total_return=total - 1.0,
        cagr=total ** (1.0 / years) - 1.0 if years > 0 else math.nan,
        max_drawdown=drawdown,
        volatility=std * math.sqrt(TRADING_DAYS),
        sharpe=float(period.mean()) / std * math.sqrt(TRADING_DAYS) if std > 0 else math.nan,
        # The last decision's trade is counted: it was made, only its period is open.
        annual_turnover=float(turnover.sum()) / years if years > 0 else math.nan,
        start=start,
        end=end,
        periods=len(period),
    )


def run_backtest(
    signals: pd.DataFrame, closes: pd.DataFrame, cost_bps: float = 0.0
) -> BacktestResult:
    """Backtest `signals` (signal_history's shape) on adjusted `closes` (a column per symbol,
    at least HOLDINGS and the benchmarks) against buy-and-hold of each of BENCHMARKS."""
    signals = signals.sort_index()
    curves: dict[str, tuple[pd.Series, pd.Series, pd.Series]] = {
        STRATEGY: simulate(target_weights(signals), closes, cost_bps)
    }
    for symbol in BENCHMARKS:
        all_in = pd.DataFrame({symbol: 1.0}, index=signals.index)
        curves[symbol] = simulate(all_in, closes, cost_bps)
    names = list(curves)
    return BacktestResult(
        equity=pd.DataFrame({n: curves[n][0] for n in names}),
        returns=pd.DataFrame({n: curves[n][1] for n in names}),
        turnover=pd.DataFrame({n: curves[n][2] for n in names}),
        figures={n: figures(*curves[n]) for n in names},
        leaf_counts=signals["leaf"].value_counts(),
        cost_bps=cost_bps,
    )


FIGURE_HEADERS: Final = (
    "series",
    "total return",
    "CAGR",
    "max drawdown",
    "volatility",
    "Sharpe",
    "turnover / yr",
)


def figure_rows(result: BacktestResult) -> list[tuple[str, ...]]:
    """One row per series, formatted for a person (percent to 2 places)."""
    return [
        (
            name,
            f"{f.total_return:.2%}",
            f"{f.cagr:.2%}",
            f"{f.max_drawdown:.2%}",
            f"{f.volatility:.2%}",
            f"{f.sharpe:.2f}",
            f"{f.annual_turnover:.2f}",
        )
        for name, f in result.figures.items()
    ]


def render_png(result: BacktestResult) -> bytes:
    """The equity curves (log scale) and the strategy's drawdown, as PNG bytes.

    An object-oriented Figure, not pyplot: pyplot keeps global figure state across runs.
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 6.5), dpi=100)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for name in result.equity.columns:
        label = f"{name} (CAGR {result.figures[name].cagr:.1%})"
        top.plot(result.equity.index, result.equity[name], label=label, linewidth=1.2)
    top.set_yscale("log")
    top.set_ylabel("equity (start = 1, log)")
    top.legend(loc="upper left")
    top.grid(True, which="both", alpha=0.3)
    top.set_title(f"TECL strategy vs buy-and-hold, costs {result.cost_bps:g} bps")
    for name in result.equity.columns:
        curve = result.equity[name]
        bottom.plot(curve.index, curve / curve.cummax() - 1.0, linewidth=0.9, label=name)
    bottom.set_ylabel("drawdown")
    bottom.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def leaf_rows(leaf_counts: pd.Series) -> list[tuple[str, int, str]]:
    total = int(leaf_counts.sum())
    return [(str(leaf), int(n), f"{n / total:.1%}") for leaf, n in leaf_counts.items()]
