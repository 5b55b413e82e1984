"""The simulator's own controls under /_sim/ (not Alpaca; JSON in and out, no auth), so tests
and the soak can set the clock, faults, fills, splits, assets, account, credentials and the
market data plan."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from tecl_pipeline.simulator import wire
from tecl_pipeline.simulator.engine import BrokerSimulator
from tecl_pipeline.simulator.model import AccountKind, DataPlan, FillMode


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
            cash, currency, kind = payload.get("cash"), payload.get("currency"), payload.get("kind")
            if currency is not None and not isinstance(currency, str):
                raise AdminError(400, f"currency must be a string, got {currency!r}")
            if kind is not None and kind not in tuple(AccountKind):
                choices = " or ".join(repr(k.value) for k in AccountKind)
                raise AdminError(400, f"account kind must be {choices}, got {kind!r}")
            simulator.set_account(
                currency=currency,
                cash=None if cash is None else Decimal(str(cash)),
                trading_blocked=_bool(payload, "trading_blocked"),
                kind=None if kind is None else AccountKind(kind),
            )
        case "POST", ["data-plan"]:
            plan = payload.get("plan")
            if plan not in tuple(DataPlan):
                choices = " or ".join(repr(p.value) for p in DataPlan)
                raise AdminError(400, f'data-plan needs {{"plan": {choices}}}, got {plan!r}')
            simulator.set_data_plan(DataPlan(plan))
        case "POST", ["credentials"]:
            key, secret = payload.get("key"), payload.get("secret")
            if not isinstance(key, str) or not isinstance(secret, str):
                raise AdminError(400, 'credentials needs {"key": "...", "secret": "..."}')
            simulator.set_credentials(key, secret)
        case _:
            raise AdminError(404, f"no admin endpoint {method} {path}")
    return {"ok": True}
