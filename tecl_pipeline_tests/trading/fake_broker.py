"""An in-memory `Broker` for fast unit tests of execution and planning.

It keeps a cash account the way the broker simulator does (and so Alpaca): buys reserve
buying power while they work, a sell may not exceed what is held and not already being
sold, a fill at the symbol's price moves cash and the position, a client order id is
placed once. Money and quantities are Decimal; answers are `trading.models` values and
failures the `trading.errors` a real adapter raises. `test_fake_broker.py` runs one
scenario on it and on the real adapter against the simulator and compares the outcome.

What a test can script:
- `fills`: how orders sent from now on fill (`Fills`): at once, in `steps` equal parts (one
  per read of the order, as in the simulator), after `delay_reads` reads, or never.
- `reject(symbol, reason)`: the broker refuses orders for the symbol (`OrderRejectedError`).
- `lose_ack(client_order_id)`: that order is placed, but its submit raises
  `OutcomeUnknownError`, as when the answer is lost on the way back.
- `place_as_another_run(request)`: an order appears that the code under test did not send.
- `before(method, action, nth)` / `after(...)`: act (move the clock past the close, let
  another run trade) right before the nth call of a method is answered, or right after.
- `set_clock(now, is_open=...)`: the broker's clock.

Every call of the protocol lands in `calls`, in order, with its arguments.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Literal, NamedTuple

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.trading.errors import (
    DuplicateClientOrderIdError,
    NotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
)
from tecl_pipeline.trading.models import (
    Account,
    Asset,
    Clock,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    Trade,
)

CENT = Decimal("0.01")
ZERO = Decimal(0)
# The simulator's quantity precision for a fractional partial fill.
_FRACTION = Decimal("1e-9")


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


class FillMode(StrEnum):
    INSTANT = "instant"
    PARTIAL = "partial"
    DELAYED = "delayed"
    NEVER = "never"


@dataclass(frozen=True)
class Fills:
    """How an order fills. Reads (`get_order`, `get_order_by_client_id`, `list_orders`) are
    what move a working order on, while the market is open."""

    mode: FillMode = FillMode.INSTANT
    steps: int = 2
    delay_reads: int = 1


INSTANT = Fills()
NEVER = Fills(FillMode.NEVER)


def partial(steps: int) -> Fills:
    return Fills(FillMode.PARTIAL, steps=steps)


def delayed(reads: int) -> Fills:
    return Fills(FillMode.DELAYED, delay_reads=reads)


class Call(NamedTuple):
    method: str
    args: tuple[object, ...]


@dataclass
class _Holding:
    qty: Decimal
    avg_entry_price: Decimal


@dataclass
class _Working:
    """An order and what decides its next fill."""

    order: Order
    fills: Fills
    reads: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.order.qty - self.order.filled_qty


Method = Literal[
    "get_clock",
    "get_account",
    "get_positions",
    "get_asset",
    "latest_trades",
    "submit_order",
    "get_order",
    "get_order_by_client_id",
    "list_orders",
    "cancel_order",
]
Action = Callable[["FakeBroker"], None]


@dataclass
class FakeBroker:
    """The account starts with `cash` and `holdings` (symbol -> qty, bought at today's
    price; `held` is what it holds now); `prices` is what orders fill at and what
    `latest_trades` quotes (a symbol without a price is not quoted and cannot be ordered)."""

    prices: dict[str, Decimal]
    now: datetime
    cash: Decimal = Decimal("100000")
    holdings: InitVar[Mapping[str, Decimal] | None] = None
    calendar: TradingCalendar | None = None
    """With a calendar the clock's is_open, next_open and next_close follow it (holidays,
    early closes); without one the market is open unless `set_clock` says otherwise."""
    currency: str = "USD"
    trading_blocked: bool = False
    fills: Fills = INSTANT
    assets: dict[str, Asset] = field(default_factory=dict)
    """Symbols not listed here are tradable and fractionable."""
    trade_times: dict[str, datetime] = field(default_factory=dict)
    """When each symbol's latest trade was; a symbol not listed traded just now."""
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self, holdings: Mapping[str, Decimal] | None) -> None:
        self._held = {
            symbol: _Holding(Decimal(qty), self.prices[symbol])
            for symbol, qty in (holdings or {}).items()
            if qty
        }
        self._orders: dict[str, _Working] = {}
        self._by_client_id: dict[str, str] = {}
        self._rejections: dict[str, str] = {}
        self._lost_acks: set[str] = set()
        self._market_open: bool | None = None
        self._hooks: dict[tuple[str, str, int], list[Action]] = {}

    # -- scripting ------------------------------------------------------------------------

    def set_clock(self, now: datetime, *, is_open: bool | None = None) -> None:
        """Move the broker's clock; `is_open` overrides the calendar (an unscheduled halt)."""
        self.now = now
        self._market_open = is_open

    def reject(self, symbol: str, reason: str) -> None:
        self._rejections[symbol] = reason

    def lose_ack(self, client_order_id: str) -> None:
        self._lost_acks.add(client_order_id)

    def before(self, method: Method, action: Action, nth: int = 1) -> None:
        self._hooks.setdefault(("before", method, nth), []).append(action)

    def after(self, method: Method, action: Action, nth: int = 1) -> None:
        self._hooks.setdefault(("after", method, nth), []).append(action)

    def place_as_another_run(self, request: OrderRequest, fills: Fills | None = None) -> Order:
        """An order someone else sent: checked and filled like any, but not in `calls`."""
        return self._place(request, fills or self.fills)

    # -- what tests read ------------------------------------------------------------------

    def called(self, method: Method) -> list[tuple[object, ...]]:
        return [call.args for call in self.calls if call.method == method]

    @property
    def submitted(self) -> list[OrderRequest]:
        """Every order request the code under test sent, refused ones included."""
        return [
            args[0] for args in self.called("submit_order") if isinstance(args[0], OrderRequest)
        ]

    @property
    def orders(self) -> list[Order]:
        """Every order at the broker, oldest first, without counting as a read."""
        return self._sorted(w.order for w in self._orders.values())

    @property
    def held(self) -> dict[str, Decimal]:
        return {symbol: h.qty for symbol, h in sorted(self._held.items())}

    # -- the Broker protocol --------------------------------------------------------------

    @property
    def description(self) -> str:
        return "fake broker (in memory)"

    def get_clock(self) -> Clock:
        with self._call("get_clock"):
            return self._clock()

    def get_account(self) -> Account:
        with self._call("get_account"):
            value = sum((h.qty * self.prices[s] for s, h in self._held.items()), ZERO)
            return Account(
                account_number="FAKE-0001",
                currency=self.currency,
                cash=self.cash,
                equity=cents(self.cash + value),
                buying_power=self._buying_power(),
                trading_blocked=self.trading_blocked,
            )

    def get_positions(self) -> dict[str, Position]:
        with self._call("get_positions"):
            return {
                symbol: Position(
                    symbol=symbol,
                    qty=h.qty,
                    avg_entry_price=h.avg_entry_price,
                    current_price=self.prices[symbol],
                )
                for symbol, h in sorted(self._held.items())
            }

    def get_asset(self, symbol: str) -> Asset:
        with self._call("get_asset", symbol):
            return self._asset(symbol)

    def latest_trades(self, symbols: tuple[str, ...]) -> dict[str, Trade]:
        with self._call("latest_trades", symbols):
            at = self.trade_times.get
            return {
                s: Trade(price=self.prices[s], at=at(s, self.now), feed="fake")
                for s in symbols
                if s in self.prices
            }

    def submit_order(self, request: OrderRequest) -> Order:
        with self._call("submit_order", request):
            order = self._place(request, self.fills)
            if request.client_order_id in self._lost_acks:
                raise OutcomeUnknownError(
                    f"POST /v2/orders {request.client_order_id}: the answer was lost; the "
                    "order may or may not exist at the broker"
                )
            return order

    def get_order(self, order_id: str) -> Order:
        with self._call("get_order", order_id):
            working = self._orders.get(order_id)
            if working is None:
                raise NotFoundError(f"order {order_id} not found")
            return self._read(working)

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        with self._call("get_order_by_client_id", client_order_id):
            order_id = self._by_client_id.get(client_order_id)
            return None if order_id is None else self._read(self._orders[order_id])

    def list_orders(
        self, client_order_id_prefix: str = "", *, submitted_after: datetime | None = None
    ) -> list[Order]:
        with self._call("list_orders", client_order_id_prefix, submitted_after):
            # Listing reads every order in the window, as the adapter's GET /v2/orders does.
            listed = [
                self._read(w)
                for w in self._orders.values()
                if submitted_after is None or w.order.submitted_at > submitted_after
            ]
            return self._sorted(
                o for o in listed if o.client_order_id.startswith(client_order_id_prefix)
            )

    def cancel_order(self, order_id: str) -> None:
        with self._call("cancel_order", order_id):
            working = self._orders.get(order_id)
            if working is None:
                raise NotFoundError(f"order {order_id} not found")
            # Like the adapter: an order already final is not an error; its state tells.
            if not working.order.status.is_final:
                self._update(working, status=OrderStatus.CANCELED)

    # -- the book -------------------------------------------------------------------------

    @contextmanager
    def _call(self, method: Method, *args: object) -> Iterator[None]:
        """Record the call, run the test's actions for it before answering, and, when it
        answered without raising, those for after."""
        self.calls.append(Call(method, args))
        self._run_hooks("before", method)
        yield
        self._run_hooks("after", method)

    def _run_hooks(self, when: str, method: str) -> None:
        nth = sum(1 for call in self.calls if call.method == method)
        for action in self._hooks.pop((when, method, nth), []):
            action(self)

    def _clock(self) -> Clock:
        calendar = self.calendar
        if calendar is None:
            is_open = True if self._market_open is None else self._market_open
            return Clock(
                timestamp=self.now, is_open=is_open, next_open=self.now, next_close=self.now
            )
        session = calendar.session_for(self.now)
        scheduled = session is not None and calendar.open_time(
            session
        ) <= self.now < calendar.close_time(session)
        if session is not None and self.now < calendar.open_time(session):
            next_open = calendar.open_time(session)
        else:
            next_open = calendar.open_time(calendar.next_session(self.now.date()))
        next_close = (
            calendar.close_time(session)
            if scheduled and session is not None
            else calendar.close_time(next_open.date())
        )
        return Clock(
            timestamp=self.now,
            is_open=scheduled if self._market_open is None else self._market_open,
            next_open=next_open,
            next_close=next_close,
        )

    def _asset(self, symbol: str) -> Asset:
        if symbol in self.assets:
            return self.assets[symbol]
        if symbol not in self.prices:
            raise NotFoundError(f"asset {symbol} not found")
        return Asset(symbol=symbol, tradable=True, fractionable=True)

    def _open(self, side: OrderSide, symbol: str | None = None) -> list[_Working]:
        return [
            w
            for w in self._orders.values()
            if not w.order.status.is_final
            and w.order.side is side
            and symbol in (None, w.order.symbol)
        ]

    def _buying_power(self) -> Decimal:
        """Cash less what working buys still need (a cash account: no margin)."""
        reserved = sum(
            (cents(w.remaining * self.prices[w.order.symbol]) for w in self._open(OrderSide.BUY)),
            ZERO,
        )
        return self.cash - reserved

    def _available(self, symbol: str) -> Decimal:
        held = self._held.get(symbol)
        selling = sum((w.remaining for w in self._open(OrderSide.SELL, symbol)), ZERO)
        return (ZERO if held is None else held.qty) - selling

    def _refusal(self, request: OrderRequest) -> str | None:
        """Why the broker refuses the order, checked in the simulator's order."""
        symbol, qty = request.symbol, request.qty
        if symbol not in self.prices and symbol not in self.assets:
            return f'asset "{symbol}" not found'
        if self.trading_blocked:
            return "account is not authorized to trade"
        asset = self._asset(symbol)
        if not asset.tradable:
            return f'asset "{symbol}" is not tradable'
        if symbol in self._rejections:
            return self._rejections[symbol]
        if qty != qty.to_integral_value() and not asset.fractionable:
            return f'asset "{symbol}" is not fractionable'
        if symbol not in self.prices:
            return f'no price for "{symbol}" in the market data'
        if request.side is OrderSide.SELL:
            available = self._available(symbol)
            if qty > available:
                return (
                    f"insufficient qty available for order "
                    f"(requested: {qty}, available: {available})"
                )
        elif cents(qty * self.prices[symbol]) > self._buying_power():
            return "insufficient buying power"
        return None

    def _place(self, request: OrderRequest, fills: Fills) -> Order:
        if request.client_order_id in self._by_client_id:
            raise DuplicateClientOrderIdError(
                f"client_order_id {request.client_order_id} must be unique"
            )
        refusal = self._refusal(request)
        if refusal is not None:
            raise OrderRejectedError(refusal)
        open_now = self._clock().is_open
        order = Order(
            id=f"fake-order-{len(self._orders) + 1:04d}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            filled_qty=ZERO,
            filled_avg_price=None,
            status=OrderStatus.NEW if open_now else OrderStatus.ACCEPTED,
            submitted_at=self.now,
            updated_at=self.now,
        )
        working = _Working(order, fills)
        self._orders[order.id] = working
        self._by_client_id[order.client_order_id] = order.id
        if open_now and fills.mode is FillMode.INSTANT:
            self._fill(working, order.qty)
        return working.order

    def _read(self, working: _Working) -> Order:
        """A read of a working order: in partial and delayed modes, reads move it on."""
        order = working.order
        if order.status not in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
            return order
        if not self._clock().is_open:
            return order
        working.reads += 1
        fills = working.fills
        if fills.mode is FillMode.PARTIAL:
            self._fill(working, _partial_target(order.qty, working.reads, fills.steps))
        elif fills.mode is FillMode.INSTANT or (
            fills.mode is FillMode.DELAYED and working.reads > fills.delay_reads
        ):
            self._fill(working, order.qty)
        return working.order

    def _fill(self, working: _Working, target: Decimal) -> None:
        """Fill up to a cumulative `target` at the symbol's price; a fill the account can no
        longer cover cancels the rest of the order instead, as the simulator does."""
        order = working.order
        delta = target - order.filled_qty
        if delta <= 0:
            return
        price = self.prices[order.symbol]
        value = cents(delta * price)
        held = self._held.get(order.symbol)
        if order.side is OrderSide.BUY:
            if value > self.cash:
                self._update(working, status=OrderStatus.CANCELED)
                return
            qty = delta if held is None else held.qty + delta
            cost = delta * price + (ZERO if held is None else held.qty * held.avg_entry_price)
            self._held[order.symbol] = _Holding(qty, (cost / qty).quantize(_FRACTION))
            self.cash -= value
        else:
            if held is None or held.qty < delta:
                self._update(working, status=OrderStatus.CANCELED)
                return
            if held.qty == delta:
                del self._held[order.symbol]
            else:
                held.qty -= delta
            self.cash += value
        paid = (order.filled_avg_price or ZERO) * order.filled_qty + delta * price
        self._update(
            working,
            filled_qty=target,
            filled_avg_price=(paid / target).quantize(_FRACTION),
            status=OrderStatus.FILLED if target == order.qty else OrderStatus.PARTIALLY_FILLED,
        )

    def _update(self, working: _Working, **changes: object) -> None:
        working.order = working.order.model_copy(update={**changes, "updated_at": self.now})

    @staticmethod
    def _sorted(orders: Iterable[Order]) -> list[Order]:
        return sorted(orders, key=lambda o: (o.submitted_at, o.client_order_id))


def _partial_target(qty: Decimal, reads: int, steps: int) -> Decimal:
    """Cumulative filled qty after `reads` of `steps` equal chunks, as the simulator fills:
    whole shares for a whole order, 1e-9 for a fractional one; the last chunk takes the rest."""
    if reads >= steps:
        return qty
    quantum = Decimal(1) if qty == qty.to_integral_value() else _FRACTION
    return (qty * reads / steps).quantize(quantum, rounding=ROUND_DOWN)
