"""The simulator's own controls under /_sim/ (not Alpaca; JSON in and out, no auth), so tests
and the soak can set the clock, faults, fills, splits, assets, account, credentials, the
market data plan, the rate limit, the market-buy collar and an order's status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from tecl_pipeline.simulator import wire
from tecl_pipeline.simulator.engine import BrokerSimulator
from tecl_pipeline.simulator.model import AccountKind, DataPlan, FillMode

C = TypeVar("C", bound=StrEnum)


class AdminError(ValueError):
    """An admin request that cannot be carried out; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _bool(payload: Mapping[str, Any], key: str) -> bool | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, bool):
        raise AdminError(400, f"{key} must be true or false, got {value!r}")
    return value


def _choice(payload: Mapping[str, Any], key: str, choices: type[C]) -> C:
    """`payload[key]` as one of `choices` by its value."""
    value = payload.get(key)
    if value not in tuple(choices):
        named = " or ".join(repr(choice.value) for choice in choices)
        raise AdminError(400, f"{key} must be {named}, got {value!r}")
    return choices(value)


def handle(
    simulator: BrokerSimulator, method: str, path: str, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """Carry out one admin request; the answer is JSON-ready."""
    match method, path.rstrip("/").split("/")[2:]:
        case "GET", ["state"]:
            return simulator.state()
        case "POST", ["reset"]:
            simulator.reset()
        case "POST", ["clock"]:
            text = payload.get("now")
            if not isinstance(text, str):
                raise AdminError(400, 'clock needs {"now": "<ISO 8601 time with offset>"}')
            try:
                simulator.set_clock(datetime.fromisoformat(text))
            except ValueError as exc:
                raise AdminError(400, f"bad now {text!r}: {exc}") from None
            return {"ok": True, "now": wire.exchange_time(simulator.now)}
        case "POST", ["faults"]:
            simulator.set_faults(payload.get("seed", 0), payload.get("rules", []))
        case "DELETE", ["faults"]:
            simulator.clear_faults()
        case "POST", ["fills"]:
            simulator.set_fill_mode(
                FillMode(payload.get("mode", "immediate")),
                steps=payload.get("steps"),
                delay_polls=payload.get("delay_polls"),
            )
        case "POST", ["orders", client_order_id, "status"]:
            status = payload.get("status")
            if not isinstance(status, str) or not status:
                raise AdminError(400, 'order status needs {"status": "<status>"}')
            return simulator.set_order_status(client_order_id, status)
        case "POST", ["split"]:
            symbol = payload.get("symbol")
            if not isinstance(symbol, str) or not symbol:
                raise AdminError(400, "split needs a symbol")
            simulator.split(symbol, str(payload.get("ratio")))
        case "POST", ["assets", symbol]:
            simulator.set_asset(
                symbol,
                tradable=_bool(payload, "tradable"),
                fractionable=_bool(payload, "fractionable"),
                halted=_bool(payload, "halted"),
                shortable=_bool(payload, "shortable"),
            )
        case "POST", ["account"]:
            cash, currency = payload.get("cash"), payload.get("currency")
            if currency is not None and not isinstance(currency, str):
                raise AdminError(400, f"currency must be a string, got {currency!r}")
            simulator.set_account(
                currency=currency,
                cash=None if cash is None else Decimal(str(cash)),
                trading_blocked=_bool(payload, "trading_blocked"),
                kind=None if payload.get("kind") is None else _choice(payload, "kind", AccountKind),
            )
        case "POST", ["rate-limit"]:
            if "per_minute" not in payload:
                raise AdminError(400, 'rate limit needs {"per_minute": <requests> or null}')
            simulator.set_rate_limit(payload["per_minute"])
        case "POST", ["collar"]:
            if "market_buy" not in payload:
                raise AdminError(400, 'collar needs {"market_buy": "<fraction, e.g. 0.025>"}')
            simulator.set_market_buy_collar(payload["market_buy"])
        case "POST", ["data-plan"]:
            simulator.set_data_plan(_choice(payload, "plan", DataPlan))
        case "POST", ["credentials"]:
            key, secret = payload.get("key"), payload.get("secret")
            if not isinstance(key, str) or not isinstance(secret, str):
                raise AdminError(400, 'credentials needs {"key": "...", "secret": "..."}')
            simulator.set_credentials(key, secret)
        case _:
            raise AdminError(404, f"no admin endpoint {method} {path}")
    return {"ok": True}
