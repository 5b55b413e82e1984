"""What the account did, session by session, and how far it is from the backtest (pure).

Two views of the same journal:

- `account_figures`: money, exact (Decimal): equity, day P&L, P&L and return since the
  first recorded session, drawdown from the running peak. "Since the first session" means
  since the first record's equity, after that session's trades; deposits and withdrawals
  are not known to the journal and show as P&L.
- `compare_with_backtest`: summary figures (floats, like `core.backtest`): the live equity
  curve beside the backtest of the same sessions, from the same starting equity, on the same
  closes, the tracking difference, and the sessions where the two held different things,
  with the reason.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Final

import pandas as pd

from tecl_pipeline.core.backtest import Figures, figures, simulate, target_weights
from tecl_pipeline.core.portfolio import invested_share
from tecl_pipeline.core.universe import HOLDINGS

CENT: Final = Decimal("0.01")
_WEIGHT_PLACES: Final = Decimal("0.0001")
WEIGHT_TOLERANCE: Final = Decimal("0.01")
"""A held share of equity within one percentage point of its target is the target: whole
shares and the minimum trade leave that much on purpose."""
FILL_PRICE_TOLERANCE: Final = Decimal("0.01")
"""A fill more than 1% from the session's adjusted close is a reason of its own."""
LIVE: Final = "live"
BACKTEST: Final = "backtest"


@dataclass(frozen=True)
class AccountPoint:
    """One recorded session of the account, as the journal holds it."""

    session: date
    equity: Decimal
    cash: Decimal
    leaf: str
    positions: Mapping[str, Decimal]
    target_weights: Mapping[str, Decimal]
    fill_prices: Mapping[str, Decimal] = field(default_factory=dict)
    """Average fill price per symbol of the session's filled orders."""


@dataclass(frozen=True)
class Basis:
    """What a session's figures are measured from, carried from each session to the next
    (each journal record keeps it, so a run reads one record, not the whole journal)."""

    first_session: date
    first_equity: Decimal
    """The first recorded equity above zero: an unfunded account's zero is no base."""
    peak_equity: Decimal
    previous_session: date
    previous_equity: Decimal


@dataclass(frozen=True)
class SessionFigures:
    session: date
    equity: Decimal
    cash: Decimal
    day_pnl: Decimal
    """Equity change since the previous recorded session (0 on the first)."""
    total_pnl: Decimal
    total_return: Decimal
    drawdown: Decimal
    """equity / running peak - 1: 0 at a new high, -0.25 a quarter below it."""
    peak: Decimal
    previous_session: date | None
    first_session: date
    first_equity: Decimal

    @property
    def basis(self) -> Basis:
        """What the next session's figures are measured from."""
        return Basis(
            first_session=self.first_session,
            first_equity=self.first_equity,
            peak_equity=self.peak,
            previous_session=self.session,
            previous_equity=self.equity,
        )


def figures_after(basis: Basis | None, point: AccountPoint) -> SessionFigures:
    """The figures of `point`, the session after the one `basis` was carried from (None:
    the first recorded session)."""
    if basis is None or (basis.first_equity <= 0 < point.equity):
        # The first session, or the first funded one after an account recorded at zero.
        first_session, first_equity = point.session, point.equity
    else:
        first_session, first_equity = basis.first_session, basis.first_equity
    peak = max(basis.peak_equity, point.equity) if basis else point.equity
    return SessionFigures(
        session=point.session,
        equity=point.equity,
        cash=point.cash,
        day_pnl=point.equity - basis.previous_equity if basis else Decimal(0),
        total_pnl=point.equity - first_equity,
        total_return=_ratio(point.equity - first_equity, first_equity),
        drawdown=_ratio(point.equity - peak, peak),
        peak=peak,
        previous_session=basis.previous_session if basis else None,
        first_session=first_session,
        first_equity=first_equity,
    )


