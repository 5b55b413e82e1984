"""The broker simulator: an Alpaca account (margin unless told) on a simulated clock, with
credentials, request counters and a fault plan. No HTTP here: `server` maps requests onto these
methods and sends their JSON-ready answers.

Thread-safe with one lock: every public method holds it, so concurrent requests see one
consistent book and two orders can never both spend the same cash (C2). Simulated time only
moves when told to (`set_clock`).

With `book_path`, the account also lives in that file (see `persist`), shared by every
simulator on the same path, in this process or another: each change is a load-modify-save
under an exclusive file lock taken inside the thread lock, and reads first pick up what
another process wrote. The clock, fault plan, fill mode, request counters and credentials
stay per simulator.
"""

from __future__ import annotations

import hmac
import threading
import time as wall
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.marketdata import MarketDataSource
from tecl_pipeline.simulator import market, wire
from tecl_pipeline.simulator.book import Book
from tecl_pipeline.simulator.faults import Fault, FaultPlan, FaultPlanError, FaultRule
from tecl_pipeline.simulator.model import (
    MARKET_BUY_COLLAR,
    AccountKind,
    AssetState,
    DataPlan,
    FillMode,
    FillPlan,
)
from tecl_pipeline.simulator.model import market_buy_collar as market_buy_collar_value
from tecl_pipeline.simulator.persist import BookStore, encode, parse, to_json
from tecl_pipeline.simulator.pricing import PriceBook
from tecl_pipeline.simulator.wire import UNAUTHORIZED, ApiError

RATE_LIMIT_PER_MINUTE = 200
# The simulator's own fixed demo credentials: not secrets, safe to print.
DEMO_API_KEY = "sim-key"
DEMO_API_SECRET = "sim-secret"


def _require_aware(moment: object, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment.isoformat()}")
    return moment


def _apply(record: object, **changes: object) -> None:
    """Set the fields of a book record that an admin call gave (None: leave it as it is)."""
    for name, value in changes.items():
        if value is not None:
            setattr(record, name, value)


def _rate_limit(per_minute: int | None) -> int | None:
    if per_minute is not None and (
        isinstance(per_minute, bool) or not isinstance(per_minute, int) or per_minute < 1
    ):
        raise ValueError(f"per_minute must be a whole number >= 1 or null, got {per_minute!r}")
    return per_minute


