"""Alpaca's JSON on the wire: error bodies, number and time formats, the shapes of accounts,
assets, positions and orders, and the parsing of query parameters.

Money and quantities travel as strings ("qty": "10", "filled_avg_price": "12.34"), market
data prices as JSON numbers, order times in UTC with a "Z", the clock in New York time with
its offset: each as Alpaca sends it, so that alpaca-py's own models parse every answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.simulator.model import (
    ZERO,
    AccountKind,
    AccountState,
    AssetState,
    Holding,
    SimOrder,
    stable_id,
)

CENT = Decimal("0.01")
QTY_PLACES = 9
_AVG_QUANTUM = Decimal(1).scaleb(-QTY_PLACES)

# Alpaca's error codes (the first digits repeat the HTTP status).
BAD_REQUEST = 40010000
INVALID_PARAMETER = 40010001
UNAUTHORIZED = 40110000
FORBIDDEN = 40310000
NOT_FOUND = 40410000
UNPROCESSABLE = 42210000
RATE_LIMITED = 42910000
INTERNAL = 50010000
UNAVAILABLE = 50310000


class ApiError(Exception):
    """An answer other than success, as Alpaca gives it: HTTP status and `{code, message}`
    (some market data answers carry no code: `{message}` alone)."""

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        code = {} if self.code is None else {"code": self.code}
        return {**code, "message": self.message, **self.extra}


def invalid(message: str) -> ApiError:
    return ApiError(422, INVALID_PARAMETER, message)


# -- formats ----------------------------------------------------------------------------------


def num(value: Decimal) -> str:
    """A Decimal as Alpaca writes it: plain digits, no exponent, no trailing zeros ("10")."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def money(value: Decimal) -> str:
    return num(cents(value))


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def avg_price(value: Decimal) -> Decimal:
    return value.quantize(_AVG_QUANTUM, rounding=ROUND_HALF_EVEN)


def utc_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def exchange_time(moment: datetime) -> str:
    return moment.astimezone(EXCHANGE_TZ).isoformat()


def bar_time(session: date) -> str:
    """Daily bars are stamped at midnight New York time, written in UTC (04:00Z or 05:00Z)."""
    midnight = datetime.combine(session, time(0), tzinfo=EXCHANGE_TZ)
    return midnight.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- parsing ----------------------------------------------------------------------------------


