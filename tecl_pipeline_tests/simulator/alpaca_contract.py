"""Alpaca's REST contract, kept here from its reference documentation, and a checker that
holds every exchange with the simulator to it: the fields each answer must carry and their
types (money and quantities as decimal strings, times as RFC 3339 with an offset), the enums
(order statuses, sides, types, time in force), and alpaca-py's own models parsing each body.
Requests are checked too: a request the simulator accepts must carry only the parameters the
real API accepts, with values it accepts, so neither the pipeline nor the simulator can drift
into a dialect real Alpaca would refuse.

The `simulator` fixture checks every exchange of every test that uses it; a violation fails
the test at teardown, naming the endpoint and the field.
"""

import re
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from alpaca.data.models import BarSet, Trade
from alpaca.trading.enums import AccountStatus, AssetClass, AssetExchange, AssetStatus
from alpaca.trading.models import Asset, Calendar, Clock, Order, Position, TradeAccount
from pydantic import BaseModel, ValidationError

from tecl_pipeline.simulator.server import Exchange

Check = Callable[[object], str | None]
"""None when the value is right, else what is wrong with it."""

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HHMM = re.compile(r"^\d{2}:\d{2}$")


def _decimal_string(value: object) -> str | None:
    if not isinstance(value, str):
        return f"{value!r} is not a decimal string"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return f"{value!r} is not a decimal string"
    return None if number.is_finite() else f"{value!r} is not finite"


def _string(value: object) -> str | None:
    return None if isinstance(value, str) else f"{value!r} is not a string"


def _boolean(value: object) -> str | None:
    return None if isinstance(value, bool) else f"{value!r} is not true or false"


def _integer(value: object) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return None if ok else f"{value!r} is not an integer"


def _number(value: object) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return None if ok else f"{value!r} is not a number"


def _pattern(regex: re.Pattern[str], what: str) -> Check:
    def check(value: object) -> str | None:
        ok = isinstance(value, str) and regex.match(value) is not None
        return None if ok else f"{value!r} is not {what}"

    return check


def _one_of(*values: str) -> Check:
    def check(value: object) -> str | None:
        return None if value in values else f"{value!r} is not one of {', '.join(values)}"

    return check


def _nullable(check: Check) -> Check:
    def nullable(value: object) -> str | None:
        return None if value is None else check(value)

    return nullable


def _list_of(check: Check) -> Check:
    def each(value: object) -> str | None:
        if not isinstance(value, list):
            return f"{value!r} is not a list"
        problems = [p for p in (check(item) for item in value) if p]
        return problems[0] if problems else None

    return each


NUM = _decimal_string
STR = _string
BOOL = _boolean
INT = _integer
NUMBER = _number
TIME = _pattern(_TIME, "an RFC 3339 time with its offset")
DATE = _pattern(_DATE, "a date YYYY-MM-DD")
HHMM = _pattern(_HHMM, "a time HH:MM")

# Alpaca's 18 order statuses, as its Orders reference lists them.
ORDER_STATUSES = (
    "new",
    "partially_filled",
    "filled",
    "done_for_day",
    "canceled",
    "expired",
    "replaced",
    "pending_cancel",
    "pending_replace",
    "accepted",
    "pending_new",
    "accepted_for_bidding",
    "stopped",
    "rejected",
    "suspended",
    "calculated",
    "held",
    "pending_review",
)
SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
ORDER_CLASSES = ("simple", "bracket", "oco", "oto", "mleg", "")
FEEDS = ("sip", "iex", "delayed_sip", "boats", "overnight", "otc")

