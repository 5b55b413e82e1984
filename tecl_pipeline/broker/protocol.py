"""The one interface the pipeline trades through. The broker is the source of truth."""

from typing import Protocol

from tecl_pipeline.broker.models import Account, Asset, Order, OrderRequest, Position


class Broker(Protocol):
    @property
    def description(self) -> str:
        """Which broker and account kind this is, for the run log (demo, paper or live)."""
        ...

    def get_account(self) -> Account: ...

    def get_positions(self) -> dict[str, Position]: ...

    def get_asset(self, symbol: str) -> Asset: ...

    def submit_order(self, request: OrderRequest) -> Order:
        """Send an order. Raises DuplicateClientOrderIdError if that id was already used."""
        ...

    def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    def list_orders(self, client_order_id_prefix: str = "") -> list[Order]: ...
