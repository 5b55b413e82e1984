"""Alpaca's wire format and the neutral `trading.models` values, both ways (B3, X4, C3).

alpaca-py's typed models are bypassed (raw_data=True): the project's own models, with
`extra="forbid"`, are the schema, and the fields they need are picked out explicitly. A
missing field, a wrong type or an error body under a success status is a
`MalformedResponseError` naming the endpoint, never a value. Quantities and prices stay
decimal strings on the way out and `Decimal` on the way in, never binary floats.
"""

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError

from tecl_pipeline.adapters.alpaca.errors import clip_message
from tecl_pipeline.trading.errors import MalformedResponseError, OrderStateError
from tecl_pipeline.trading.models import (
    Account,
    Asset,
    Clock,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
)

M = TypeVar("M", bound=BaseModel)

_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,31}$")
_AWARE_DATETIME = TypeAdapter(AwareDatetime)


def expect_object(body: object, endpoint: str) -> dict[str, Any]:
    """A JSON object that is not an error body under a 2xx status (X4)."""
    if isinstance(body, dict):
        if "message" in body and ("code" in body or len(body) <= 2):
            raise MalformedResponseError(
                f"{endpoint}: the broker answered with success status but an error body: "
                f"{clip_message(str(body.get('message')))}"
                + (f" (code {body.get('code')})" if "code" in body else "")
            )
        return body
    raise MalformedResponseError(f"{endpoint}: expected a JSON object, got {type(body).__name__}")


def expect_list(body: object, endpoint: str) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        expect_object(body, endpoint)  # raises on an error body with its message
    raise MalformedResponseError(f"{endpoint}: expected a JSON array, got {type(body).__name__}")


def pick(
    body: Mapping[str, Any],
    endpoint: str,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> dict[str, Any]:
    """The named fields of a response; a missing required one is a schema change (B3)."""
    missing = [name for name in required if name not in body]
    if missing:
        raise MalformedResponseError(f"{endpoint}: response lacks field(s) {', '.join(missing)}")
    picked = {name: body[name] for name in required}
    picked.update({name: body[name] for name in optional if name in body})
    return picked


def validate(model: type[M], fields: Mapping[str, Any], endpoint: str) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise MalformedResponseError(
            f"{endpoint}: response does not validate as {model.__name__}: {problems}"
        ) from exc


def _flag(body: Mapping[str, Any], name: str, endpoint: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MalformedResponseError(f"{endpoint}: field {name} is not a boolean")
    return value


def account_from_alpaca(body: object, endpoint: str) -> Account:
    data = expect_object(body, endpoint)
    fields = pick(
        data,
        endpoint,
        ("account_number", "currency", "cash", "equity", "buying_power"),
        ("non_marginable_buying_power", "multiplier"),
    )
    # Alpaca spreads "cannot trade" over several flags and a status; any of them blocks.
    blocked = any(
        _flag(data, name, endpoint)
        for name in ("trading_blocked", "account_blocked", "trade_suspended_by_user")
    )
    status = data.get("status")
    if status is not None and str(status).upper() != "ACTIVE":
        blocked = True
    return validate(Account, {**fields, "trading_blocked": blocked}, endpoint)


def _picked_model(
    model: type[M],
    body: object,
    endpoint: str,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> M:
    """A response object's named fields, validated as `model` (all checks above apply)."""
    data = expect_object(body, endpoint)
    return validate(model, pick(data, endpoint, required, optional), endpoint)


def clock_from_alpaca(body: object, endpoint: str) -> Clock:
    return _picked_model(Clock, body, endpoint, ("timestamp", "is_open", "next_open", "next_close"))


def asset_from_alpaca(body: object, endpoint: str) -> Asset:
    return _picked_model(
        Asset, body, endpoint, ("symbol", "tradable", "fractionable", "status"), ("shortable",)
    )


def position_from_alpaca(body: object, endpoint: str) -> Position:
    return _picked_model(
        Position, body, endpoint, ("symbol", "qty", "avg_entry_price", "current_price")
    )


def order_from_alpaca(body: object, endpoint: str) -> Order:
    data = expect_object(body, endpoint)
    fields = pick(
        data,
        endpoint,
        ("id", "client_order_id", "symbol", "side", "qty", "filled_qty", "status", "submitted_at"),
        ("filled_avg_price", "updated_at", "limit_price"),
    )
    fields.setdefault("filled_avg_price", None)
    status = fields["status"]
    if isinstance(status, str) and status not in _STATUSES:
        raise OrderStateError(
            f"{endpoint}: order {clip_message(str(fields['client_order_id']))} is in status "
            f"{clip_message(status)!r}, which is not one of Alpaca's documented order statuses; "
            "stopping: no further order this session. Look at the order at the broker before "
            "the next run"
        )
    return validate(Order, fields, endpoint)


_STATUSES = frozenset(status.value for status in OrderStatus)


def check_symbol(symbol: str) -> str:
    # The symbol goes into a URL path: refuse anything that could change the path.
    if not _SYMBOL.match(symbol):
        raise ValueError(f"not a valid symbol: {symbol!r}")
    return symbol


def order_request_to_alpaca(request: OrderRequest) -> dict[str, str]:
    """The body of POST /v2/orders for `request`."""
    body = {
        "symbol": request.symbol,
        # Decimal strings, as Alpaca documents for qty and prices: never binary floats (C3).
        "qty": str(request.qty),
        "side": request.side.value,
        "type": request.type,
        "time_in_force": request.time_in_force,
        "client_order_id": request.client_order_id,
    }
    if request.limit_price is not None:
        body["limit_price"] = str(request.limit_price)
    return body


def timestamp_from_alpaca(value: object, what: str, endpoint: str) -> datetime:
    """An RFC 3339 timestamp with its offset; `what` names the field in the error."""
    try:
        return _AWARE_DATETIME.validate_python(value)
    except ValidationError as exc:
        raise MalformedResponseError(f"{endpoint}: {what} {value!r} is not a timestamp") from exc