# Required fields of each answer and their types (Alpaca's API reference).
ACCOUNT: Mapping[str, Check] = {
    "id": STR,
    "account_number": STR,
    "status": _one_of(*(s.value for s in AccountStatus)),
    "currency": STR,
    "cash": NUM,
    "portfolio_value": NUM,
    "non_marginable_buying_power": NUM,
    "accrued_fees": NUM,
    "pending_transfer_in": NUM,
    "pattern_day_trader": BOOL,
    "trade_suspended_by_user": BOOL,
    "trading_blocked": BOOL,
    "transfers_blocked": BOOL,
    "account_blocked": BOOL,
    "created_at": TIME,
    "shorting_enabled": BOOL,
    "long_market_value": NUM,
    "short_market_value": NUM,
    "equity": NUM,
    "last_equity": NUM,
    "multiplier": _one_of("1", "2", "4"),
    "buying_power": NUM,
    "initial_margin": NUM,
    "maintenance_margin": NUM,
    "sma": NUM,
    "daytrade_count": INT,
    "last_maintenance_margin": NUM,
    "daytrading_buying_power": NUM,
    "regt_buying_power": NUM,
}
CLOCK: Mapping[str, Check] = {
    "timestamp": TIME,
    "is_open": BOOL,
    "next_open": TIME,
    "next_close": TIME,
}
CALENDAR_DAY: Mapping[str, Check] = {"date": DATE, "open": HHMM, "close": HHMM}
ASSET: Mapping[str, Check] = {
    "id": STR,
    "class": _one_of(*(c.value for c in AssetClass)),
    "exchange": _one_of(*(e.value for e in AssetExchange)),
    "symbol": STR,
    "name": STR,
    "status": _one_of(*(s.value for s in AssetStatus)),
    "tradable": BOOL,
    "marginable": BOOL,
    "shortable": BOOL,
    "easy_to_borrow": BOOL,
    "fractionable": BOOL,
}
POSITION: Mapping[str, Check] = {
    "asset_id": STR,
    "symbol": STR,
    "exchange": STR,
    "asset_class": STR,
    "avg_entry_price": NUM,
    "qty": NUM,
    "qty_available": NUM,
    "side": _one_of("long", "short"),
    "market_value": NUM,
    "cost_basis": NUM,
    "unrealized_pl": NUM,
    "unrealized_plpc": NUM,
    "unrealized_intraday_pl": NUM,
    "unrealized_intraday_plpc": NUM,
    "current_price": NUM,
    "lastday_price": NUM,
    "change_today": NUM,
}
ORDER: Mapping[str, Check] = {
    "id": STR,
    "client_order_id": STR,
    "created_at": TIME,
    "updated_at": _nullable(TIME),
    "submitted_at": _nullable(TIME),
    "filled_at": _nullable(TIME),
    "expired_at": _nullable(TIME),
    "canceled_at": _nullable(TIME),
    "failed_at": _nullable(TIME),
    "replaced_at": _nullable(TIME),
    "replaced_by": _nullable(STR),
    "replaces": _nullable(STR),
    "asset_id": STR,
    "symbol": STR,
    "asset_class": STR,
    "notional": _nullable(NUM),
    "qty": _nullable(NUM),
    "filled_qty": NUM,
    "filled_avg_price": _nullable(NUM),
    "order_class": _one_of(*ORDER_CLASSES),
    "order_type": _one_of(*ORDER_TYPES),
    "type": _one_of(*ORDER_TYPES),
    "side": _one_of(*SIDES),
    "time_in_force": _one_of(*TIME_IN_FORCE),
    "limit_price": _nullable(NUM),
    "stop_price": _nullable(NUM),
    "status": _one_of(*ORDER_STATUSES),
    "extended_hours": BOOL,
    "legs": _nullable(_list_of(lambda _leg: None)),
    "trail_percent": _nullable(NUM),
    "trail_price": _nullable(NUM),
    "hwm": _nullable(NUM),
}
BAR: Mapping[str, Check] = {
    "t": TIME,
    "o": NUMBER,
    "h": NUMBER,
    "l": NUMBER,
    "c": NUMBER,
    "v": NUMBER,
    "n": INT,
    "vw": NUMBER,
}
TRADE: Mapping[str, Check] = {
    "t": TIME,
    "x": STR,
    "p": NUMBER,
    "s": INT,
    "c": _list_of(STR),
    "i": INT,
    "z": STR,
}
ERROR: Mapping[str, Check] = {"code": INT, "message": STR}
# The market data API's errors carry a message, and a code only sometimes (its 403 for a
# plan without recent SIP data has none).
DATA_ERROR: Mapping[str, Check] = {"message": STR}

