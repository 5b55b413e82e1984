"""Alpaca market data bodies the simulator never sends: every shape and content problem is
an error naming the endpoint (B3, X4) or the symbol and date (T1), never data.

The real alpaca-py StockHistoricalDataClient reads scripted answers from a loopback server
(canned_http); no retry policy is involved (one attempt, no sleeping).
"""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tecl_pipeline.adapters.alpaca import market_data as alpaca_source
from tecl_pipeline.adapters.alpaca.market_data import AlpacaMarketData
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.core.errors import MarketDataError
from tecl_pipeline.trading.errors import MalformedResponseError
from tecl_pipeline_tests.adapters.alpaca import canned_http
from tecl_pipeline_tests.adapters.alpaca.adapter_helpers import sim_credentials
from tecl_pipeline_tests.adapters.alpaca.canned_http import Canned

canned = canned_http.canned

BARS = "/v2/stocks/bars"
TRADES = "/v2/stocks/trades/latest"
DAY = date(2026, 11, 24)
STAMP = "2026-11-24T05:00:00Z"  # midnight New York: the bar of session 2026-11-24
NOW = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"nothing here is retried, yet a wait of {seconds} s was asked")


def source(url: str, **options) -> AlpacaMarketData:
    return AlpacaMarketData(
        sim_credentials(),
        url=url,
        timeout=5.0,
        retry=RetryPolicy(max_attempts=1),
        sleep=no_sleep,
        **options,
    )


def bars(**by_symbol) -> dict:
    return {"bars": by_symbol, "next_page_token": None}


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        ({"bars": [1], "next_page_token": None}, MalformedResponseError, "not an object keyed"),
        (bars(QQQ=[]), MalformedResponseError, "unrequested symbol 'QQQ'"),
        (bars(SPY={"t": STAMP, "c": 1}), MalformedResponseError, "bars of SPY are not a list"),
        (bars(SPY=[{"t": STAMP}]), MalformedResponseError, "SPY bar lacks 't' or 'c'"),
        (bars(SPY=[{"t": "yesterday", "c": 1}]), MalformedResponseError, "is not a timestamp"),
        (bars(SPY=[{"t": "2026-11-24T05:00:00", "c": 1}]), MalformedResponseError, "timestamp"),
        (bars(SPY=[{"t": STAMP, "c": "101.5"}]), MalformedResponseError, "is not a number"),
        (bars(SPY=[{"t": STAMP, "c": True}]), MalformedResponseError, "is not a number"),
        (bars(SPY=[{"t": STAMP, "c": 0}]), MarketDataError, "SPY: close 0.0 on 2026-11-24"),
        (bars(SPY=[{"t": STAMP, "c": -3.5}]), MarketDataError, "not a positive number"),
        (
            bars(SPY=[{"t": STAMP, "c": 100.0}, {"t": "2026-11-24T15:00:00Z", "c": 101.0}]),
            MarketDataError,
            "SPY: two daily bars for 2026-11-24",
        ),
        ({"bars": {"SPY": []}}, MalformedResponseError, "lacks 'next_page_token'"),
        ({"bars": {"SPY": []}, "next_page_token": ""}, MalformedResponseError, "bad or repeated"),
        ({"bars": {"SPY": []}, "next_page_token": 7}, MalformedResponseError, "bad or repeated"),
    ],
)
def test_a_bad_bars_body_is_an_error_never_data(canned, body, error, match):
    canned.answer("GET", BARS, Canned(body))
    with pytest.raises(error, match=match) as caught:
        source(canned.url).closes(("SPY",), DAY)
    if error is MalformedResponseError:
        assert "GET /v2/stocks/bars" in str(caught.value)


def test_a_page_token_seen_before_stops_the_paging(canned):
    """B3: a server that hands back an earlier token would page forever: refused."""
    page = {"bars": {"SPY": []}, "next_page_token": "again"}
    canned.answer("GET", BARS, Canned(page))
    with pytest.raises(MalformedResponseError, match="repeated next_page_token"):
        source(canned.url).closes(("SPY",), DAY)
    assert len(canned.requests("GET", BARS)) == 2
    assert canned.requests("GET", BARS)[1].query["page_token"] == ["again"]


