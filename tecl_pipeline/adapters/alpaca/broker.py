"""The Alpaca adapter: the `Broker` protocol on alpaca-py's `TradingClient`.

The adapter is split by seam: `transport` (timeouts, the one retry policy, credentials
refresh, masking of what a server echoes, endpoint checks), `errors` (HTTP and API
failures as the project's errors), `schema` (Alpaca's wire format and the neutral models)
and this module, the client, which knows what each call means:

- an order whose acknowledgement was lost is looked up by its client order id before
  anything else, and resent only with the same id (B5);
- a cancel whose answer was lost is asked again (it is idempotent), and reported as of
  unknown outcome if it never is answered;
- every listing of orders is paged through completely, or fails (B3).
"""

import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from alpaca.common.enums import BaseURL, Sort
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from tecl_pipeline.adapters.alpaca.market_data import AlpacaMarketData
from tecl_pipeline.adapters.alpaca.schema import (
    account_from_alpaca,
    asset_from_alpaca,
    check_symbol,
    clock_from_alpaca,
    expect_list,
    expect_object,
    order_from_alpaca,
    order_request_to_alpaca,
    pick,
    position_from_alpaca,
    timestamp_from_alpaca,
)
from tecl_pipeline.adapters.alpaca.transport import AlpacaService, trading_endpoint
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.config.settings import DataFeed
from tecl_pipeline.trading.credentials import CredentialsProvider
from tecl_pipeline.trading.errors import (
    BrokerError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    MalformedResponseError,
    NotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    RetryableBrokerError,
)
from tecl_pipeline.trading.models import (
    Account,
    Asset,
    Clock,
    Order,
    OrderRequest,
    Position,
    Trade,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

ORDERS_PAGE_LIMIT = 500  # Alpaca's maximum for GET /v2/orders
MAX_ORDER_PAGES = 1_000  # a guard against a server that keeps paging forever


@dataclass
class _SubmitState:
    """What one submit_order call knows about whether its order may exist at the broker."""

    maybe_sent: bool = False  # a POST may have landed and no lookup has ruled it out since
    ever_unknown: bool = False  # some POST of this call had an unknown outcome


class AlpacaBroker(AlpacaService[TradingClient]):
    """`Broker` over Alpaca's trading REST API (paper, live, or a compatible simulator)."""

    def __init__(
        self,
        credentials: CredentialsProvider,
        *,
        paper: bool,
        url: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen, so sharing is safe
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        label: str = "",
        data_url: str | None = None,
        data_feed: DataFeed | str = DataFeed.IEX,
    ) -> None:
        self._label = label
        api_url = trading_endpoint(url, paper=paper)
        # Latest trades come from the broker's market data: Alpaca's data API, or, when the
        # trading endpoint is overridden (a simulator serves both), that same server.
        self._quotes_args: dict[str, Any] = {
            "credentials": credentials,
            "url": data_url if data_url is not None else (url or BaseURL.DATA.value),
            "timeout": timeout,
            "retry": retry,
            "sleep": sleep,
            "rng": rng,
            "feed": data_feed,
        }
        self._quotes: AlpacaMarketData | None = None
        self._paper = paper
        super().__init__(
            api_url,
            functools.partial(TradingClient, paper=paper),
            credentials,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            rng=rng,
        )

    @property
    def description(self) -> str:
        """Which account kind and endpoint, e.g. for the run log; `label` says what is behind
        the endpoint when it is not Alpaca itself (the demo's embedded simulator)."""
        where = f"Alpaca {'PAPER' if self._paper else 'LIVE'} API at {self._url}"
        return f"{self._label}: {where}" if self._label else where

    def __enter__(self) -> "AlpacaBroker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(
        self, endpoint: str, call: Callable[[TradingClient], object], parse: Callable[[Any], T]
    ) -> T:
        return self._conn.read(endpoint, call, parse)

    # -- reads ----------------------------------------------------------------------------

    def get_clock(self) -> Clock:
        endpoint = "GET /v2/clock"
        return self._read(
            endpoint, lambda c: c.get_clock(), lambda b: clock_from_alpaca(b, endpoint)
        )

    def get_account(self) -> Account:
        endpoint = "GET /v2/account"
        return self._read(
            endpoint, lambda c: c.get_account(), lambda b: account_from_alpaca(b, endpoint)
        )

    def get_positions(self) -> dict[str, Position]:
        endpoint = "GET /v2/positions"

        def parse(body: object) -> dict[str, Position]:
            positions: dict[str, Position] = {}
            for item in expect_list(body, endpoint):
                position = position_from_alpaca(item, endpoint)
                if position.symbol in positions:
                    raise MalformedResponseError(f"{endpoint}: {position.symbol} listed twice")
                positions[position.symbol] = position
            return positions

        return self._read(endpoint, lambda c: c.get_all_positions(), parse)

    def get_asset(self, symbol: str) -> Asset:
        endpoint = f"GET /v2/assets/{check_symbol(symbol)}"

        def parse(body: object) -> Asset:
            asset = asset_from_alpaca(body, endpoint)
            if asset.symbol != symbol:
                raise MalformedResponseError(f"{endpoint}: answered for {asset.symbol!r}")
            return asset

        return self._read(endpoint, lambda c: c.get_asset(symbol), parse)

    def latest_trades(self, symbols: tuple[str, ...]) -> dict[str, Trade]:
        """The latest trade per symbol the broker quotes (GET /v2/stocks/trades/latest), read
        with the same credentials, timeout and retry policy as the trading calls."""
        if self._quotes is None:
            self._quotes = AlpacaMarketData(**self._quotes_args)
        return self._quotes.latest_trades(symbols)

    def close(self) -> None:
        if self._quotes is not None:
            self._quotes.close()
            self._quotes = None
        super().close()

    def get_order(self, order_id: str) -> Order:
        endpoint = f"GET /v2/orders/{order_id}"

        def parse(body: object) -> Order:
            order = order_from_alpaca(body, endpoint)
            if order.id.lower() != order_id.lower():
                raise MalformedResponseError(f"{endpoint}: answered with order {order.id!r}")
            return order

        # alpaca-py validates the id as a UUID (ValueError otherwise) before it builds the path.
        return self._read(endpoint, lambda c: c.get_order_by_id(order_id), parse)

    def _lookup_once(self, client_order_id: str) -> Order | None:
        """One lookup by client order id, no retry; None when the broker has no such order."""
        endpoint = f"GET /v2/orders:by_client_order_id?client_order_id={client_order_id}"

        def parse(body: object) -> Order:
            order = order_from_alpaca(body, endpoint)
            if order.client_order_id != client_order_id:
                raise MalformedResponseError(
                    f"{endpoint}: answered with client order id {order.client_order_id!r}"
                )
            return order

        try:
            return self._conn.read_once(
                endpoint, lambda c: c.get_order_by_client_id(client_order_id), parse
            )
        except NotFoundError:
            return None

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return self._conn.with_auth(
            lambda: self._conn.retrying(lambda: self._lookup_once(client_order_id))
        )

    def list_orders(
        self, client_order_id_prefix: str = "", *, submitted_after: datetime | None = None
    ) -> list[Order]:
        """Every order whose client order id starts with the prefix (and, if given, that was
        submitted after `submitted_after`: Alpaca's `after`, exclusive), oldest first.

        Alpaca pages GET /v2/orders by time only (limit <= 500, `until` exclusive, newest
        first). Each next page asks until just after the oldest time seen, so orders that
        share that timestamp are not skipped; the overlap is removed by order id. A full
        page of one single timestamp cannot be paged past without possibly skipping orders:
        that is an error, not a silently short list.
        """
        endpoint = "GET /v2/orders"
        seen: dict[str, Order | None] = {}
        until: datetime | None = None

        def parse(body: object) -> list[tuple[str, datetime, Order | None]]:
            # Only our orders are validated: a foreign order (a notional one, say, with no
            # qty) must not make our own history unreadable.
            page = []
            for item in expect_list(body, endpoint):
                data = expect_object(item, endpoint)
                fields = pick(data, endpoint, ("id", "client_order_id", "submitted_at"))
                if not isinstance(fields["id"], str) or not isinstance(
                    fields["client_order_id"], str
                ):
                    raise MalformedResponseError(f"{endpoint}: order id is not a string")
                stamp = timestamp_from_alpaca(fields["submitted_at"], "submitted_at", endpoint)
                ours = fields["client_order_id"].startswith(client_order_id_prefix)
                page.append(
                    (fields["id"], stamp, order_from_alpaca(data, endpoint) if ours else None)
                )
            return page

        for _ in range(MAX_ORDER_PAGES):
            limit = ORDERS_PAGE_LIMIT
            request = GetOrdersRequest(
                status=QueryOrderStatus.ALL,
                limit=limit,
                direction=Sort.DESC,
                after=submitted_after,
                until=until,
            )
            page = self._read(endpoint, lambda c, r=request: c.get_orders(r), parse)
            stamps = [stamp for _, stamp, _ in page]
            for order_id, _, order in page:
                seen.setdefault(order_id, order)
            if len(page) < limit:
                break
            if min(stamps) == max(stamps):
                raise BrokerError(
                    f"{endpoint}: {limit} orders share submitted_at {stamps[0].isoformat()}; "
                    "paging by time cannot list every order"
                )
            until = min(stamps) + timedelta(microseconds=1)
        else:
            raise MalformedResponseError(
                f"{endpoint}: still paging after {MAX_ORDER_PAGES} pages of {ORDERS_PAGE_LIMIT}"
            )
        orders = [order for order in seen.values() if order is not None]
        return sorted(orders, key=lambda o: (o.submitted_at, o.client_order_id))

    # -- writes ---------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> Order:
        """POST once; when the answer is lost, find out whether the order landed (B5).

        After a timeout, dropped connection, 5xx or garbled answer, the order is looked up
        by its client order id before anything else: found -> that is the answer; not
        found -> resent with the same id, which the broker refuses if the first did land
        (then the order is looked up and returned). A 429 was not processed: wait, resend.
        Everything is bounded by the retry policy; if the outcome is still unknown at the
        end, OutcomeUnknownError says so. A new client order id is never made up here.
        """
        state = _SubmitState()
        endpoint = "POST /v2/orders"
        try:
            return self._conn.with_auth(
                lambda: self._conn.retrying(lambda: self._submit_attempt(request, state))
            )
        except (RetryableBrokerError, MalformedResponseError) as exc:
            # Still unsure whether an earlier POST landed: that, not the last symptom, is
            # what the caller must act on.
            if state.maybe_sent:
                raise OutcomeUnknownError(
                    f"{endpoint} {request.client_order_id}: the order may or may not exist at "
                    f"the broker; gave up finding out ({exc}). Look it up by client order id "
                    "before sending it again"
                ) from exc
            raise

    def _submit_attempt(self, request: OrderRequest, state: _SubmitState) -> Order:
        endpoint = "POST /v2/orders"
        if state.maybe_sent:
            found = self._lookup_once(request.client_order_id)
            if found is not None:
                log.info("order %s found after a lost answer", request.client_order_id)
                return self._check_echo(found, request, endpoint)
            state.maybe_sent = False  # ruled out: sending again cannot duplicate it
        payload = order_request_to_alpaca(request)
        try:
            body = self._conn.once(endpoint, "submit", lambda c: c.post("/orders", payload))
            order = order_from_alpaca(body, endpoint)
        except DuplicateClientOrderIdError:
            if state.ever_unknown:
                # An earlier POST of this very call landed after all.
                found = self._lookup_once(request.client_order_id)
                if found is not None:
                    return self._check_echo(found, request, endpoint)
            raise
        except (OutcomeUnknownError, BrokerUnavailableError) as exc:
            state.maybe_sent = state.ever_unknown = True
            if isinstance(exc, RetryableBrokerError):
                raise
            # Retryable for the policy: the next attempt starts with the lookup.
            raise BrokerUnavailableError(str(exc)) from exc
        except MalformedResponseError:
            # The broker answered, but not readably: the order may exist behind it.
            state.maybe_sent = state.ever_unknown = True
            found = self._lookup_once(request.client_order_id)
            state.maybe_sent = False
            if found is not None:
                return self._check_echo(found, request, endpoint)
            raise
        return self._check_echo(order, request, endpoint)

    @staticmethod
    def _check_echo(order: Order, request: OrderRequest, endpoint: str) -> Order:
        if (order.client_order_id, order.symbol, order.side, order.limit_price) != (
            request.client_order_id,
            request.symbol,
            request.side,
            request.limit_price,
        ) or order.qty != request.qty:
            limit = f" limit {request.limit_price}" if request.limit_price is not None else ""
            theirs = f" limit {order.limit_price}" if order.limit_price is not None else ""
            raise MalformedResponseError(
                f"{endpoint}: the broker's order {order.client_order_id} ({order.side} "
                f"{order.qty} {order.symbol}{theirs}) does not match the request "
                f"{request.client_order_id} ({request.side} {request.qty} {request.symbol}{limit})"
            )
        return order

    def cancel_order(self, order_id: str) -> None:
        """Cancel; an order that can no longer be canceled (filled, already canceled) is
        not an error: the caller reads the order for its final state."""
        endpoint = f"DELETE /v2/orders/{order_id}"
        state = _SubmitState()

        def attempt() -> None:
            try:
                self._conn.once(endpoint, "cancel", lambda c: c.cancel_order_by_id(order_id))
            except OrderRejectedError as exc:
                log.info("order %s not cancelable (already final?): %s", order_id, exc)
            except OutcomeUnknownError as exc:
                # Cancel is idempotent: asking again is safe.
                state.maybe_sent = True
                raise BrokerUnavailableError(str(exc)) from exc
            except BrokerUnavailableError:
                state.maybe_sent = True
                raise

        try:
            self._conn.with_auth(lambda: self._conn.retrying(attempt))
        except RetryableBrokerError as exc:
            if state.maybe_sent:
                raise OutcomeUnknownError(
                    f"{endpoint}: the cancel may or may not have happened ({exc})"
                ) from exc
            raise
