"""The session in a few lines for a phone: what was decided, what traded at what price,
where the account stands, and what a person must look at. `post_trade_positions` sends it
once per session, after the journal record, as an INFO alert of kind `daily_summary`
through every alert sink (log, file, webhook, apprise).

Pure: typed values in, a one-line title and a short detail out. Money is `Decimal`
throughout, shown with the UI's own formatting (`presentation.money`, `share_price`).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from tecl_pipeline.core.errors import UnknownSessionError
from tecl_pipeline.core.performance import SessionFigures
from tecl_pipeline.core.strategy import Decision
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.presentation import (
    money,
    percent,
    qty,
    share_price,
    signed_money,
    signed_percent,
)
from tecl_pipeline.trading.execution import ExecutionReport
from tecl_pipeline.trading.models import Order
from tecl_pipeline.trading.reconcile import Residual, Residuals

if TYPE_CHECKING:
    # Only for the annotation: assets.py imports this module.
    from tecl_pipeline.defs.assets import TargetAllocation

DAILY_SUMMARY: Final = "daily_summary"
"""The alert kind, for filters and dashboards."""
MAX_ITEMS: Final = 6
"""A phone shows a few lines: a longer list stops here and says how many more there are."""
MAX_ITEM_CHARS: Final = 160
"""A broker's reason for a skip or a rejection can be a paragraph; one line is enough here."""
ALL_CLEAR: Final = "to look at: nothing"


@dataclass(frozen=True)
class DailySummary:
    title: str
    """One line: the session, its leaf, the equity and the day's P&L, and whether anything
    needs a look."""
    detail: str
    """A few lines: the target weights, the orders with their fills, the account's figures
    and the list of things to look at."""


def daily_summary(
    decision: Decision,
    report: ExecutionReport,
    target: "TargetAllocation",
    residuals: Residuals,
    figures: SessionFigures | None,
    *,
    orders: Sequence[Order] | None = None,
) -> DailySummary:
    """The summary of a session that reached its positions. `orders`: the session's orders
    as the broker reports them after trading (`report.session_orders` when not given);
    `residuals`: the reconciliation's, whose `open` ones count; `figures`: None when they
    could not be worked out (the step logs why).

    Never raises: the session is journaled by the time this runs, and a courtesy message
    must not turn a recorded session into a failed step.
    """
    try:
        return _summary(
            decision,
            report,
            target,
            residuals,
            figures,
            tuple(report.session_orders if orders is None else orders),
        )
    except Exception as exc:
        # Read defensively: whatever broke the summary may be this value too.
        session = getattr(target, "session", None)
        return DailySummary(
            title=f"session {session}: daily summary unavailable",
            detail=f"building it failed ({type(exc).__name__}); the run's metadata has the "
            "session's orders and figures",
        )


def _summary(
    decision: Decision,
    report: ExecutionReport,
    target: "TargetAllocation",
    residuals: Residuals,
    figures: SessionFigures | None,
    orders: tuple[Order, ...],
) -> DailySummary:
    look = to_look_at(report, target, residuals, orders)
    verdict = f"{len(look)} to look at" if look else "all clear"
    account = (
        f"equity {money(figures.equity)}, day {signed_money(figures.day_pnl)}{_since(figures)}"
        if figures
        else "account figures unavailable"
    )
    title = f"session {target.session}: leaf {decision.leaf}, {account}, {verdict}"
    lines = [
        f"leaf {decision.leaf}: {_weights(decision.allocation)}",
        f"orders: {_capped(order_text(o) for o in orders) or 'none'}",
        _account_line(figures),
    ]
    if look:
        lines += ["to look at:", *(f"- {item}" for item in _capped_items(look))]
    else:
        lines.append(ALL_CLEAR)
    return DailySummary(title=title, detail="\n".join(lines))