# Query parameters each endpoint accepts (Alpaca's API reference), with the values checked
# where the API takes a closed set.
_ANY: Check = STR
QUERIES: Mapping[str, Mapping[str, Check]] = {
    "GET /v2/account": {},
    "GET /v2/clock": {},
    "GET /v2/calendar": {"start": DATE, "end": DATE, "date_type": _one_of("TRADING", "SETTLEMENT")},
    "GET /v2/assets/{symbol}": {},
    "GET /v2/positions": {},
    "GET /v2/positions/{symbol}": {},
    "GET /v2/orders": {
        "status": _one_of("open", "closed", "all"),
        "limit": _pattern(re.compile(r"^([1-9]\d{0,1}|[1-4]\d{2}|500)$"), "a limit from 1 to 500"),
        "after": TIME,
        "until": TIME,
        "direction": _one_of("asc", "desc"),
        "nested": _one_of("true", "false"),
        "symbols": _ANY,
        "side": _one_of(*SIDES),
        "asset_class": _ANY,
    },
    "DELETE /v2/orders": {},
    "GET /v2/orders:by_client_order_id": {"client_order_id": _ANY},
    "GET /v2/orders/{id}": {"nested": _one_of("true", "false")},
    "DELETE /v2/orders/{id}": {},
    "POST /v2/orders": {},
    "GET /v2/stocks/bars": {
        "symbols": _ANY,
        "timeframe": _pattern(
            re.compile(r"^\d+(Min|T|Hour|H|Day|D|Week|W|Month|M)$"), "a bar size"
        ),
        "start": _ANY,
        "end": _ANY,
        "limit": _pattern(re.compile(r"^\d+$"), "a whole number"),
        "adjustment": _one_of("raw", "split", "dividend", "spin-off", "all"),
        "asof": _ANY,
        "feed": _one_of(*FEEDS),
        "currency": _ANY,
        "page_token": _ANY,
        "sort": _one_of("asc", "desc"),
    },
    "GET /v2/stocks/trades/latest": {"symbols": _ANY, "feed": _one_of(*FEEDS), "currency": _ANY},
}
ORDER_BODY: Mapping[str, Check] = {
    "symbol": STR,
    "qty": NUM,
    "notional": NUM,
    "side": _one_of(*SIDES),
    "type": _one_of(*ORDER_TYPES),
    "time_in_force": _one_of(*TIME_IN_FORCE),
    "limit_price": NUM,
    "stop_price": NUM,
    "trail_price": NUM,
    "trail_percent": NUM,
    "extended_hours": BOOL,
    "client_order_id": _pattern(re.compile(r"^.{1,128}$"), "1 to 128 characters"),
    "order_class": _one_of(*ORDER_CLASSES),
    "take_profit": lambda _v: None,
    "stop_loss": lambda _v: None,
    "position_intent": _one_of("buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"),
}


def _fields(body: object, shape: Mapping[str, Check], where: str) -> list[str]:
    if not isinstance(body, Mapping):
        return [f"{where}: {body!r} is not an object"]
    problems = [f"{where}: lacks {name!r}" for name in shape if name not in body]
    for name, check in shape.items():
        if name in body and (problem := check(body[name])):
            problems.append(f"{where}: {name}: {problem}")
    return problems