def account_figures(points: Sequence[AccountPoint]) -> list[SessionFigures]:
    """The figures of every point, in session order."""
    result: list[SessionFigures] = []
    for point in sorted(points, key=lambda p: p.session):
        result.append(figures_after(result[-1].basis if result else None, point))
    return result


@dataclass(frozen=True)
class PositionFigures:
    symbol: str
    qty: Decimal
    price: Decimal | None
    value: Decimal | None
    weight: Decimal | None
    target_weight: Decimal


def position_figures(
    positions: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    equity: Decimal,
    target_weights: Mapping[str, Decimal],
) -> list[PositionFigures]:
    """Every held or targeted symbol: value at `prices`, weight of `equity`, target weight.
    A symbol without a price has no value: shown as unknown, never as zero."""
    symbols = [s for s in HOLDINGS if s in positions or target_weights.get(s, 0)]
    symbols += sorted(s for s in positions if s not in HOLDINGS)
    rows = []
    for symbol in symbols:
        qty = positions.get(symbol, Decimal(0))
        price = prices.get(symbol)
        value = (qty * price).quantize(CENT) if price is not None else None
        rows.append(
            PositionFigures(
                symbol=symbol,
                qty=qty,
                price=price,
                value=value,
                weight=_ratio(value, equity) if value is not None else None,
                target_weight=target_weights.get(symbol, Decimal(0)),
            )
        )
    return rows


def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    """part / whole to four places; 0 where there is no positive whole to measure from."""
    return (part / whole).quantize(_WEIGHT_PLACES) if whole > 0 else Decimal(0)


@dataclass(frozen=True)
class Divergence:
    """A session where live and the backtest held different things, and why."""

    session: date
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class LiveComparison:
    equity: pd.DataFrame
    """LIVE and BACKTEST equity in money on every session of the span (live: NaN where no
    record), both from the first record's equity."""
    tracking: pd.DataFrame
    """Per recorded session: "cumulative" (live's return since the start minus the
    backtest's) and "session" (live's return since its previous record minus the backtest's
    over the same sessions)."""
    allocation: pd.DataFrame
    """Live weights held per symbol on each recorded session, at the session's closes."""
    figures: dict[str, Figures]
    divergences: tuple[Divergence, ...]


def compare_with_backtest(
    points: Sequence[AccountPoint],
    signals: pd.DataFrame,
    closes: pd.DataFrame,
    *,
    cash_reserve: Decimal = Decimal(0),
    weight_tolerance: Decimal = WEIGHT_TOLERANCE,
    fill_price_tolerance: Decimal = FILL_PRICE_TOLERANCE,
) -> LiveComparison:
    """The journal's points beside the backtest of `signals` (signal_history's shape) over
    the sessions from the first funded point (equity above zero) to the last, on `closes`.
    `cash_reserve`: the share of equity trading keeps in cash, so a held position is
    judged against its weight less the reserve.

    Needs two recorded sessions at least (one holding period), and a signal for every
    session of the span (the caller computes them from the same closes).
    """
    ordered = sorted(points, key=lambda p: p.session)
    # An account recorded at zero (not funded yet) has no return to compare.
    funded = next((i for i, p in enumerate(ordered) if p.equity > 0), len(ordered))
    ordered = ordered[funded:]
    if len(ordered) < 2:
        raise ValueError("a comparison needs two recorded sessions with equity at least")
    first, last = pd.Timestamp(ordered[0].session), pd.Timestamp(ordered[-1].session)
    span = signals.sort_index().loc[first:last]
    recorded = pd.DatetimeIndex([pd.Timestamp(p.session) for p in ordered])
    absent = recorded.difference(pd.DatetimeIndex(span.index))
    if len(absent):
        raise ValueError(f"no signal for recorded session(s) {_days(absent)}")

    start_equity = float(ordered[0].equity)
    bt_equity, bt_returns, bt_turnover = simulate(target_weights(span), closes)
    backtest_money = bt_equity * start_equity
    live_money = pd.Series([float(p.equity) for p in ordered], index=recorded)
    equity = pd.DataFrame({LIVE: live_money.reindex(span.index), BACKTEST: backtest_money})

    # Differences of returns from the same start, in points: live +10% against +20% is -10.
    cumulative = (live_money - backtest_money.loc[recorded]) / start_equity
    live_step = live_money.pct_change()
    backtest_step = backtest_money.loc[recorded].pct_change()
    tracking = pd.DataFrame(
        {"cumulative": cumulative, "session": (live_step - backtest_step).fillna(0.0)}
    )

    allocation = pd.DataFrame(
        [_held_weights(p, closes) for p in ordered], index=recorded, columns=list(HOLDINGS)
    ).fillna(0.0)

    live_returns = live_money.pct_change().shift(-1)
    live_turnover = pd.Series(0.0, index=recorded)  # what the broker traded is in the orders
    by_day = {pd.Timestamp(p.session): p for p in ordered}
    divergences = tuple(
        Divergence(day.date(), reasons)
        for day in span.index
        if (
            reasons := _reasons(
                by_day.get(day),
                span.loc[day],
                closes,
                cash_reserve,
                weight_tolerance,
                fill_price_tolerance,
            )
        )
    )
    return LiveComparison(
        equity=equity,
        tracking=tracking,
        allocation=allocation,
        figures={
            LIVE: _live_figures(live_money, live_returns, live_turnover),
            BACKTEST: figures(backtest_money, bt_returns, bt_turnover),
        },
        divergences=divergences,
    )


