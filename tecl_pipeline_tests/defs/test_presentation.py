"""What a person reads in the UI's metadata: money to the cent, per-share prices at the tick,
a sentence instead of an empty table, and tables the UI draws in place."""

from decimal import Decimal

import pytest
from dagster import TableMetadataValue

from tecl_pipeline.defs.presentation import (
    inline_table,
    markdown_table,
    money,
    qty,
    share_price,
    signed_money,
    signed_percent,
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("100234.56", "$100,234.56"),
        ("-1234.5", "-$1,234.50"),
        ("0", "$0.00"),
        ("1234567.891", "$1,234,567.89"),
        ("7", "$7.00"),
    ],
)
def test_money_is_dollars_to_the_cent_with_thousands_separators(value: str, shown: str) -> None:
    assert money(Decimal(value)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # Half-even, as the pipeline rounds its own notionals: a tie goes to the even cent.
        ("0.125", "$0.12"),
        ("0.135", "$0.14"),
        ("-2.345", "-$2.34"),
        # Below half a cent either way is zero, without a minus sign.
        ("-0.004", "$0.00"),
        ("-0.005", "$0.00"),
    ],
)
def test_money_rounds_half_even_and_never_shows_minus_zero(value: str, shown: str) -> None:
    assert money(Decimal(value)) == shown


def test_money_is_exact_on_amounts_a_float_would_round() -> None:
    # 1.015 is 1.01499999999999990 as a binary float, which a float formatter shows as 1.01.
    assert f"{1.015:.2f}" == "1.01"
    assert money(Decimal("1.015")) == "$1.02"
    assert money(Decimal("12345678901234.565")) == "$12,345,678,901,234.56"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("174.45"), "$174.45"),
        (Decimal("174.4"), "$174.40"),
        (Decimal("1234.5"), "$1,234.50"),
        # An average fill or a price under $1 keeps its sub-penny tick, four places at most.
        (Decimal("174.4512"), "$174.4512"),
        (Decimal("174.45123"), "$174.4512"),
        (Decimal("0.1234"), "$0.1234"),
        # A close from the data (a float) goes through its shortest repr, not its binary value.
        (174.4499969482422, "$174.45"),
        (float("nan"), "-"),
    ],
)
def test_share_price_shows_two_to_four_places(value: Decimal | float, shown: str) -> None:
    assert share_price(value) == shown


def test_an_empty_table_is_the_sentence_its_caller_gives() -> None:
    table = markdown_table(("symbol", "reason"), [], empty="no skipped orders")
    assert table.value == "no skipped orders"


def test_an_empty_table_without_a_sentence_says_none() -> None:
    assert markdown_table(("symbol",), iter(())).value == "none"


def test_a_table_with_rows_has_its_headers_and_every_row() -> None:
    table = markdown_table(("symbol", "qty"), [("TECL", 3), ("SPY", 1)], empty="no rows")
    assert table.value == "| symbol | qty |\n| --- | --- |\n| TECL | 3 |\n| SPY | 1 |"


def test_an_inline_table_is_a_table_value_with_the_headers_as_columns() -> None:
    """The UI shows a table value in place whatever its size (ui-core MetadataEntry.tsx:
    TableMetadataEntry has no "[Show ...]" branch), where a markdown value of 1,000
    characters or more is a link."""
    value = inline_table(("series", "CAGR"), [("strategy", "12.00%"), ("SPY", "9.50%")])
    assert isinstance(value, TableMetadataValue)
    assert [c.name for c in value.schema.columns] == ["series", "CAGR"]
    assert [r.data for r in value.records] == [
        {"series": "strategy", "CAGR": "12.00%"},
        {"series": "SPY", "CAGR": "9.50%"},
    ]


def test_no_amount_is_a_dash():
    assert money(Decimal("NaN")) == "-" and share_price(Decimal("NaN")) == "-"
    assert money(Decimal("1.005")) == "$1.00"  # half-even, as the pipeline rounds


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("234.56", "+$234.56"),
        ("-1234.5", "-$1,234.50"),
        ("0", "$0.00"),
        # The sign goes with the figure shown: never "+$0.00" nor "-$0.00".
        ("0.004", "$0.00"),
        ("-0.004", "$0.00"),
        ("0.005", "$0.00"),
        ("0.006", "+$0.01"),
    ],
)
def test_signed_money_marks_a_gain_the_cents_show(value: str, shown: str) -> None:
    assert signed_money(Decimal(value)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0.0123", "+1.23%"),
        ("-0.045", "-4.50%"),
        ("0", "0.00%"),
        # A gain too small to show is no gain shown: "0.00%", never "+0.00%".
        ("0.00001", "0.00%"),
        ("0.00005", "0.00%"),
        ("0.00006", "+0.01%"),
    ],
)
def test_signed_percent_marks_a_gain_the_figure_shows(value: str, shown: str) -> None:
    assert signed_percent(Decimal(value)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [("12", "12"), ("1.500000000", "1.5"), ("100", "100"), ("20.123456789", "20.123456789")],
)
def test_a_quantity_drops_the_brokers_trailing_zeros_never_shows_an_exponent(
    value: str, shown: str
) -> None:
    assert qty(Decimal(value)) == shown
