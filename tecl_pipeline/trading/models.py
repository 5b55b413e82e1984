"""The broker's view of the world, validated (B3): account, positions, assets, orders.

Values only; what can go wrong talking to a broker is in `trading.errors`. Field names
follow Alpaca's REST API so that the adapter maps one to one.
"""

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Account(_Model):
    account_number: str
    currency: str
    cash: Decimal
    equity: Decimal
    # On a margin account (Alpaca's paper accounts are) a multiple of the equity: it borrows.
    buying_power: Decimal
    # The account's own cash less what open buys hold of it; None if the broker omits it.
    non_marginable_buying_power: Decimal | None = None
    # 1 a cash account, 2 margin, 4 a pattern day trader's; None if the broker omits it.
    multiplier: Decimal | None = None
    trading_blocked: bool = False

    @property
    def cash_to_buy_with(self) -> Decimal:
        """What buys may spend without borrowing, on any kind of account: the cash, less what
        open buys hold, never above the buying power, and nothing once cash is negative."""
        limits = [self.cash, self.buying_power]
        if self.non_marginable_buying_power is not None:
            limits.append(self.non_marginable_buying_power)
        return max(min(limits), Decimal(0))


class Clock(_Model):
    """The broker's clock: the one authority on whether the market is open now (T2, T3)."""

    timestamp: AwareDatetime
    is_open: bool
    next_open: AwareDatetime
    next_close: AwareDatetime


class Trade(_Model):
    """A symbol's latest trade in the broker's market data: what the decision price is
    checked against (its price, T4) and how old it is (its time, by the broker's clock)."""

    price: Decimal = Field(gt=0)
    at: AwareDatetime
    feed: str
    """The market data feed it was read from (iex, sip, delayed_sip), as shown to a person."""

    def age(self, now: datetime) -> timedelta:
        """How long before `now` (the broker's clock) it traded."""
        return now - self.at


class Position(_Model):
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    current_price: Decimal

    @property
    def market_value(self) -> Decimal:
        return (self.qty * self.current_price).quantize(Decimal("0.01"))


class Asset(_Model):
    symbol: str
    tradable: bool
    fractionable: bool
    shortable: bool = False
    status: Literal["active", "inactive"] = "active"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    """Every order status Alpaca documents. What matters to a run is whether an order may
    still fill in its session (`is_final` says it may not, so nothing waits for it), and
    `rank`, which orders them along an order's life so that updates arriving out of order
    never move an order backwards (B5)."""

    # Working: received, and may still fill.
    PENDING_NEW = "pending_new"
    ACCEPTED = "accepted"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    PENDING_REVIEW = "pending_review"
    NEW = "new"
    HELD = "held"  # waiting for a trigger (another leg of its order class)
    SUSPENDED = "suspended"  # not eligible for trading for now (rare)
    STOPPED = "stopped"  # a trade is guaranteed, but has not happened yet
    PARTIALLY_FILLED = "partially_filled"
    PENDING_REPLACE = "pending_replace"
    PENDING_CANCEL = "pending_cancel"
    # Done for the session: no more fills today, a final status may still follow.
    DONE_FOR_DAY = "done_for_day"
    CALCULATED = "calculated"  # done for the day, settlement figures pending
    # Final.
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    # Final for this order; another order took its place. This pipeline never replaces an
    # order, so one of its own in this state was changed by someone else (`execute` stops).
    REPLACED = "replaced"

    @property
    def is_final(self) -> bool:
        """Whether the order can no longer fill in its session."""
        return self.rank >= _DONE_RANK

    @property
    def rank(self) -> int:
        return _RANK[self]


_DONE_RANK = 5
_RANK = MappingProxyType(
    {
        OrderStatus.PENDING_NEW: 0,
        OrderStatus.ACCEPTED: 1,
        OrderStatus.ACCEPTED_FOR_BIDDING: 1,
        OrderStatus.PENDING_REVIEW: 1,
        # A held or suspended order may go back to new: same rank, the fills decide.
        OrderStatus.NEW: 2,
        OrderStatus.HELD: 2,
        OrderStatus.SUSPENDED: 2,
        OrderStatus.STOPPED: 2,
        OrderStatus.PARTIALLY_FILLED: 3,
        OrderStatus.PENDING_REPLACE: 4,
        OrderStatus.PENDING_CANCEL: 4,
        OrderStatus.DONE_FOR_DAY: _DONE_RANK,
        OrderStatus.CALCULATED: _DONE_RANK,
        OrderStatus.FILLED: 6,
        OrderStatus.CANCELED: 6,
        OrderStatus.EXPIRED: 6,
        OrderStatus.REJECTED: 6,
        OrderStatus.REPLACED: 6,
    }
)


class OrderRequest(_Model):
    """A DAY order: at the market, or (`limit_price`) a limit order, which the broker checks
    against buying power at its limit and never fills at a worse price."""

    symbol: str
    side: OrderSide
    qty: Decimal = Field(gt=0)
    client_order_id: str = Field(min_length=1, max_length=128)
    limit_price: Decimal | None = Field(default=None, gt=0)
    time_in_force: Literal["day"] = "day"

    @property
    def type(self) -> Literal["market", "limit"]:
        return "market" if self.limit_price is None else "limit"


class Order(_Model):
    id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    status: OrderStatus
    submitted_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    limit_price: Decimal | None = None
    reject_reason: str | None = None

    def newer_than(self, other: "Order") -> bool:
        """Whether this view of the same order is later in its life than `other` (B5).

        Fills only grow and statuses only advance; a stale update loses on either count.
        """
        return (self.status.rank, self.filled_qty) > (other.status.rank, other.filled_qty)

    @property
    def summary(self) -> str:
        """The order in one line for alerts and messages."""
        return (
            f"{self.side.value} {self.symbol} filled {self.filled_qty} of {self.qty} "
            f"[{self.status.value}] {self.client_order_id}"
        )

    @property
    def filled_notional(self) -> Decimal:
        if self.filled_avg_price is None:
            return Decimal("0")
        return (self.filled_qty * self.filled_avg_price).quantize(Decimal("0.01"))


__all__ = (
    "Account",
    "Asset",
    "Clock",
    "Order",
    "OrderRequest",
    "OrderSide",
    "OrderStatus",
    "Position",
)
