"""CSV replay files that cannot be read are a MarketDataError naming the symbol and file
(T1), never a crash from the CSV parser nor an empty history."""

import pytest

from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.marketdata.csv_source import CsvMarketData


@pytest.mark.parametrize(
    "content", [b"", b"\xff\xfe\x00garbage\x81", b'date,adj_close\n"2026-07-31,1\n']
)
def test_an_unreadable_csv_file_names_the_symbol_and_the_file(tmp_path, content):
    (tmp_path / "TECL.csv").write_bytes(content)
    with pytest.raises(MarketDataError, match=r"TECL: .*TECL\.csv") as caught:
        CsvMarketData(tmp_path).latest_session(("TECL",))
    assert "not a readable CSV file" in str(caught.value) or "lacks column" in str(caught.value)


def test_a_folder_without_any_of_the_files_says_which_were_looked_for(tmp_path):
    with pytest.raises(MarketDataError, match=r"none of TECL, SPY has a CSV file in"):
        CsvMarketData(tmp_path).latest_session(("TECL", "SPY"))
