"""The one interface the pipeline trades through. The broker is the source of truth.

Implementations map every transport failure onto the errors in `trading.errors`
(RetryableBrokerError, OutcomeUnknownError, AuthError, OrderRejectedError, ...), and
validate every answer into the values of `trading.models` before returning it (B3, X4).
"""

from datetime import datetime
from typing import Protocol

from tecl_pipeline.trading.models import (
    Account,
    Asset,
    Clock,
    Order,
    OrderRequest,
    Position,
    Trade,
)


class Broker(Protocol):
    @property
    def description(self) -> str:
        """Which broker, endpoint and account kind this is, for the run log (demo/paper/live)."""
        ...

    def get_clock(self) -> Clock: ...

    def get_account(self) -> Account: ...

    def get_positions(self) -> dict[str, Position]: ...

    def get_asset(self, symbol: str) -> Asset: ...

    def latest_trades(self, symbols: tuple[str, ...]) -> dict[str, Trade]:
        """Each symbol's latest trade in the broker's market data (price, time, feed); a
        symbol it does not quote is absent."""
        ...

    def submit_order(self, request: OrderRequest) -> Order:
        """Send an order. Raises DuplicateClientOrderIdError if that id was already used,
        OutcomeUnknownError if the request may have reached the broker without an answer."""
        ...

    def get_order(self, order_id: str) -> Order: ...

    def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    def list_orders(
        self, client_order_id_prefix: str = "", *, submitted_after: datetime | None = None
    ) -> list[Order]:
        """Every order (open and closed) whose client order id starts with the prefix and,
        if `submitted_after` is given, that was submitted after that moment (the broker
        filters, so a listing stays the size of the window, not of the account's history)."""
        ...

    def cancel_order(self, order_id: str) -> None: ...