class BrokerSimulator:
    def __init__(
        self,
        market_data: MarketDataSource,
        calendar: TradingCalendar,
        *,
        starting_cash: Decimal = Decimal("100000"),
        now: datetime | None = None,
        api_key: str = DEMO_API_KEY,
        api_secret: str = DEMO_API_SECRET,
        book_path: Path | None = None,
        data_plan: DataPlan = DataPlan.BASIC,
        account_kind: AccountKind = AccountKind.MARGIN,
        rate_limit: int | None = RATE_LIMIT_PER_MINUTE,
        wall_clock: Callable[[], float] = wall.time,
        fills: FillMode = FillMode.ASYNC,
        market_buy_collar: Decimal = MARKET_BUY_COLLAR,
    ) -> None:
        """`data_plan`: the market data subscription, Alpaca's free Basic plan unless told.
        `account_kind`: margin unless told, as Alpaca's paper accounts are.
        `market_buy_collar`: how far above the price a market buy is checked against buying
        power (a fraction; Alpaca's 4% unless told).
        `fills`: how orders fill until `set_fill_mode` says otherwise (`FillMode`), Alpaca's
        way (ASYNC) unless told.
        `rate_limit`: requests per wall-clock minute and API key, Alpaca's 200 unless told;
        None serves every request. `wall_clock` (seconds since the epoch) times its windows.
        `book_path`: keep the account in this JSON file (created if missing, with a fresh
        account of `starting_cash`; loaded if present, its orders then advanced to `now`).
        A file that does not validate raises `persist.BookFileError` naming it."""
        if now is None:
            now = calendar.decision_time(market_data.latest_session(SYMBOLS))
        self._initial_now = _require_aware(now, "now")
        self._market_data = market_data
        self._calendar = calendar
        self._starting_cash = Decimal(starting_cash)
        self._initial_credentials = (api_key, api_secret)
        self._initial_data_plan = DataPlan(data_plan)
        self._initial_account_kind = AccountKind(account_kind)
        self._initial_rate_limit = _rate_limit(rate_limit)
        self._initial_fills = FillMode(fills)
        self._initial_collar = market_buy_collar_value(market_buy_collar)
        self._collar = self._initial_collar
        self._wall_clock = wall_clock
        self._account_kind = self._initial_account_kind
        self._lock = threading.RLock()
        self._prices = PriceBook(market_data, calendar)
        self._store = None if book_path is None else BookStore(Path(book_path))
        # What this simulator last read from or wrote to the file (None: no file), the file's
        # version then, and the body the book had then; `_stale` forces a reload.
        self._seen: bytes | None = None
        self._version = 0
        self._saved: dict[str, Any] | None = None
        self._stale = True
        self._reset()
        if self._store is not None:
            with self._lock, self._persisted():
                pass  # load the file, or create it with the fresh account

    def _reset(self) -> None:
        self._account_kind = self._initial_account_kind
        self._collar = self._initial_collar
        self._new_book(self._initial_now)
        self._credentials = self._initial_credentials
        self._data_plan = self._initial_data_plan
        self._requests: dict[str, int] = {}
        self._faults = FaultPlan.empty()
        self._faults_injected: dict[str, int] = {}
        self._rate_limit = self._initial_rate_limit
        # Per API key: (wall-clock minute, requests in it), Alpaca's fixed one-minute window.
        self._windows: dict[str, tuple[int, int]] = {}

    def _new_book(self, now: datetime) -> None:
        self._prices.reset()
        self._book = Book(
            self._prices,
            self._calendar,
            now=now,
            cash=self._starting_cash,
            symbols=SYMBOLS,
        )
        self._book.account_kind = self._account_kind
        self._book.market_buy_collar = self._collar
        self._book.fill_plan = FillPlan(mode=self._initial_fills)

    # -- persistence (callers hold self._lock) --------------------------------------------------

    @contextmanager
    def _persisted(self) -> Iterator[None]:
        """A state-changing operation: under the file lock, reload the book if another
        simulator wrote it, run the operation, save the book if it changed (a rejected order
        changes the submissions log, so this saves on the way out of an exception too)."""
        if self._store is None:
            yield
            return
        with self._store.locked():
            self._reload()  # a bad file raises here, before anything changes or is saved
            try:
                yield
            finally:
                self._save()

    def _catch_up(self) -> None:
        """Before a read: reload if the file changed since this simulator last saw it. Without
        the lock while nothing changed (writes replace the file whole)."""
        if self._store is None:
            return
        if self._stale or self._store.read() != self._seen:
            with self._persisted():
                pass

    def _reload(self) -> None:
        assert self._store is not None
        data = self._store.read()
        if not self._stale and data == self._seen:
            return
        if data is None:
            # No file (first use, or deleted to start over): a fresh account, saved next.
            fill_plan, now = self._book.fill_plan, self._book.now
            self._new_book(now)
            self._book.fill_plan = fill_plan
            version, saved = 0, None
        else:
            version, snapshot = parse(data, self._store.path)
            self._book.restore(snapshot)
            saved = to_json(self._book.snapshot())
            # The file may come from a process whose clock was earlier: orders move on to
            # this simulator's clock (queued ones start, DAY orders past their close expire).
            self._book.set_clock(self._book.now)
        self._seen, self._version, self._saved, self._stale = data, version, saved, False

    def _save(self) -> None:
        assert self._store is not None
        body = to_json(self._book.snapshot())
        if body == self._saved:
            return
        data = encode(body, self._version + 1)
        try:
            self._store.write(data)
        except BaseException:
            self._stale = True  # the next operation starts again from the file
            raise
        self._seen, self._version, self._saved = data, self._version + 1, body

    # -- admin ------------------------------------------------------------------------------------

    @property
    def description(self) -> str:
        where = "" if self._store is None else f", account book {self._store.path}"
        return f"Alpaca-compatible broker simulator over {self._market_data.description}{where}"

    @property
    def book_path(self) -> Path | None:
        return None if self._store is None else self._store.path

    @property
    def now(self) -> datetime:
        with self._lock:
            return self._book.now

    @property
    def api_key(self) -> str:
        with self._lock:
            return self._credentials[0]

    def reset(self) -> None:
        """Back to the state at construction: clock, cash, credentials; no orders, positions,
        faults, splits or asset changes. With a book file, the fresh account (this simulator's
        `starting_cash` and `now`) is saved to it for every simulator on the file; nothing is
        deleted, and a file that does not validate raises instead of being overwritten."""
        with self._lock, self._persisted():
            self._reset()

    def set_clock(self, now: datetime) -> None:
        """Move the simulated clock (either way). Queued orders start working once it reaches
        their session's open; DAY orders still open at their session's close expire."""
        moment = _require_aware(now, "now")
        with self._lock, self._persisted():
            self._book.set_clock(moment)

    def set_faults(self, seed: int, rules: Sequence[Mapping[str, Any] | FaultRule]) -> None:
        """Replace the fault plan; its draws start afresh from `seed`."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise FaultPlanError(f"seed must be an integer, got {seed!r}")
        if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
            raise FaultPlanError("rules must be a list of fault rules")
        plan = FaultPlan(
            seed=seed,
            rules=tuple(r if isinstance(r, FaultRule) else FaultRule.from_json(r) for r in rules),
        )
        with self._lock:
            self._faults = plan

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = FaultPlan.empty()

    def set_order_status(self, client_order_id: str, status: str) -> dict[str, Any]:
        """Move an open order to `status` (`Book.set_status`); the order as GET answers it."""
        with self._lock, self._persisted():
            return self._book.order_json(self._book.set_status(client_order_id, status))

    def set_fill_mode(
        self, mode: FillMode | str, *, steps: int | None = None, delay_polls: int | None = None
    ) -> None:
        """How orders submitted from now on fill (until `reset`): "async" (Alpaca's way, see
        `FillMode`), "immediate" (at submit), "partial" (one of `steps` chunks per read of the
        order), "delayed" (after `delay_polls` reads), "never"."""
        default = FillPlan()
        plan = FillPlan(
            mode=FillMode(mode),
            steps=default.steps if steps is None else steps,
            delay_polls=default.delay_polls if delay_polls is None else delay_polls,
        )
        with self._lock:
            self._book.fill_plan = plan

    def set_data_plan(self, plan: DataPlan | str) -> None:
        """The market data subscription from now on (until `reset`)."""
        with self._lock:
            self._data_plan = DataPlan(plan)

    def split(self, symbol: str, ratio: Decimal | str | int) -> None:
        """A forward split by `ratio` (e.g. 2): the position's qty x ratio, its average price
        / ratio, and every price of the symbol served from now on (history included) / ratio."""
        try:
            factor = Decimal(str(ratio))
        except InvalidOperation:
            raise ValueError(f"split ratio must be a number, got {ratio!r}") from None
        if not factor.is_finite() or factor <= 0:
            raise ValueError(f"split ratio must be > 0, got {ratio!r}")
        with self._lock, self._persisted():
            self._book.split(symbol, factor)

    def set_asset(
        self,
        symbol: str,
        *,
        tradable: bool | None = None,
        fractionable: bool | None = None,
        halted: bool | None = None,
        shortable: bool | None = None,
    ) -> None:
        """Change (or create) an asset. A halt does not show on GET /v2/assets (Alpaca's asset
        has no such field); orders for a halted asset are rejected with 422."""
        with self._lock, self._persisted():
            asset = self._book.assets.setdefault(symbol, AssetState(symbol))
            _apply(
                asset,
                tradable=tradable,
                fractionable=fractionable,
                halted=halted,
                shortable=shortable,
            )

    def set_account(
        self,
        *,
        currency: str | None = None,
        cash: Decimal | str | None = None,
        trading_blocked: bool | None = None,
        kind: AccountKind | str | None = None,
    ) -> None:
        amount = None if cash is None else Decimal(str(cash))
        with self._lock, self._persisted():
            _apply(
                self._book.account, currency=currency, cash=amount, trading_blocked=trading_blocked
            )
            if kind is not None:
                # Kept by this simulator, like the fill mode: not in the book file.
                self._account_kind = AccountKind(kind)
                self._book.account_kind = self._account_kind

    def set_market_buy_collar(self, collar: object) -> None:
        """How far above the price market buys are checked from now on (kept by this
        simulator, like the account kind)."""
        value = market_buy_collar_value(collar)
        with self._lock:
            self._collar = value
            self._book.market_buy_collar = value

    def set_credentials(self, key: str, secret: str) -> None:
        """Rotate the key pair: from now on the old pair gets 401 (B4, X6)."""
        if not key or not secret:
            raise ValueError("key and secret must be non-empty")
        with self._lock:
            self._credentials = (key, secret)

    def price(self, symbol: str) -> Decimal | None:
        """The price an order for `symbol` fills at now (None if the data have none)."""
        with self._lock:
            self._catch_up()
            return self._book.price_now(symbol)

    def state(self) -> dict[str, Any]:
        """Everything a test or a soak checks, JSON-ready. Reading it never advances a fill."""
        with self._lock:
            self._catch_up()
            book = self._book
            return {
                "now": wire.exchange_time(book.now),
                "cash": wire.money(book.account.cash),
                "currency": book.account.currency,
                "trading_blocked": book.account.trading_blocked,
                "data_plan": self._data_plan.value,
                "rate_limit": self._rate_limit,
                "account_kind": self._account_kind.value,
                "market_buy_collar": str(self._collar),
                "positions": {
                    symbol: {"qty": wire.num(h.qty), "avg_entry_price": wire.num(h.avg_entry_price)}
                    for symbol, h in sorted(book.holdings.items())
                },
                "orders": [book.order_json(o) for o in book.orders],
                "submissions": [dict(s) for s in book.submissions],
                "requests": dict(self._requests),
                "faults_injected": dict(self._faults_injected),
                "fault_plan": {
                    **self._faults.to_json(),
                    "injected": dict(self._faults.injected),
                    "log": [dict(entry) for entry in self._faults.log],
                },
                "fill_mode": book.fill_plan.to_json(),
                "assets": {
                    s: {
                        "tradable": a.tradable,
                        "fractionable": a.fractionable,
                        "halted": a.halted,
                        "shortable": a.shortable,
                    }
                    for s, a in sorted(book.assets.items())
                },
                "split_ratios": {s: wire.num(r) for s, r in self._prices.ratios().items()},
                "api_key": self._credentials[0],
            }

    def orders_with_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """The orders whose client order id starts with `prefix`, as `state()` shows them
        (reading them never advances a fill); cheaper than `state()` on a long soak."""
        with self._lock:
            self._catch_up()
            book = self._book
            return [book.order_json(o) for o in book.orders if o.client_order_id.startswith(prefix)]

    # -- per request ------------------------------------------------------------------------------

    def set_rate_limit(self, per_minute: int | None) -> None:
        """Requests per minute and API key from now on (until `reset`); None: no limit."""
        limit = _rate_limit(per_minute)
        with self._lock:
            self._rate_limit = limit

    def begin_request(self, endpoint: str, key: str) -> tuple[Fault | None, bool]:
        """Count a broker request ("GET /v2/orders/{id}") against `key`'s minute: its fault,
        if any, and whether it is over the minute's budget (Alpaca answers it 429 and does
        nothing; it draws no fault). One decision under the lock, whatever runs beside it."""
        with self._lock:
            self._requests[endpoint] = self._requests.get(endpoint, 0) + 1
            minute = int(self._wall_clock() // 60)
            then, count = self._windows.get(key, (minute, 0))
            count = count + 1 if then == minute else 1
            self._windows[key] = (minute, count)
            if self._rate_limit is not None and count > self._rate_limit:
                return None, True
            fault = self._faults.decide(endpoint)
            if fault is not None:
                kind = fault.kind.value
                self._faults_injected[kind] = self._faults_injected.get(kind, 0) + 1
            return fault, False

    def rate_limit_headers(self, key: str) -> dict[str, str]:
        """Alpaca's X-RateLimit-* headers for `key`; Reset is the next window's start, in
        seconds since the epoch. Without a limit, the budget shown is Alpaca's own."""
        with self._lock:
            minute, count = self._windows.get(key, (int(self._wall_clock() // 60), 0))
            limit = self._rate_limit or RATE_LIMIT_PER_MINUTE
            return {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(max(0, limit - count)),
                "X-RateLimit-Reset": str((minute + 1) * 60),
            }

    def authenticate(self, key: str | None, secret: str | None) -> None:
        with self._lock:
            expected_key, expected_secret = self._credentials
        key_ok = hmac.compare_digest((key or "").encode(), expected_key.encode())
        secret_ok = hmac.compare_digest((secret or "").encode(), expected_secret.encode())
        if not (key_ok and secret_ok):
            raise ApiError(401, UNAUTHORIZED, "request is not authorized")

    # -- Alpaca's trading API -------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            return self._book.account_json()

    def clock(self) -> dict[str, Any]:
        with self._lock:
            return market.clock(self._calendar, self._book.now)

    def calendar_days(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        return market.calendar_days(self._calendar, query)

    def asset(self, symbol_or_id: str) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            return self._book.asset_json(symbol_or_id)

    def positions(self) -> list[dict[str, Any]]:
        with self._lock:
            self._catch_up()
            return self._book.positions_json()

    def position(self, symbol: str) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            return self._book.position_json(symbol)

    def submit_order(self, payload: object, *, fault: str | None = None) -> dict[str, Any]:
        """POST /v2/orders. Every attempt is recorded in `state()["submissions"]`; `fault`
        names a fault that hides or mangles the answer (the order is placed all the same)."""
        with self._lock, self._persisted():
            return self._book.submit(payload, fault=fault)

    def record_unprocessed_submission(self, payload: object, fault: str, status: int) -> None:
        """An order request that a fault stopped before it reached the book."""
        with self._lock, self._persisted():
            self._book.record_submission(payload, status, "not processed", None, fault)

    # Reading orders moves partial and delayed fills on: a state change like any other.
    def orders(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        with self._lock, self._persisted():
            return self._book.orders_json(query)

    def order(self, order_id: str) -> dict[str, Any]:
        with self._lock, self._persisted():
            return self._book.read_order(order_id)

    def order_by_client_id(self, client_order_id: str | None) -> dict[str, Any]:
        with self._lock, self._persisted():
            return self._book.read_order_by_client_id(client_order_id)

    def cancel_order(self, order_id: str) -> None:
        with self._lock, self._persisted():
            self._book.cancel(order_id)

    def cancel_all(self) -> list[dict[str, Any]]:
        with self._lock, self._persisted():
            return self._book.cancel_all()

    # -- Alpaca's market data API ---------------------------------------------------------------

    # Market data follow the split ratios, which live in the book.
    def bars(self, query: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            return market.bars(self._prices, self._book.now, query, self._data_plan)

    def latest_trades(self, query: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            return market.latest_trades(
                self._prices, self._calendar, self._book.now, query, self._data_plan
            )