def test_a_server_that_never_stops_paging_is_cut_off(canned, monkeypatch):
    """B3: fresh tokens forever are still bounded by MAX_BAR_PAGES."""
    monkeypatch.setattr(alpaca_source, "MAX_BAR_PAGES", 3)
    count = iter(range(100))
    canned.answer(
        "GET", BARS, lambda seen: Canned({"bars": None, "next_page_token": f"t{next(count)}"})
    )
    with pytest.raises(MalformedResponseError, match="still paging after 3 pages"):
        source(canned.url).closes(("SPY",), DAY)
    assert len(canned.requests("GET", BARS)) == 3


def test_no_bars_at_all_is_a_market_data_error_naming_the_symbols(canned):
    """T1: Alpaca's null `bars` (no symbol has data) is no history: said, not an empty
    frame; the same for the latest session."""
    canned.answer("GET", BARS, Canned({"bars": None, "next_page_token": None}))
    data = source(canned.url, now=lambda: NOW)
    with pytest.raises(MarketDataError, match="no daily bars for SPY, TECL"):
        data.closes(("SPY", "TECL"), DAY)
    with pytest.raises(MarketDataError, match="no daily bars for any of SPY, TECL since"):
        data.latest_session(("SPY", "TECL"))


def test_the_feed_is_asked_for_on_bars_and_trades(canned):
    """R4: a configured feed (iex, sip) goes on every data request; the description says it."""
    canned.answer("GET", BARS, Canned(bars(SPY=[{"t": STAMP, "c": 101.25}])))
    canned.answer("GET", TRADES, Canned({"trades": {"SPY": {"p": 101.5, "t": STAMP}}}))
    data = source(canned.url, feed="iex")

    assert data.closes(("SPY",), DAY)["SPY"].tolist() == [101.25]
    assert data.latest_prices(("SPY",)) == {"SPY": Decimal("101.5")}
    assert canned.requests("GET", BARS)[0].query["feed"] == ["iex"]
    assert canned.requests("GET", TRADES)[0].query["feed"] == ["iex"]
    assert canned.requests("GET", BARS)[0].query["adjustment"] == ["all"]
    assert "feed iex" in data.description


@pytest.mark.parametrize(
    ("trade", "error", "match"),
    [
        ({"t": STAMP}, MalformedResponseError, "SPY trade lacks its price 'p' or time 't'"),
        ({"p": 101.5}, MalformedResponseError, "SPY trade lacks its price 'p' or time 't'"),
        ({"p": "101", "t": STAMP}, MalformedResponseError, "SPY trade price is not a number"),
        ({"p": 0, "t": STAMP}, MarketDataError, "SPY: latest trade price 0.0 is not positive"),
        ({"p": -1.5, "t": STAMP}, MarketDataError, "is not positive"),
        (
            {"p": 101.5, "t": "yesterday"},
            MalformedResponseError,
            "the SPY trade's time 'yesterday' is not a timestamp",
        ),
        (
            {"p": 101.5, "t": "2026-11-24T15:45:00"},
            MalformedResponseError,
            "is not a timestamp",
        ),
    ],
)
def test_a_bad_latest_trade_is_an_error_never_a_price(canned, trade, error, match):
    """B3, T1: a trade without its price or an aware time confirms nothing."""
    canned.answer("GET", TRADES, Canned({"trades": {"SPY": trade}}))
    with pytest.raises(error, match=match):
        source(canned.url).latest_prices(("SPY",))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.closes((), DAY), "no symbols requested"),
        (lambda s: s.latest_prices(("SPY", "SPY")), "symbols requested twice"),
        (lambda s: s.closes(("SPY",), date(1999, 12, 31)), "is before start"),
    ],
)
def test_impossible_requests_are_refused_before_any_request(canned, call, match):
    with pytest.raises(ValueError, match=match):
        call(source(canned.url))
    assert canned.seen == []


def test_a_lookback_of_less_than_a_day_is_refused(canned):
    with pytest.raises(ValueError, match="lookback_days must be >= 1, got 0"):
        source(canned.url, lookback_days=0)