def parse_time(text: str, what: str) -> datetime:
    """RFC 3339 or YYYY-MM-DD (midnight in New York). Naive times are UTC, as alpaca-py sends
    them for market data requests."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=EXCHANGE_TZ)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"invalid {what}: {text!r} is not an RFC 3339 time or a date") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise invalid(f"invalid {what}: {text!r} is not an integer") from None
    if not low <= value <= high:
        raise invalid(f"invalid {what}: {value} is outside {low}..{high}")
    return value


def _positive(value: object, name: str) -> Decimal:
    """A positive decimal from a JSON number or string; numbers were parsed as Decimal, so a
    float never rounds one on its way in (C3)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise invalid(f"invalid {name}: {value!r}")
    try:
        number = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise invalid(f"invalid {name}: {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise invalid(f"{name} must be > 0")
    return number


def _places(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def parse_qty(value: object) -> Decimal:
    """An order quantity, at most QTY_PLACES decimal places."""
    if value is None:
        raise invalid("qty is required")
    qty = _positive(value, "qty")
    if _places(qty) > QTY_PLACES:
        raise invalid(f"qty must have at most {QTY_PLACES} decimal places, got {num(qty)}")
    return qty


def parse_price(value: object) -> Decimal:
    """A limit price, at most two decimal places (Alpaca refuses sub-penny increments for
    prices of a dollar and more)."""
    price = _positive(value, "limit_price")
    if _places(price) > 2:
        raise invalid(
            f"sub-penny increment does not fulfill minimum pricing criteria: {num(price)}"
        )
    return price


def symbols_param(query: Mapping[str, str], *, required: bool = True) -> list[str]:
    raw = query.get("symbols", "")
    symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
    if required and not symbols:
        raise invalid("symbols is required")
    return list(dict.fromkeys(symbols))


# -- shapes -----------------------------------------------------------------------------------


def asset_json(asset: AssetState, exchange: str) -> dict[str, Any]:
    return {
        "id": stable_id("asset", asset.symbol),
        "class": "us_equity",
        "exchange": exchange,
        "symbol": asset.symbol,
        "name": f"{asset.symbol} (simulated)",
        "status": "active",
        "tradable": asset.tradable,
        "marginable": True,
        "maintenance_margin_requirement": 100,
        "margin_requirement_long": "100",
        "margin_requirement_short": "100",
        "shortable": asset.shortable,
        "easy_to_borrow": asset.shortable,
        "fractionable": asset.fractionable,
        "attributes": ["fractional_eh_enabled"] if asset.fractionable else [],
    }


def position_json(
    symbol: str,
    holding: Holding,
    *,
    exchange: str,
    price: Decimal,
    lastday_price: Decimal,
    qty_available: Decimal,
) -> dict[str, Any]:
    market_value = cents(holding.qty * price)
    cost_basis = cents(holding.qty * holding.avg_entry_price)
    lastday_value = cents(holding.qty * lastday_price)
    unrealized = market_value - cost_basis
    intraday = market_value - lastday_value
    return {
        "asset_id": stable_id("asset", symbol),
        "symbol": symbol,
        "exchange": exchange,
        "asset_class": "us_equity",
        "asset_marginable": True,
        "qty": num(holding.qty),
        "qty_available": num(qty_available),
        "avg_entry_price": num(holding.avg_entry_price),
        "side": "long" if holding.qty > 0 else "short",
        "market_value": money(market_value),
        "cost_basis": money(cost_basis),
        "unrealized_pl": money(unrealized),
        "unrealized_plpc": _ratio(unrealized, cost_basis),
        "unrealized_intraday_pl": money(intraday),
        "unrealized_intraday_plpc": _ratio(intraday, lastday_value),
        "current_price": num(price),
        "lastday_price": num(lastday_price),
        "change_today": _ratio(price - lastday_price, lastday_price),
    }


def _ratio(part: Decimal, whole: Decimal) -> str:
    if whole == 0:
        return "0"
    return num((part / whole).quantize(Decimal("0.0000000001"), rounding=ROUND_HALF_EVEN))


def account_json(
    account: AccountState,
    *,
    kind: AccountKind,
    buying_power: Decimal,
    regt_buying_power: Decimal,
    non_marginable_buying_power: Decimal,
    long_market_value: Decimal,
    short_market_value: Decimal,
    last_equity: Decimal,
    created_at: datetime,
    balance_asof: date,
) -> dict[str, Any]:
    equity = cents(account.cash + long_market_value + short_market_value)
    power = money(max(buying_power, ZERO))
    own_cash = money(max(non_marginable_buying_power, ZERO))
    day_trader = kind is AccountKind.PDT
    return {
        "id": stable_id("account", "sim"),
        "account_number": "PA0SIMULATOR",
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": account.currency,
        "buying_power": power,
        "regt_buying_power": money(max(regt_buying_power, ZERO)),
        "daytrading_buying_power": power if day_trader else "0",
        "effective_buying_power": power,
        "non_marginable_buying_power": own_cash,
        "options_buying_power": power,
        "bod_dtbp": "0",
        "cash": money(account.cash),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "portfolio_value": money(equity),
        "pattern_day_trader": day_trader,
        "trading_blocked": account.trading_blocked,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": utc_time(created_at),
        "trade_suspended_by_user": False,
        "multiplier": str(kind.multiplier),
        "shorting_enabled": kind.can_short,
        "equity": money(equity),
        "last_equity": money(last_equity),
        "long_market_value": money(long_market_value),
        "short_market_value": money(short_market_value),
        "position_market_value": money(long_market_value - short_market_value),
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "daytrade_count": 0,
        "balance_asof": balance_asof.isoformat(),
        "options_approved_level": 0,
        "options_trading_level": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }


def order_json(order: SimOrder, *, expires_at: datetime | None) -> dict[str, Any]:
    avg = None if order.filled_qty == 0 else num(avg_price(order.filled_value / order.filled_qty))
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "created_at": utc_time(order.created_at),
        "updated_at": utc_time(order.updated_at),
        "submitted_at": utc_time(order.created_at),
        "filled_at": utc_time(order.filled_at),
        "expired_at": utc_time(order.expired_at),
        "expires_at": utc_time(expires_at),
        "canceled_at": utc_time(order.canceled_at),
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": stable_id("asset", order.symbol),
        "symbol": order.symbol,
        "asset_class": "us_equity",
        "notional": None,
        "qty": num(order.qty),
        "filled_qty": num(order.filled_qty),
        "filled_avg_price": avg,
        # Alpaca sends "" for simple orders; alpaca-py maps it to "simple".
        "order_class": "",
        "order_type": "market" if order.limit_price is None else "limit",
        "type": "market" if order.limit_price is None else "limit",
        "side": order.side,
        "position_intent": "buy_to_open" if order.side == "buy" else "sell_to_close",
        "time_in_force": order.time_in_force,
        "limit_price": None if order.limit_price is None else num(order.limit_price),
        "stop_price": None,
        "status": order.status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
    }


# -- malformed answers (B3) ----------------------------------------------------------------------


def malform(body: Any) -> Any:
    """The same answer in a shape the documented schema does not allow: every key renamed to
    PascalCase ("client_order_id" -> "ClientOrderId", "bars" -> "Bars", "t" -> "T"), as a new
    API version might. Every required field goes missing, so no strict parser can misread it."""
    if body is None:
        return {"Result": "ok"}
    if isinstance(body, list):
        return [malform(item) for item in body]
    if isinstance(body, dict):
        return {_pascal(key): malform(value) for key, value in body.items()}
    return body


def _pascal(key: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in key.split("_"))