def _model(model: type[BaseModel], body: object, where: str) -> list[str]:
    if not isinstance(body, Mapping):
        return []  # _fields says so
    try:
        model(**body)
    except (ValidationError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[:3]
        return [f"{where}: alpaca-py's {model.__name__} does not parse it: {' '.join(first)}"]
    return []


def _one(model: type[BaseModel], shape: Mapping[str, Check]) -> Callable[[object, str], list[str]]:
    def check(body: object, where: str) -> list[str]:
        return _fields(body, shape, where) + _model(model, body, where)

    return check


def _many(model: type[BaseModel], shape: Mapping[str, Check]) -> Callable[[object, str], list[str]]:
    one = _one(model, shape)

    def check(body: object, where: str) -> list[str]:
        if not isinstance(body, list):
            return [f"{where}: {body!r} is not a list"]
        return [p for i, item in enumerate(body) for p in one(item, f"{where}[{i}]")]

    return check


def _bars(body: object, where: str) -> list[str]:
    problems = _fields(
        body, {"bars": _nullable(lambda v: None), "next_page_token": _nullable(STR)}, where
    )
    if problems or not isinstance(body, Mapping):
        return problems
    bars = body["bars"] or {}
    if not isinstance(bars, Mapping):
        return [f"{where}: bars is not an object keyed by symbol"]
    for symbol, items in bars.items():
        if not isinstance(items, list):
            problems.append(f"{where}: bars of {symbol} are not a list")
            continue
        problems += [
            p for i, bar in enumerate(items) for p in _fields(bar, BAR, f"{where}.{symbol}[{i}]")
        ]
    if not problems:
        try:
            BarSet(dict(bars))
        except (ValidationError, TypeError, ValueError, KeyError) as exc:
            problems.append(f"{where}: alpaca-py's BarSet does not parse it: {exc}")
    return problems


def _trades(body: object, where: str) -> list[str]:
    problems = _fields(
        body, {"trades": lambda v: None if isinstance(v, Mapping) else "not an object"}, where
    )
    if problems or not isinstance(body, Mapping):
        return problems
    for symbol, trade in body["trades"].items():
        at = f"{where}.{symbol}"
        found = _fields(trade, TRADE, at)
        if not found:
            try:
                Trade(symbol, dict(trade))
            except (ValidationError, TypeError, ValueError, KeyError) as exc:
                found.append(f"{at}: alpaca-py's Trade does not parse it: {exc}")
        problems += found
    return problems


def _cancel_all(body: object, where: str) -> list[str]:
    if not isinstance(body, list):
        return [f"{where}: {body!r} is not a list"]
    problems = []
    for i, item in enumerate(body):
        at = f"{where}[{i}]"
        problems += _fields(item, {"id": STR, "status": INT, "body": lambda v: None}, at)
        if isinstance(item, Mapping) and isinstance(item.get("body"), Mapping):
            problems += _one(Order, ORDER)(item["body"], f"{at}.body")
    return problems


ANSWERS: Mapping[str, Callable[[object, str], list[str]]] = {
    "GET /v2/account": _one(TradeAccount, ACCOUNT),
    "GET /v2/clock": _one(Clock, CLOCK),
    "GET /v2/calendar": _many(Calendar, CALENDAR_DAY),
    "GET /v2/assets/{symbol}": _one(Asset, ASSET),
    "GET /v2/positions": _many(Position, POSITION),
    "GET /v2/positions/{symbol}": _one(Position, POSITION),
    "POST /v2/orders": _one(Order, ORDER),
    "GET /v2/orders": _many(Order, ORDER),
    "DELETE /v2/orders": _cancel_all,
    "GET /v2/orders:by_client_order_id": _one(Order, ORDER),
    "GET /v2/orders/{id}": _one(Order, ORDER),
    "GET /v2/stocks/bars": _bars,
    "GET /v2/stocks/trades/latest": _trades,
}


def answer_problems(exchange: Exchange) -> list[str]:
    """What in the simulator's answer real Alpaca would not send."""
    where = f"{exchange.endpoint} answer ({exchange.status})"
    if exchange.status >= 500:
        # An injected fault is answered before the observer sees anything: an observed 5xx
        # is the simulator failing, which Alpaca's shape would not excuse.
        return [f"{where}: the simulator failed: {exchange.body!r}"]
    if exchange.status >= 400:
        data = exchange.endpoint.startswith("GET /v2/stocks/")
        problems = _fields(exchange.body, DATA_ERROR if data else ERROR, where)
        if data and isinstance(exchange.body, Mapping) and "code" in exchange.body:
            problems += [f"{where}: code: {p}" for p in [INT(exchange.body["code"])] if p]
        return problems
    if exchange.status == 204:
        return [] if exchange.body is None else [f"{where}: a 204 with a body"]
    return ANSWERS[exchange.endpoint](exchange.body, where)


def request_problems(exchange: Exchange) -> list[str]:
    """What in an accepted request real Alpaca would not accept: a parameter it does not
    take, or a value outside its set. A refused request (4xx) was refused: nothing to say."""
    if exchange.status >= 400:
        return []
    where = f"{exchange.endpoint} request"
    accepted = QUERIES[exchange.endpoint]
    problems = [
        f"{where}: parameter {name!r} is not one Alpaca accepts"
        for name in exchange.query
        if name not in accepted
    ]
    problems += [
        f"{where}: {name}: {problem}"
        for name, value in exchange.query.items()
        if name in accepted and (problem := accepted[name](value))
    ]
    if exchange.endpoint == "POST /v2/orders":
        problems += _order_body(exchange.payload, where)
    return problems


def _order_body(payload: object, where: str) -> list[str]:
    if not isinstance(payload, Mapping):
        return [f"{where}: the body is not a JSON object"]
    problems = [
        f"{where}: field {name!r} is not one Alpaca accepts"
        for name in payload
        if name not in ORDER_BODY
    ]
    for name, value in payload.items():
        if name in ORDER_BODY:
            # JSON numbers arrive as Decimal or int; Alpaca takes either form for amounts.
            number = isinstance(value, Decimal | int) and not isinstance(value, bool)
            shown = str(value) if number else value
            if problem := ORDER_BODY[name](shown):
                problems.append(f"{where}: {name}: {problem}")
    for name in ("symbol", "side", "type", "time_in_force"):
        if name not in payload:
            problems.append(f"{where}: lacks {name!r}")
    if ("qty" in payload) == ("notional" in payload):
        problems.append(f"{where}: needs exactly one of qty and notional")
    if payload.get("type") in ("limit", "stop_limit") and "limit_price" not in payload:
        problems.append(f"{where}: a {payload.get('type')} order lacks limit_price")
    if payload.get("type") == "market" and "limit_price" in payload:
        problems.append(f"{where}: a market order carries limit_price")
    return problems


class ContractRecorder:
    """An observer for `SimulatorServer`: every exchange checked, the problems kept (the
    server calls it from its handler threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.problems: list[str] = []
        self.exchanges = 0

    def __call__(self, exchange: Exchange) -> None:
        try:
            found = answer_problems(exchange) + request_problems(exchange)
        except Exception as exc:  # a checker that breaks must fail the test, not the server
            found = [f"{exchange.endpoint}: the contract check failed: {exc!r}"]
        with self._lock:
            self.exchanges += 1
            self.problems.extend(found)
