"""Pictures of a `LiveComparison` (pure: bytes and text, no files).

Two sizes: a PNG with every panel (equity, allocation, drawdown) for the page's dialog and
for sharing, and a small SVG of the two equity curves that fits in Dagster's inline
markdown, which the UI shows without a click only below 1,000 characters.
"""

import base64
import io
from types import MappingProxyType
from typing import Final

import numpy as np
import pandas as pd

from tecl_pipeline.core.performance import BACKTEST, LIVE, LiveComparison

INLINE_LIMIT: Final = 1000
"""Dagster's UI renders a markdown metadata value inline only below this many characters."""
_COLOURS: Final = MappingProxyType({LIVE: "#1f77b4", BACKTEST: "#888888"})
_WIDTH, _HEIGHT, _PAD = 300, 100, 4


def render_live_png(comparison: LiveComparison) -> bytes:
    """Equity of live and backtest (money), live allocation over time, and drawdowns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 8), dpi=100)
    FigureCanvasAgg(figure)
    top, middle, bottom = figure.subplots(3, 1, sharex=True, height_ratios=(3, 1.5, 1))
    equity = comparison.equity
    for name in (BACKTEST, LIVE):
        curve = equity[name].dropna()
        label = f"{name} ({comparison.figures[name].total_return:+.1%})"
        top.plot(curve.index, curve, label=label, color=_COLOURS[name], linewidth=1.3)
    top.set_ylabel("equity ($)")
    top.legend(loc="upper left")
    top.grid(True, alpha=0.3)
    top.set_title("Live account vs the backtest of the same sessions")

    allocation = comparison.allocation.loc[:, (comparison.allocation > 0).any()]
    if len(allocation.columns):
        middle.stackplot(
            allocation.index, allocation.T.to_numpy(), labels=list(allocation.columns), step="post"
        )
        middle.legend(loc="upper left", fontsize="small", ncols=len(allocation.columns))
    middle.set_ylabel("live allocation")
    middle.set_ylim(0, 1.05)
    middle.grid(True, alpha=0.3)

    for name in (BACKTEST, LIVE):
        curve = equity[name].dropna()
        bottom.plot(curve.index, curve / curve.cummax() - 1.0, color=_COLOURS[name], label=name)
    bottom.set_ylabel("drawdown")
    bottom.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def inline_markdown(comparison: LiveComparison, *, limit: int = INLINE_LIMIT) -> str:
    """A markdown image of both equity curves, as detailed as fits under `limit` characters.

    The curves are sampled evenly over the span (first and last session always kept);
    fewer points are drawn until the markdown fits.
    """
    for points in (60, 45, 34, 25, 18, 12, 8, 5, 2):
        text = _markdown(_svg(comparison.equity, points))
        if len(text) < limit:
            return text
    raise ValueError(f"no picture of the curves fits in {limit} characters")


def _markdown(svg: str) -> str:
    encoded = base64.b64encode(svg.encode()).decode("ascii")
    return f"![live and backtest equity](data:image/svg+xml;base64,{encoded})"


def _svg(equity: pd.DataFrame, points: int) -> str:
    # The backtest first, so the live curve is drawn over it where the two agree.
    values = equity[[BACKTEST, LIVE]].to_numpy(dtype=np.float64)
    low, high = np.nanmin(values), np.nanmax(values)
    scale = (high - low) or 1.0
    rows = np.unique(np.linspace(0, len(equity) - 1, min(points, len(equity))).round().astype(int))
    lines = []
    for column, name in enumerate((BACKTEST, LIVE)):
        coordinates = " ".join(
            f"{_x(i, len(equity))},{_y(values[i, column], low, scale)}"
            for i in rows
            if np.isfinite(values[i, column])
        )
        lines.append(
            f"<polyline fill='none' stroke='{_COLOURS[name]}' stroke-width='1.5' "
            f"points='{coordinates}'/>"
        )
    legend = (
        f"<text x='6' y='12' font-size='9' fill='{_COLOURS[LIVE]}'>live</text>"
        f"<text x='30' y='12' font-size='9' fill='{_COLOURS[BACKTEST]}'>backtest</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {_WIDTH} {_HEIGHT}' "
        f"width='{_WIDTH * 2}' height='{_HEIGHT * 2}'>{''.join(lines)}{legend}</svg>"
    )


def _x(i: int, n: int) -> int:
    return round(_PAD + (_WIDTH - 2 * _PAD) * i / max(n - 1, 1))


def _y(value: float, low: float, scale: float) -> int:
    return round(_HEIGHT - _PAD - (_HEIGHT - 2 * _PAD) * (value - low) / scale)