def _live_figures(equity: pd.Series, returns: pd.Series, turnover: pd.Series) -> Figures:
    # The account's turnover is not something the journal records: unknown, not zero.
    return replace(figures(equity, returns, turnover), annual_turnover=math.nan)


def _held_weights(point: AccountPoint, closes: pd.DataFrame) -> dict[str, float]:
    """Weights held at the session's closes (cash is the rest)."""
    if not point.equity:
        return {}
    row = _closes_of(closes, point.session)
    return {
        symbol: float(qty) * row[symbol] / float(point.equity)
        for symbol, qty in point.positions.items()
        if symbol in row and math.isfinite(row[symbol])
    }


def _closes_of(closes: pd.DataFrame, session: date) -> dict[str, float]:
    row = closes.loc[pd.Timestamp(session)].astype(float)
    return {str(symbol): float(value) for symbol, value in row.to_dict().items()}


def _reasons(
    point: AccountPoint | None,
    signal: pd.Series,
    closes: pd.DataFrame,
    cash_reserve: Decimal,
    weight_tolerance: Decimal,
    fill_price_tolerance: Decimal,
) -> tuple[str, ...]:
    if point is None:
        return (
            "no record: the run refused or did not run, so the account kept the previous "
            "session's holdings",
        )
    reasons: list[str] = []
    leaf = str(signal["leaf"])
    if point.leaf != leaf:
        reasons.append(
            f"a different decision: live {point.leaf}, backtest {leaf} (the data the run saw "
            "differ from today's closes)"
        )
    held = _held_weights(point, closes)
    tolerance = float(weight_tolerance)
    wanted = {s: float(invested_share(Decimal(signal[s]), cash_reserve)) for s in HOLDINGS}
    off = [
        f"{symbol} held {held.get(symbol, 0.0):.1%}, target {wanted[symbol]:.1%}"
        for symbol in HOLDINGS
        if abs(held.get(symbol, 0.0) - wanted[symbol]) > tolerance
    ]
    if off:
        reasons.append("a residual: " + "; ".join(off))
    row = _closes_of(closes, point.session)
    for symbol, price in sorted(point.fill_prices.items()):
        close = Decimal(str(row[symbol])) if symbol in row else None
        if close and abs(price / close - 1) > fill_price_tolerance:
            reasons.append(
                f"a fill price: {symbol} filled at {price}, adjusted close "
                f"{close.quantize(CENT)} ({price / close - 1:+.2%})"
            )
    return tuple(reasons)


def _days(days: pd.DatetimeIndex) -> str:
    return ", ".join(str(d.date()) for d in days)
