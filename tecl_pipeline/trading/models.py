"""The broker's view of the world, validated (B3): account, positions, assets, orders.

Field names follow Alpaca's REST API so that the adapter maps one to one.
"""

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
    buying_power: Decimal
    trading_blocked: bool = False


class Clock(_Model):
    """The broker's clock: the one authority on whether the market is open now (T2, T3)."""

    timestamp: AwareDatetime
    is_open: bool
    next_open: AwareDatetime
    next_close: AwareDatetime


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
    """Alpaca's order statuses. `rank` orders them along an order's life, so that updates
    arriving out of order never move an order backwards (B5)."""

    PENDING_NEW = "pending_new"
    ACCEPTED = "accepted"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    DONE_FOR_DAY = "done_for_day"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATUSES

    @property
    def rank(self) -> int:
        return _RANK[self]


_FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)
_RANK = MappingProxyType(
    {
        OrderStatus.PENDING_NEW: 0,
        OrderStatus.ACCEPTED: 1,
        OrderStatus.NEW: 2,
        OrderStatus.PARTIALLY_FILLED: 3,
        OrderStatus.PENDING_CANCEL: 4,
        OrderStatus.DONE_FOR_DAY: 5,
        OrderStatus.FILLED: 6,
        OrderStatus.CANCELED: 6,
        OrderStatus.EXPIRED: 6,
        OrderStatus.REJECTED: 6,
    }
)


class OrderRequest(_Model):
    symbol: str
    side: OrderSide
    qty: Decimal = Field(gt=0)
    client_order_id: str = Field(min_length=1, max_length=128)
    type: Literal["market"] = "market"
    time_in_force: Literal["day"] = "day"


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


class BrokerError(Exception):
    """The broker refused or failed a request."""


class RetryableBrokerError(BrokerError):
    """Worth trying again later: rate limits, 5xx, maintenance, timeouts on reads."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RetryableBrokerError):
    """HTTP 429; `retry_after` from the Retry-After header when the broker sent one (B1)."""


class BrokerUnavailableError(RetryableBrokerError):
    """5xx, maintenance, connection refused or a read timeout (B2, B8)."""


class OutcomeUnknownError(BrokerError):
    """A write (order submit or cancel) whose answer never arrived: it may or may not have
    happened. Never retried blindly; the order is looked up by client order id first (B5)."""


class AuthError(BrokerError):
    """401/403: the credentials were refused (B4, X6)."""


class NotFoundError(BrokerError):
    """404: no such order, asset or position."""


class MalformedResponseError(BrokerError):
    """The broker answered, but not with the shape it documents (B3), or with an error body
    under a success status (X4). Never read as success."""


class MalformedReadError(MalformedResponseError, RetryableBrokerError):
    """A read whose answer could not be used. Reading changes nothing at the broker, so it
    is asked again under the retry policy like any other failed call (a garbled answer while
    an order is being followed must not abandon it); when the policy gives up, it is still
    the loud `MalformedResponseError` (B3)."""


class DuplicateClientOrderIdError(BrokerError):
    """An order with this client_order_id was already sent: the order exists, do not resend."""


class OrderRejectedError(BrokerError):
    """The broker rejected the order for a reason it named (buying power, not tradable, ...)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


__all__ = (
    "Account",
    "Asset",
    "AuthError",
    "BrokerError",
    "BrokerUnavailableError",
    "Clock",
    "DuplicateClientOrderIdError",
    "MalformedReadError",
    "MalformedResponseError",
    "NotFoundError",
    "Order",
    "OrderRejectedError",
    "OrderRequest",
    "OrderSide",
    "OrderStatus",
    "OutcomeUnknownError",
    "Position",
    "RateLimitedError",
    "RetryableBrokerError",
)
