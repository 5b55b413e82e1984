"""The broker's book: an account (margin or cash), its positions and orders, and how orders
move through their life on the simulated clock. Not thread-safe; `BrokerSimulator` holds the
lock.

Rules follow Alpaca: an order is "accepted" when sent and fills later (`FillMode.ASYNC`, the
default; a cancel reads "pending_cancel" before it takes); orders sent while the market is
closed wait as "accepted" until the clock reaches their session's open; DAY orders still open
at their session's close expire; `filled_qty` is cumulative; buying power is what open buys do
not already hold of the cash (a cash account) or of a multiple of the excess equity (a margin
account, where a buy may borrow and cash go negative); a market buy is checked at a collar
above the price, a limit buy at its limit; a sell may not exceed the quantity not already held
for other sells, except that on a margin account a sell of a shortable symbol the account does
not hold long opens (or adds to) a short position, checked against buying power at 3% above
the price; a sell beyond a long position is refused, as Alpaca refuses flipping a position in
one order.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from types import MappingProxyType
from typing import Any

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.simulator import market, wire
from tecl_pipeline.simulator.model import (
    ACCEPTED,
    CANCELED,
    EXPIRED,
    FILLED,
    MARKET_BUY_COLLAR,
    NEW,
    PARTIALLY_FILLED,
    PENDING_CANCEL,
    SHORT_SALE_COLLAR,
    STATUS_FORM,
    TIME_IN_FORCE,
    ZERO,
    AccountKind,
    AccountState,
    AssetState,
    FillMode,
    FillPlan,
    Holding,
    SimOrder,
    stable_id,
)
from tecl_pipeline.simulator.persist import Snapshot
from tecl_pipeline.simulator.pricing import PriceBook
from tecl_pipeline.simulator.wire import (
    BAD_REQUEST,
    FORBIDDEN,
    INVALID_PARAMETER,
    NOT_FOUND,
    UNPROCESSABLE,
    ApiError,
    invalid,
)

# Listing venues of the universe's funds; anything else is reported on NYSE Arca.
_EXCHANGES: Mapping[str, str] = MappingProxyType(
    {"TQQQ": "NASDAQ", "SQQQ": "NASDAQ", "UVXY": "BATS"}
)
_WHOLE = Decimal(1)
_FRACTION = Decimal(1).scaleb(-wire.QTY_PLACES)


def _not_found(what: str) -> ApiError:
    return ApiError(404, NOT_FOUND, what)


class Book:
    def __init__(
        self,
        prices: PriceBook,
        calendar: TradingCalendar,
        *,
        now: datetime,
        cash: Decimal,
        symbols: tuple[str, ...],
    ) -> None:
        self._prices = prices
        self._calendar = calendar
        self._symbols = symbols
        self.now = now
        self._opened_at = now
        self.account = AccountState(cash=cash)
        self.assets: dict[str, AssetState] = {s: AssetState(s) for s in symbols}
        self.holdings: dict[str, Holding] = {}
        self.orders: list[SimOrder] = []
        self._by_id: dict[str, SimOrder] = {}
        self._by_client_id: dict[str, SimOrder] = {}
        self.submissions: list[dict[str, Any]] = []
        self.fill_plan = FillPlan()
        self.account_kind = AccountKind.MARGIN
        self.market_buy_collar = MARKET_BUY_COLLAR

    # -- persistence ------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The account as the book file holds it (live records: serialize at once)."""
        return Snapshot(
            opened_at=self._opened_at,
            account=self.account,
            assets=self.assets,
            holdings=self.holdings,
            orders=self.orders,
            submissions=self.submissions,
            split_ratios=self._prices.ratios(),
        )

    def restore(self, snapshot: Snapshot) -> None:
        """Take over an account loaded from the book file; the clock and the fill mode for new
        orders stay this process's own. Assets the file does not know (a symbol new to the
        universe) start with the defaults."""
        self._opened_at = snapshot.opened_at
        self.account = snapshot.account
        self.assets = {s: AssetState(s) for s in self._symbols}
        self.assets.update(snapshot.assets)
        self.holdings = dict(snapshot.holdings)
        self.orders = list(snapshot.orders)
        self._by_id = {o.id: o for o in self.orders}
        self._by_client_id = {o.client_order_id: o for o in self.orders}
        self.submissions = list(snapshot.submissions)
        self._prices.set_ratios(snapshot.split_ratios)

    # -- time and corporate actions ---------------------------------------------------------------

    def set_clock(self, now: datetime) -> None:
        self.now = now
        for order in self.orders:
            if order.is_open:
                self._advance(order)

    def split(self, symbol: str, ratio: Decimal) -> None:
        self._prices.split(symbol, ratio)
        held = self.holdings.get(symbol)
        if held is not None:
            self.holdings[symbol] = Holding(
                qty=held.qty * ratio, avg_entry_price=wire.avg_price(held.avg_entry_price / ratio)
            )

    def price_now(self, symbol: str) -> Decimal | None:
        return self._prices.price(symbol, self._prices.price_session(self.now))

    # -- reads ------------------------------------------------------------------------------------

    def account_json(self) -> dict[str, Any]:
        session = self._prices.price_session(self.now)
        previous = self._calendar.previous_session(session)
        long_value, short_value = self._side_values(session)
        last = sum(self._side_values(previous), ZERO)
        return wire.account_json(
            self.account,
            kind=self.account_kind,
            buying_power=self._buying_power(),
            regt_buying_power=self._buying_power(min(self.account_kind.multiplier, 2)),
            non_marginable_buying_power=self.account.cash - self._reserved(),
            long_market_value=wire.cents(long_value),
            short_market_value=wire.cents(short_value),
            last_equity=wire.cents(self.account.cash + last),
            created_at=self._opened_at,
            balance_asof=previous,
        )

    def asset_json(self, symbol_or_id: str) -> dict[str, Any]:
        asset = self.assets.get(symbol_or_id) or next(
            (a for a in self.assets.values() if stable_id("asset", a.symbol) == symbol_or_id),
            None,
        )
        if asset is None:
            raise _not_found("asset not found")
        return wire.asset_json(asset, _EXCHANGES.get(asset.symbol, "ARCA"))

    def positions_json(self) -> list[dict[str, Any]]:
        return [self._position_json(s, h) for s, h in sorted(self.holdings.items())]

    def position_json(self, symbol: str) -> dict[str, Any]:
        held = self.holdings.get(symbol)
        if held is None:
            raise _not_found("position does not exist")
        return self._position_json(symbol, held)

    def orders_json(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        status = query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise invalid(f"invalid status {status!r}: use open, closed or all")
        limit = wire.parse_int(query.get("limit", "50"), "limit", 1, 500)
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise invalid(f"invalid direction {direction!r}: use asc or desc")
        after = wire.parse_time(query["after"], "after") if query.get("after") else None
        until = wire.parse_time(query["until"], "until") if query.get("until") else None
        symbols = set(wire.symbols_param(query, required=False))
        side = query.get("side")

        def wanted(order: SimOrder) -> bool:
            return (
                (status == "all" or (status == "open") == order.is_open)
                and (after is None or order.created_at > after)
                and (until is None or order.created_at < until)
                and (not symbols or order.symbol in symbols)
                and (side is None or order.side == side)
            )

        chosen = sorted(
            (o for o in self.orders if wanted(o)),
            key=lambda o: (o.created_at, o.seq),
            reverse=direction == "desc",
        )[:limit]
        # Only orders the caller actually sees move on (partial and delayed fills).
        for order in chosen:
            self._observe(order)
        return [self.order_json(o) for o in chosen]

    def read_order(self, order_id: str) -> dict[str, Any]:
        order = self._by_id.get(order_id)
        if order is None:
            raise _not_found("order not found")
        self._observe(order)
        return self.order_json(order)

    def read_order_by_client_id(self, client_order_id: str | None) -> dict[str, Any]:
        if not client_order_id:
            raise invalid("client_order_id is required")
        order = self._by_client_id.get(client_order_id)
        if order is None:
            raise _not_found("order not found")
        self._observe(order)
        return self.order_json(order)

    def order_json(self, order: SimOrder) -> dict[str, Any]:
        expires = self._calendar.close_time(order.session) if order.expires_with_session else None
        return wire.order_json(order, expires_at=expires)

    # -- writes -----------------------------------------------------------------------------------

    def submit(self, payload: object, *, fault: str | None) -> dict[str, Any]:
        """POST /v2/orders; every attempt, accepted or not, lands in `submissions`."""
        try:
            order = self._place(payload)
        except ApiError as exc:
            self.record_submission(payload, exc.status, f"rejected: {exc.message}", None, fault)
            raise
        self.record_submission(payload, 200, order.status, order, fault)
        return self.order_json(order)

    def cancel(self, order_id: str) -> None:
        order = self._by_id.get(order_id)
        if order is None:
            raise _not_found("order not found")
        if not order.is_open:
            raise ApiError(422, UNPROCESSABLE, f'order is already in "{order.status}" state')
        self._request_cancel(order)

    def set_status(self, client_order_id: str, status: str) -> SimOrder:
        """A market event: the open order moves to `status`, any string, as a broker's may
        (Alpaca documents 18, and a server may send one it does not). Its fills stay; only
        the fill modes fill, so `filled` is refused. Only new and partially filled orders
        fill: an order moved elsewhere waits until it is cancelled or expires."""
        order = self._by_client_id.get(client_order_id)
        if order is None:
            raise ValueError(f"no order with client order id {client_order_id!r}")
        if not order.is_open:
            raise ValueError(f"order {client_order_id} is already {order.status}")
        if not STATUS_FORM.match(status):
            raise ValueError(f"status {status!r} is not in the form of partially_filled")
        if status == FILLED:
            raise ValueError("an order fills through /_sim/fills, not by its status")
        if status == CANCELED:
            self._cancel(order, self.now)
        elif status == EXPIRED:
            self._expire(order, self.now)
        else:
            order.status = status
            order.updated_at = self.now
        return order

    def cancel_all(self) -> list[dict[str, Any]]:
        result = []
        for order in self.orders:
            if order.is_open:
                self._request_cancel(order)
                result.append({"id": order.id, "status": 200, "body": self.order_json(order)})
        return result

    def _request_cancel(self, order: SimOrder) -> None:
        """DELETE: at once, or (ASYNC, as Alpaca) `pending_cancel` until the order's next read."""
        if order.plan.mode is FillMode.ASYNC:
            order.status = PENDING_CANCEL
            order.updated_at = self.now
        else:
            self._cancel(order, self.now)

    def record_submission(
        self,
        payload: object,
        status: int,
        outcome: str,
        order: SimOrder | None,
        fault: str | None,
    ) -> None:
        fields = payload if isinstance(payload, Mapping) else {}
        qty = fields.get("qty")
        self.submissions.append(
            {
                "seq": len(self.submissions) + 1,
                "at": wire.utc_time(self.now),
                "client_order_id": fields.get("client_order_id"),
                "symbol": fields.get("symbol"),
                "side": fields.get("side"),
                "qty": None if qty is None else str(qty),
                "time_in_force": fields.get("time_in_force"),
                "http_status": status,
                "outcome": outcome,
                "order_id": None if order is None else order.id,
                "fault": fault,
            }
        )

    # -- the order's life --------------------------------------------------------------------------

    def _place(self, payload: object) -> SimOrder:
        request = _parse_order(payload)
        symbol, side, qty, tif = request.symbol, request.side, request.qty, request.time_in_force
        seq = len(self.orders) + 1
        client_order_id = request.client_order_id or stable_id("client-order", seq)
        if client_order_id in self._by_client_id:
            raise ApiError(422, INVALID_PARAMETER, "client_order_id must be unique")
        asset = self.assets.get(symbol)
        if asset is None:
            raise invalid(f'asset "{symbol}" not found')
        if self.account.trading_blocked:
            raise ApiError(403, FORBIDDEN, "account is not authorized to trade")
        if not asset.tradable:
            raise ApiError(422, UNPROCESSABLE, f'asset "{symbol}" is not tradable')
        if asset.halted:
            raise ApiError(422, UNPROCESSABLE, f'asset "{symbol}" is halted')
        fractional = qty != qty.to_integral_value()
        if fractional and not asset.fractionable:
            raise ApiError(422, UNPROCESSABLE, f'asset "{symbol}" is not fractionable')
        if fractional and tif != "day":
            raise ApiError(422, UNPROCESSABLE, "fractional orders must be DAY orders")
        price = self.price_now(symbol)
        if price is None:
            raise ApiError(422, UNPROCESSABLE, f'no price for "{symbol}" in the market data')
        if side == "sell":
            self._check_sellable(asset, qty, price)
        else:
            cost_basis = wire.cents(qty * self._check_price(price, request.limit_price))
            power = self._buying_power()
            if cost_basis > power:
                raise _insufficient_buying_power(power, cost_basis)

        open_now = market.is_open(self._calendar, self.now)
        order = SimOrder(
            seq=seq,
            id=stable_id("order", seq),
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            qty=qty,
            time_in_force=tif,
            limit_price=request.limit_price,
            # Alpaca answers a POST with `accepted`; the order turns `new` once routed.
            status=NEW if open_now and self.fill_plan.mode is not FillMode.ASYNC else ACCEPTED,
            plan=self.fill_plan,
            session=market.working_session(self._calendar, self.now),
            created_at=self.now,
            updated_at=self.now,
        )
        self.orders.append(order)
        self._by_id[order.id] = order
        self._by_client_id[client_order_id] = order
        if open_now and order.plan.mode is FillMode.IMMEDIATE:
            self._fill(order, order.qty, self.now)
        return order

    def _check_sellable(self, asset: AssetState, qty: Decimal, price: Decimal) -> None:
        """A sell within the long quantity not held for other sells; or, on a margin account
        that holds none of a shortable symbol long, a short sale in whole shares that the
        buying power covers at 3% above the price (Alpaca's check for an opening short)."""
        symbol = asset.symbol
        available = self._qty_available(symbol)
        if qty <= available:
            return
        held = self.holdings.get(symbol)
        existing = ZERO if held is None else held.qty
        if existing <= 0 and self.account_kind.can_short and asset.shortable:
            if qty != qty.to_integral_value():
                raise ApiError(403, FORBIDDEN, "fractional orders cannot be sold short")
            value = _short_sale_value(qty, price)
            power = self._buying_power()
            if value > power:
                raise _insufficient_buying_power(power, value)
            return
        raise ApiError(
            403,
            FORBIDDEN,
            f"insufficient qty available for order "
            f"(requested: {wire.num(qty)}, available: {wire.num(max(available, ZERO))})",
            extra={
                "symbol": symbol,
                "existing_qty": wire.num(existing),
                "held_for_orders": wire.num(existing - available),
                "available": wire.num(max(available, ZERO)),
            },
        )

    def _advance(self, order: SimOrder) -> None:
        """Apply the passage of simulated time to one open order."""
        calendar, now = self._calendar, self.now
        if order.status == ACCEPTED and calendar.open_time(order.session) <= now:
            order.status = NEW
            order.updated_at = calendar.open_time(order.session)
            if order.plan.mode is FillMode.IMMEDIATE:
                self._fill(order, order.qty, min(now, calendar.close_time(order.session)))
        close = calendar.close_time(order.session)
        if order.status == PENDING_CANCEL and close <= now:
            self._cancel(order, close)
        elif order.is_open and close <= now:
            if order.expires_with_session:
                self._expire(order, close)
            else:  # GTC: keeps working in the next session
                order.session = market.working_session(calendar, now)

    def _observe(self, order: SimOrder) -> None:
        """A read of an order: in async, partial and delayed modes, reads are what move it on."""
        if order.status == PENDING_CANCEL:
            order.cancel_reads += 1
            if order.cancel_reads > 1:
                self._cancel(order, self.now)
            return
        in_session = self._calendar.session_for(self.now) == order.session
        if not (in_session and market.is_open(self._calendar, self.now)):
            return
        plan = order.plan
        if order.status == ACCEPTED and plan.mode is FillMode.ASYNC:
            order.status = NEW
            order.updated_at = self.now
            return
        if order.status not in (NEW, PARTIALLY_FILLED):
            return
        order.reads += 1
        if plan.mode is FillMode.ASYNC:
            delay, parts = _async_fill(order.client_order_id, plan)
            if order.reads <= delay:
                return
            target = _partial_target(order.qty, order.reads - delay, parts)
        elif plan.mode is FillMode.PARTIAL:
            target = _partial_target(order.qty, order.reads, plan.steps)
        elif plan.mode is FillMode.NEVER or (
            plan.mode is FillMode.DELAYED and order.reads <= plan.delay_polls
        ):
            return
        else:
            target = order.qty
        self._fill(order, target, self.now)

    def _fill(self, order: SimOrder, target: Decimal, at: datetime) -> None:
        """Fill `order` up to a cumulative `target` at its session's price; cash and the
        position move with the fill. A fill the account can no longer cover (a queued order
        meeting a higher price) cancels the rest of the order instead."""
        delta = target - order.filled_qty
        if delta <= 0:
            return
        price = self._prices.price(order.symbol, order.session)
        held = self.holdings.get(order.symbol)
        if price is None:
            self._cancel(order, at)
            return
        if not order.fills_at(price):
            return  # a limit the market has not reached: it rests until cancelled or expired
        value = wire.cents(delta * price)
        before = ZERO if held is None else held.qty
        if order.side == "buy":
            if value > self._fill_power(order):
                self._cancel(order, at)
                return
            after = before + delta
            self.account.cash -= value
        else:
            # A long position sells down to zero at most; none held, a margin account shorts.
            shorting = before <= 0 and self.account_kind.can_short
            if not shorting and before < delta:
                self._cancel(order, at)
                return
            after = before - delta
            self.account.cash += value
        self._hold(order.symbol, held, after, delta, price)
        order.filled_qty = target
        order.filled_value += delta * price
        order.updated_at = at
        if target == order.qty:
            order.status = FILLED
            order.filled_at = at
        else:
            order.status = PARTIALLY_FILLED

    def _hold(
        self, symbol: str, held: Holding | None, after: Decimal, delta: Decimal, price: Decimal
    ) -> None:
        """The position after a fill of `delta` at `price`: a fill that adds to a position
        (long or short) averages its entry price; one that reduces it keeps it."""
        if after == 0:
            self.holdings.pop(symbol, None)
            return
        if held is None or (held.qty > 0) != (after > 0):
            self.holdings[symbol] = Holding(after, price)
        elif abs(after) > abs(held.qty):
            cost = abs(held.qty) * held.avg_entry_price + delta * price
            self.holdings[symbol] = Holding(after, wire.avg_price(cost / abs(after)))
        else:
            self.holdings[symbol] = Holding(after, held.avg_entry_price)

    @staticmethod
    def _cancel(order: SimOrder, at: datetime) -> None:
        order.status = CANCELED
        order.canceled_at = at
        order.updated_at = at

    @staticmethod
    def _expire(order: SimOrder, at: datetime) -> None:
        order.status = EXPIRED
        order.expired_at = at
        order.updated_at = at

    # -- money ------------------------------------------------------------------------------------

    def _mark(self, symbol: str, session: date, held: Holding) -> Decimal:
        price = self._prices.price(symbol, session)
        return held.avg_entry_price if price is None else price

    def _side_values(self, session: date) -> tuple[Decimal, Decimal]:
        """The long positions' value and the short positions' (negative) at `session`'s
        prices (unrounded)."""
        values = [h.qty * self._mark(s, session, h) for s, h in self.holdings.items()]
        return sum((v for v in values if v > 0), ZERO), sum((v for v in values if v < 0), ZERO)

    def _open(self, side: str, symbol: str | None = None) -> list[SimOrder]:
        return [
            o
            for o in self.orders
            if o.is_open and o.side == side and (symbol is None or o.symbol == symbol)
        ]

    def _reservation(self, order: SimOrder) -> Decimal:
        """What the open buy `order` still holds of the buying power: its remainder at the
        price it was checked at (its limit, or today's price plus the market collar)."""
        price = self.price_now(order.symbol) or ZERO
        return wire.cents(order.remaining * self._check_price(price, order.limit_price))

    def _reserved(self) -> Decimal:
        """What open orders still hold of the buying power: open buys (`_reservation`) and,
        as at Alpaca, open short sales at 3% above the price."""
        buys = sum((self._reservation(order) for order in self._open("buy")), ZERO)
        return buys + self._short_sales_reserved()

    def _short_sales_reserved(self) -> Decimal:
        """The part of each symbol's open sells beyond its long position, at 3% above."""
        selling: dict[str, Decimal] = {}
        for order in self._open("sell"):
            selling[order.symbol] = selling.get(order.symbol, ZERO) + order.remaining
        reserved = ZERO
        for symbol, qty in selling.items():
            held = self.holdings.get(symbol)
            short = qty - max(ZERO if held is None else held.qty, ZERO)
            price = self.price_now(symbol)
            if short > 0 and price is not None:
                reserved += _short_sale_value(short, price)
        return reserved

    def _fill_power(self, order: SimOrder) -> Decimal:
        """What a fill of the buy `order` may cost: the cash (a cash account), or the margin
        buying power with what this order itself holds of it."""
        if self.account_kind is AccountKind.CASH:
            return self.account.cash
        return self._buying_power() + self._reservation(order)

    def _buying_power(self, multiplier: int | None = None) -> Decimal:
        """Cash (a cash account), or the multiplier's share of the equity less the gross
        market value of the positions (margin, Reg T: 2 x; a PDT account 4 x), less what
        open buys still need. `multiplier`: another than the account's (its Reg T figure)."""
        multiplier = self.account_kind.multiplier if multiplier is None else multiplier
        power = self.account.cash
        if multiplier > 1:
            long, short = self._side_values(self._prices.price_session(self.now))
            power = wire.cents(multiplier * (power + long + short) - long + short)
        return power - self._reserved()

    def _check_price(self, price: Decimal, limit_price: Decimal | None) -> Decimal:
        """The price a buy is checked at against buying power: its limit, or at the market
        the price plus the collar (Alpaca's)."""
        return price * (1 + self.market_buy_collar) if limit_price is None else limit_price

    def _qty_available(self, symbol: str) -> Decimal:
        held = self.holdings.get(symbol)
        held_qty = ZERO if held is None else held.qty
        return held_qty - sum((o.remaining for o in self._open("sell", symbol)), ZERO)

    def _position_json(self, symbol: str, held: Holding) -> dict[str, Any]:
        session = self._prices.price_session(self.now)
        return wire.position_json(
            symbol,
            held,
            exchange=_EXCHANGES.get(symbol, "ARCA"),
            price=self._mark(symbol, session, held),
            lastday_price=self._mark(symbol, self._calendar.previous_session(session), held),
            qty_available=self._qty_available(symbol),
        )


def _short_sale_value(qty: Decimal, price: Decimal) -> Decimal:
    """What a short sale of `qty` holds of the buying power: at 3% above the price, as
    Alpaca checks an opening short (above the ask)."""
    return wire.cents(qty * price * (1 + SHORT_SALE_COLLAR))


def _insufficient_buying_power(power: Decimal, cost_basis: Decimal) -> ApiError:
    """Alpaca's 403 for an order the buying power does not cover, with both figures."""
    return ApiError(
        403,
        FORBIDDEN,
        "insufficient buying power",
        extra={"buying_power": wire.money(max(power, ZERO)), "cost_basis": wire.money(cost_basis)},
    )


@dataclass(frozen=True)
class _OrderRequest:
    symbol: str
    side: str
    qty: Decimal
    time_in_force: str
    client_order_id: str | None
    limit_price: Decimal | None


def _parse_order(payload: object) -> _OrderRequest:
    """The body of POST /v2/orders, checked field by field as Alpaca does (422 naming it)."""
    if not isinstance(payload, Mapping):
        raise ApiError(400, BAD_REQUEST, "request body format is invalid")
    symbol = payload.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise invalid("symbol is required")
    side = payload.get("side")
    if side not in ("buy", "sell"):
        raise invalid("side is required" if side is None else f"invalid side {side!r}")
    kind = payload.get("type", payload.get("order_type"))
    if kind is None:
        raise invalid("type is required")
    if kind not in ("market", "limit"):
        raise invalid(f"the simulator accepts market and limit orders only, not type {kind!r}")
    raw_limit = payload.get("limit_price")
    if kind == "limit" and raw_limit is None:
        raise invalid("limit_price is required for limit orders")
    if kind == "market" and raw_limit is not None:
        raise invalid("limit_price is only for limit orders")
    limit_price = None if raw_limit is None else wire.parse_price(raw_limit)
    if payload.get("notional") is not None:
        raise invalid("the simulator accepts orders by qty only, not by notional")
    if payload.get("order_class") not in (None, "", "simple"):
        raise invalid("the simulator accepts simple orders only")
    if payload.get("extended_hours"):
        raise invalid('only type="limit" is allowed for extended hours orders')
    qty = wire.parse_qty(payload.get("qty"))
    tif = payload.get("time_in_force")
    if tif is None:
        raise invalid("time_in_force is required")
    if tif not in TIME_IN_FORCE:
        raise invalid(f"invalid time_in_force {tif!r}")
    client_order_id = payload.get("client_order_id")
    if client_order_id is not None and (
        not isinstance(client_order_id, str) or len(client_order_id) > 128
    ):
        raise invalid("client_order_id must be a string of at most 128 characters")
    return _OrderRequest(symbol, side, qty, tif, client_order_id or None, limit_price)


def _async_fill(client_order_id: str, plan: FillPlan) -> tuple[int, int]:
    """An ASYNC order's reads before its first fill (0 to `plan.delay_polls`) and its parts
    (1 to `plan.steps`), drawn from its client order id: the same order fills the same way
    in every run."""
    draw = random.Random(f"async-fill/{client_order_id}")
    return draw.randint(0, plan.delay_polls), draw.randint(1, plan.steps)


def _partial_target(qty: Decimal, reads: int, steps: int) -> Decimal:
    """Cumulative filled qty after `reads` of `steps` equal chunks: whole shares for a whole
    order, 1e-9 for a fractional one; the last chunk takes the remainder."""
    if reads >= steps:
        return qty
    quantum = _WHOLE if qty == qty.to_integral_value() else _FRACTION
    return (qty * reads / steps).quantize(quantum, rounding=ROUND_DOWN)