def to_look_at(
    report: ExecutionReport,
    target: "TargetAllocation",
    residuals: Residuals,
    orders: Iterable[Order],
) -> list[str]:
    """What a person must look at after the session, most actionable first: open
    residuals, orders that did not fill, skipped trades, positions that changed without an
    order, sessions the journal has no record of.

    A skipped trade counts when it left its symbol an open residual. One that did not was
    the minimum-trade rule at work (a drift of cents, skipped on purpose, B6), which never
    alerts: listed every day, it would teach a person to skip the list."""
    short = {r.symbol for r in residuals.open}
    items = [_residual_text(r) for r in residuals.open]
    items += [f"not filled: {order_text(o)}{_rejection(o)}" for o in orders if not _filled(o)]
    items += [
        f"skipped {symbol}: {_clip(reason)}" for symbol, reason in report.skipped if symbol in short
    ]
    items += [f"changed without an order: {change}" for change in target.unexplained_changes]
    if target.sessions_without_record:
        days = ", ".join(day.isoformat() for day in target.sessions_without_record)
        items.append(f"no journal record for {days}")
    return items


def order_text(order: Order) -> str:
    """One order: side, symbol, what filled at what average price ("buy TECL 12 @ $174.45");
    a part or no fill says of how much, and the order's status ("buy TECL 5 of 12 @ $174.45
    [canceled]", "sell BIL 0 of 10 [rejected]")."""
    side = f"{order.side.value} {order.symbol}"
    price = "" if order.filled_avg_price is None else f" @ {share_price(order.filled_avg_price)}"
    if _filled(order):
        return f"{side} {qty(order.filled_qty)}{price}"
    return f"{side} {qty(order.filled_qty)} of {qty(order.qty)}{price} [{order.status.value}]"


def _filled(order: Order) -> bool:
    return order.filled_qty >= order.qty


def _rejection(order: Order) -> str:
    return f" ({_clip(order.reject_reason)})" if order.reject_reason else ""


def _residual_text(residual: Residual) -> str:
    value = "" if residual.notional is None else f" ({money(residual.notional)} off)"
    return (
        f"residual {residual.symbol}: holds {qty(residual.held)}, "
        f"target {qty(residual.target)}{value}"
    )


def _weights(allocation: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{symbol} {percent(weight)}" for symbol, weight in allocation.items())


def _account_line(figures: SessionFigures | None) -> str:
    if figures is None:
        # None is any failure while working them out, an unreadable journal only one of
        # them: the step logs which, so this line points there instead of guessing.
        return "account figures unavailable (see the run's log)"
    day = signed_money(figures.day_pnl)
    day += " (first session)" if figures.previous_session is None else _since(figures)
    return (
        f"equity {money(figures.equity)}, day P&L {day}, total P&L "
        f"{signed_money(figures.total_pnl)} ({signed_percent(figures.total_return)}) "
        f"since {figures.first_session.isoformat()}"
    )


def _since(figures: SessionFigures) -> str:
    """The note " (since 2026-11-19)" when sessions of the exchange calendar without a record lie
    between the previous record and this one (refused, or not run): the "day" P&L is then
    the change since that record, not one day's, as `tecl status` notes under the same
    figure. Empty otherwise, and outside the calendar's range, where nothing is known of
    the sessions between: no note rather than a summary that fails."""
    previous = figures.previous_session
    if previous is None:
        return ""
    try:
        gap = CALENDAR.previous_session(figures.session) != previous
    except UnknownSessionError:
        return ""
    return f" (since {previous.isoformat()})" if gap else ""


def _clip(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= MAX_ITEM_CHARS:
        return one_line
    return one_line[: MAX_ITEM_CHARS - 3].rstrip() + "..."


def _capped_items(items: Sequence[str]) -> list[str]:
    if len(items) <= MAX_ITEMS:
        return list(items)
    return [*items[: MAX_ITEMS - 1], f"and {len(items) - MAX_ITEMS + 1} more (see the run)"]


def _capped(texts: Iterable[str]) -> str:
    return "; ".join(_capped_items(list(texts)))
