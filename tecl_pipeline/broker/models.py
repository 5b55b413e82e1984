"""The broker's view of the world, validated (B3): account, positions, assets, orders.

Field names follow Alpaca's REST API so that the adapter maps one to one.
"""

from decimal import Decimal
from enum import StrEnum
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
    status: Literal["active", "inactive"] = "active"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
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
    reject_reason: str | None = None

    @property
    def filled_notional(self) -> Decimal:
        if self.filled_avg_price is None:
            return Decimal("0")
        return (self.filled_qty * self.filled_avg_price).quantize(Decimal("0.01"))


class BrokerError(Exception):
    """The broker refused or failed a request."""


class DuplicateClientOrderIdError(BrokerError):
    """An order with this client_order_id was already sent: the order exists, do not resend."""


class OrderRejectedError(BrokerError):
    """The broker rejected the order for a reason it named (buying power, not tradable, ...)."""


__all__ = [
    "Account",
    "Asset",
    "BrokerError",
    "DuplicateClientOrderIdError",
    "Order",
    "OrderRejectedError",
    "OrderRequest",
    "OrderSide",
    "OrderStatus",
    "Position",
]
