"""Turning results into what a person reads in the Dagster UI: markdown tables and figures."""

from collections.abc import Iterable, Sequence
from decimal import Decimal

from dagster import MetadataValue

from tecl_pipeline.trading.models import Order


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> MetadataValue:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return MetadataValue.md("\n".join(lines))


def percent(weight: Decimal) -> str:
    return f"{weight * 100:.2f}%"


def order_rows(orders: Iterable[Order]) -> list[tuple[object, ...]]:
    return [
        (
            o.client_order_id,
            o.side.value,
            o.symbol,
            o.qty,
            o.filled_qty,
            o.filled_avg_price if o.filled_avg_price is not None else "-",
            o.status.value,
        )
        for o in orders
    ]


ORDER_HEADERS = ("client order id", "side", "symbol", "qty", "filled", "avg price", "status")
