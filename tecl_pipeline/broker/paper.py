"""An in-process paper broker for demo mode: market orders fill at once at the session's price.

Its book lives in one JSON file so that runs in separate processes see the same account,
and every operation holds an exclusive file lock, so two concurrent runs cannot both spend
the same cash or reuse a client order id (C2).
"""

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from tecl_pipeline.broker.models import (
    Account,
    Asset,
    Clock,
    DuplicateClientOrderIdError,
    NotFoundError,
    Order,
    OrderRejectedError,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
)

T = TypeVar("T")


class _Holding(BaseModel):
    qty: Decimal
    avg_entry_price: Decimal


class _Book(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cash: Decimal
    holdings: dict[str, _Holding] = {}
    orders: list[Order] = []


class PaperBroker:
    """Fills market orders in full at `prices[symbol]`; cash account, no margin, no shorting."""

    def __init__(
        self,
        book_path: Path,
        *,
        prices: Mapping[str, Decimal],
        now: Callable[[], datetime],
        starting_cash: Decimal,
        assets: Mapping[str, Asset] | None = None,
    ) -> None:
        self._path = book_path
        self._prices = dict(prices)
        self._now = now
        self._starting_cash = starting_cash
        self._assets = dict(assets or {})

    @property
    def description(self) -> str:
        return f"demo in-process paper broker (book {self._path})"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> _Book:
        if not self._path.exists():
            return _Book(cash=self._starting_cash)
        return _Book.model_validate_json(self._path.read_text())

    def _save(self, book: _Book) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(book.model_dump_json(indent=2))
        os.replace(tmp, self._path)

    def _read(self, fn: Callable[[_Book], T]) -> T:
        with self._locked():
            return fn(self._load())

    def _price(self, symbol: str, book: _Book) -> Decimal:
        if symbol in self._prices:
            return self._prices[symbol]
        return book.holdings[symbol].avg_entry_price

    def get_account(self) -> Account:
        def account(book: _Book) -> Account:
            equity = book.cash + sum(
                (h.qty * self._price(s, book) for s, h in book.holdings.items()), Decimal("0")
            )
            return Account(
                account_number="DEMO",
                currency="USD",
                cash=book.cash,
                equity=equity.quantize(Decimal("0.01")),
                buying_power=book.cash,
            )

        return self._read(account)

    def get_positions(self) -> dict[str, Position]:
        def positions(book: _Book) -> dict[str, Position]:
            return {
                symbol: Position(
                    symbol=symbol,
                    qty=h.qty,
                    avg_entry_price=h.avg_entry_price,
                    current_price=self._price(symbol, book),
                )
                for symbol, h in sorted(book.holdings.items())
            }

        return self._read(positions)

    def get_clock(self) -> Clock:
        """Always open: the demo broker lives at the session's decision time."""
        now = self._now()
        return Clock(timestamp=now, is_open=True, next_open=now, next_close=now)

    def get_order(self, order_id: str) -> Order:
        order = next((o for o in self.list_orders() if o.id == order_id), None)
        if order is None:
            raise NotFoundError(f"order {order_id} not found")
        return order

    def cancel_order(self, order_id: str) -> None:
        """Orders fill at once here, so there is never anything left to cancel."""
        self.get_order(order_id)

    def get_asset(self, symbol: str) -> Asset:
        return self._assets.get(symbol, Asset(symbol=symbol, tradable=True, fractionable=True))

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        matches = self.list_orders(client_order_id)
        return next((o for o in matches if o.client_order_id == client_order_id), None)

    def list_orders(self, client_order_id_prefix: str = "") -> list[Order]:
        def matching(book: _Book) -> list[Order]:
            return [o for o in book.orders if o.client_order_id.startswith(client_order_id_prefix)]

        return self._read(matching)

    def submit_order(self, request: OrderRequest) -> Order:
        with self._locked():
            book = self._load()
            if any(o.client_order_id == request.client_order_id for o in book.orders):
                raise DuplicateClientOrderIdError(
                    f"client_order_id {request.client_order_id!r} must be unique"
                )
            reason = self._rejection(request, book)
            if reason is not None:
                raise OrderRejectedError(f"{request.side} {request.qty} {request.symbol}: {reason}")
            order = self._fill(request, book)
            book.orders.append(order)
            self._save(book)
            return order

    def _rejection(self, request: OrderRequest, book: _Book) -> str | None:
        asset = self.get_asset(request.symbol)
        if not asset.tradable:
            return f"asset {request.symbol} is not tradable"
        if request.symbol not in self._prices:
            return f"no price for {request.symbol}"
        if not asset.fractionable and request.qty != request.qty.to_integral_value():
            return f"asset {request.symbol} is not fractionable"
        held = book.holdings.get(request.symbol)
        if request.side is OrderSide.SELL and (held is None or request.qty > held.qty):
            return "insufficient qty available for order (shorting is not allowed)"
        notional = request.qty * self._prices[request.symbol]
        if request.side is OrderSide.BUY and notional > book.cash:
            return "insufficient buying power"
        return None

    def _fill(self, request: OrderRequest, book: _Book) -> Order:
        price = self._prices[request.symbol]
        notional = (request.qty * price).quantize(Decimal("0.01"))
        held = book.holdings.get(request.symbol, _Holding(qty=Decimal("0"), avg_entry_price=price))
        if request.side is OrderSide.BUY:
            qty = held.qty + request.qty
            avg = (held.qty * held.avg_entry_price + request.qty * price) / qty
            book.holdings[request.symbol] = _Holding(qty=qty, avg_entry_price=avg)
            book.cash -= notional
        else:
            qty = held.qty - request.qty
            if qty == 0:
                del book.holdings[request.symbol]
            else:
                book.holdings[request.symbol] = held.model_copy(update={"qty": qty})
            book.cash += notional
        return Order(
            id=str(uuid.uuid4()),
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            filled_qty=request.qty,
            filled_avg_price=price,
            status=OrderStatus.FILLED,
            submitted_at=self._now(),
        )
