"""Turning results into what a person reads in the Dagster UI: markdown tables and figures."""

import math
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from tecl_pipeline.trading.models import Order

CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
# Half-even, as the pipeline itself rounds notionals and prices (core.portfolio
# trade_notional, round_price): a figure shown here is the one journaled, to the cent.


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, empty: str = "none"
) -> MetadataValue:
    """A markdown table, or `empty` when there is no row: a table of bare headers reads as a
    rendering fault. Callers say what is absent ("no orders sent", "no residuals")."""
    body = ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    if not body:
        return MetadataValue.md(empty)
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers), *body]
    return MetadataValue.md("\n".join(lines))


def inline_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> MetadataValue:
    """A table the UI always draws in place: it puts a markdown value of 1,000 characters or
    more behind "[Show Markdown]" (ui-core MetadataEntry.tsx), a table value never. Cells
    are the strings a person reads, already formatted."""
    schema = TableSchema(columns=[TableColumn(name=header, type="string") for header in headers])
    records = [TableRecord(dict(zip(headers, row, strict=True))) for row in rows]
    return MetadataValue.table(records=records, schema=schema)


def money(value: Decimal) -> str:
    """Dollars to the cent with thousands separators: "$100,234.56", "-$1,234.50"; "-" for
    no amount (NaN)."""
    if not value.is_finite():
        return "-"
    cents = value.quantize(CENT, rounding=ROUND_HALF_EVEN)
    # A value that rounds to zero is "$0.00", never "-$0.00".
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def share_price(value: Decimal | float) -> str:
    """A per-share price: to the sub-penny tick (4 places), trailing zeros dropped down to the
    cent, so "$174.45", "$0.1234", an average fill "$174.4512". A float (a close from the
    data) goes through str, never its binary value; NaN (no price) is "-"."""
    if not isinstance(value, Decimal):
        if not math.isfinite(value):
            return "-"
        value = Decimal(str(value))
    if not value.is_finite():
        return "-"
    ticks = value.quantize(SUB_PENNY, rounding=ROUND_HALF_EVEN)
    cents = ticks.quantize(CENT, rounding=ROUND_HALF_EVEN)
    shown = ticks if ticks != cents else cents
    return f"{'-' if shown < 0 else ''}${abs(shown):,}"


def percent(weight: Decimal) -> str:
    return f"{weight * 100:.2f}%"


def signed_money(amount: Decimal) -> str:
    """A P&L: "+$234.56", "-$1,234.50", and "$0.00" for none or less than half a cent (the
    sign goes with the figure shown, never "+$0.00")."""
    shown = money(amount)
    return f"+{shown}" if amount.quantize(CENT, rounding=ROUND_HALF_EVEN) > 0 else shown


def signed_percent(ratio: Decimal) -> str:
    """A return: "+1.23%", "-4.50%", and "0.00%" for one that rounds to none (the sign goes
    with the figure shown, as `signed_money`'s)."""
    shown = percent(ratio)
    return f"+{shown}" if (ratio * 100).quantize(CENT, rounding=ROUND_HALF_EVEN) > 0 else shown


def qty(amount: Decimal) -> str:
    """A share quantity without the broker's trailing zeros: "12", "0.5", "20.123456789"."""
    return f"{amount.normalize():f}"


def order_rows(orders: Iterable[Order]) -> list[tuple[object, ...]]:
    return [
        (
            o.client_order_id,
            o.side.value,
            o.symbol,
            o.qty,
            o.filled_qty,
            share_price(o.filled_avg_price) if o.filled_avg_price is not None else "-",
            o.status.value,
        )
        for o in orders
    ]


ORDER_HEADERS = ("client order id", "side", "symbol", "qty", "filled", "avg price", "status")
