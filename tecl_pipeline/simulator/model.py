"""The simulator's book: orders, holdings, assets and the account, as plain mutable records.

Only `BrokerSimulator` touches them, always under its lock; `wire` renders them as Alpaca JSON.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

# Ids are derived from this namespace and a sequence number, so that two runs of the same
# scenario produce the same order ids (R2) while still being valid UUIDs for alpaca-py.
ID_NAMESPACE = uuid.UUID("5f1d7b0e-4a51-4c55-9d1e-7c1a2b3c4d5e")

ZERO = Decimal("0")

# Alpaca's order statuses as they appear on the wire.
ACCEPTED = "accepted"
NEW = "new"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELED = "canceled"
PENDING_CANCEL = "pending_cancel"
EXPIRED = "expired"
REJECTED = "rejected"
REPLACED = "replaced"

# How an order status reads on the wire: a word or two in lowercase, joined by "_". A market
# event may set any such status, one Alpaca does not document included (`Book.set_status`).
STATUS_FORM = re.compile(r"^[a-z]+(?:_[a-z]+)*$")

# After these an order never changes again; before them it may still be cancelled or expire
# (an order a market event put in another status, `held` or `done_for_day` say, included).
FINAL_STATUSES = frozenset({FILLED, CANCELED, EXPIRED, REJECTED, REPLACED})
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")


# Alpaca checks a market buy against buying power at 2.5% to 4% above the price (its
# collar); the simulator takes the strict end unless told (`market_buy_collar`). A limit
# buy is checked at its limit.
MARKET_BUY_COLLAR = Decimal("0.04")
MAX_MARKET_BUY_COLLAR = Decimal("0.2")


def market_buy_collar(value: object) -> Decimal:
    """A market-buy collar as a fraction of the price: from 0 to 0.2 (20%)."""
    try:
        collar = Decimal(str(value)) if isinstance(value, str | int | float | Decimal) else None
    except ArithmeticError:
        collar = None
    if collar is not None and not collar.is_finite():
        collar = None
    if isinstance(value, bool) or collar is None or not 0 <= collar <= MAX_MARKET_BUY_COLLAR:
        raise ValueError(
            f"the market-buy collar must be a fraction from 0 to {MAX_MARKET_BUY_COLLAR}, "
            f"got {value!r}"
        )
    return collar


# An opening short sale is checked at 3% above the price (Alpaca: above the ask).
SHORT_SALE_COLLAR = Decimal("0.03")


def stable_id(kind: str, key: str | int) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{kind}/{key}"))


class FillMode(StrEnum):
    """How orders fill. ASYNC is Alpaca's way, and the default: the POST answers `accepted`
    with nothing filled, the order turns `new` when it is next read, then fills over the
    following reads after a delay and sometimes in parts (both drawn per order, seeded by
    its client order id), and a cancel passes through `pending_cancel`. IMMEDIATE fills in
    the POST and cancels at once: the kind behaviour, for the soak and the replay. PARTIAL,
    DELAYED and NEVER are what a test asks for."""

    ASYNC = "async"
    IMMEDIATE = "immediate"
    PARTIAL = "partial"
    DELAYED = "delayed"
    NEVER = "never"


class AccountKind(StrEnum):
    """How the account may buy. A margin account (Alpaca's paper accounts, and the default
    here) has twice its excess equity as buying power (Reg T): a buy beyond the cash borrows,
    and cash goes negative. A pattern day trader's account (PDT: $25,000 or more, flagged)
    has four times its equity to buy with during the day. A cash account buys with its cash
    alone. Margin accounts may sell short; a cash account may not."""

    CASH = "cash"
    MARGIN = "margin"
    PDT = "pdt"

    @property
    def multiplier(self) -> int:
        return _MULTIPLIERS[self]

    @property
    def can_short(self) -> bool:
        return self is not AccountKind.CASH


_MULTIPLIERS = MappingProxyType({AccountKind.CASH: 1, AccountKind.MARGIN: 2, AccountKind.PDT: 4})


class DataPlan(StrEnum):
    """The account's market data subscription. On Basic (Alpaca's free plan, and the default
    here as there) SIP data from the last 15 minutes is refused; IEX and delayed SIP are not.
    Unlimited serves every feed."""

    BASIC = "basic"
    UNLIMITED = "unlimited"


@dataclass(frozen=True)
class FillPlan:
    """How orders submitted from now on fill; each order keeps the plan it was submitted under,
    so that changing the mode mid-test never rewrites orders already in flight."""

    mode: FillMode = FillMode.ASYNC
    # PARTIAL: the parts; ASYNC: at most this many parts.
    steps: int = 2
    # DELAYED: the reads before the fill; ASYNC: at most this many.
    delay_polls: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.delay_polls < 0:
            raise ValueError(f"delay_polls must be >= 0, got {self.delay_polls}")

    def to_json(self) -> dict[str, object]:
        return {"mode": self.mode.value, "steps": self.steps, "delay_polls": self.delay_polls}


@dataclass
class SimOrder:
    seq: int
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    time_in_force: str
    status: str
    plan: FillPlan
    # The session the order works in: today's if the market was open at submission, else the
    # next one (Alpaca queues orders sent while the market is closed).
    session: date
    created_at: datetime
    updated_at: datetime
    filled_qty: Decimal = ZERO
    # Exact sum of qty x price over the fills, for the average price.
    filled_value: Decimal = ZERO
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    reads: int = 0
    # A limit order's limit (None: a market order): a buy never fills above it, a sell never
    # below it.
    limit_price: Decimal | None = None
    # Reads that have seen it pending_cancel: Alpaca shows a cancel in progress before it
    # takes, so the first read after a DELETE still answers pending_cancel.
    cancel_reads: int = 0

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    def fills_at(self, price: Decimal) -> bool:
        """Whether the order may fill at `price`: any price at the market, its limit or better
        for a limit order."""
        if self.limit_price is None:
            return True
        return price <= self.limit_price if self.side == "buy" else price >= self.limit_price

    @property
    def expires_with_session(self) -> bool:
        return self.time_in_force != "gtc"


@dataclass
class Holding:
    qty: Decimal
    avg_entry_price: Decimal


@dataclass
class AssetState:
    symbol: str
    tradable: bool = True
    fractionable: bool = True
    halted: bool = False
    shortable: bool = True


@dataclass
class AccountState:
    cash: Decimal
    currency: str = "USD"
    trading_blocked: bool = False
