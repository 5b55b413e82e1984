"""The simulator's market data through the real alpaca-py StockHistoricalDataClient: adjusted
daily bars (paginated), latest trades, and splits that keep adjusted history consistent."""

# The simulator fixtures are imported below; pytest injects them into tests by name.
# ruff: noqa: F811

import base64
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.error import HTTPError

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment
from alpaca.data.models import Bar, BarSet, Trade
from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
from alpaca.trading.requests import MarketOrderRequest

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.marketdata.demo import DEMO_START, DemoMarketData
from tecl_pipeline_tests.simulator.simulator_fixtures import (  # noqa: F401 (fixtures)
    DAILY,
    SIM_SESSION,
    amount,
    data_client,
    set_sim_clock,
    sim_admin,
    sim_calendar,
    sim_state,
    simulator,
    trading_client,
)

# These tests are about market data, not an order's life:
# orders fill in the POST here.
pytestmark = pytest.mark.instant_fills


HEADERS = {"APCA-API-KEY-ID": "sim-key", "APCA-API-SECRET-KEY": "sim-secret"}


def daily(symbols, start=None, end=None, **extra) -> StockBarsRequest:
    return StockBarsRequest(
        symbol_or_symbols=symbols,
        timeframe=DAILY,
        start=start,
        end=end,
        adjustment=Adjustment.ALL,
        **extra,
    )


def raw_bars(url: str, **params) -> requests.Response:
    query = {"timeframe": "1Day", "adjustment": "all", "feed": "iex", **params}
    return requests.get(f"{url}/v2/stocks/bars", params=query, headers=HEADERS, timeout=5)


def demo_closes(sim_calendar, symbols, through=SIM_SESSION):
    moment = sim_calendar.decision_time(SIM_SESSION)
    return DemoMarketData(sim_calendar, now=lambda: moment).closes(symbols, through)


def test_bars_parse_and_equal_the_market_data(simulator, sim_calendar):
    barset = data_client(simulator.url).get_stock_bars(daily(["SPY", "TECL"], date(2026, 1, 1)))
    assert isinstance(barset, BarSet)
    expected = demo_closes(sim_calendar, ("SPY", "TECL")).loc["2026-01-01":]
    for symbol in ("SPY", "TECL"):
        bars = barset.data[symbol]
        assert all(isinstance(b, Bar) for b in bars)
        assert [b.close for b in bars] == list(expected[symbol])
        assert [b.timestamp.astimezone(EXCHANGE_TZ).date() for b in bars] == [
            d.date() for d in expected.index
        ]
    last = barset.data["TECL"][-1]
    assert last.timestamp == datetime(2026, 11, 24, tzinfo=EXCHANGE_TZ)  # midnight New York
    assert last.open == last.high == last.low == last.close == last.vwap
    assert last.volume > 0 and last.trade_count is not None and last.trade_count > 0


def test_bars_are_stamped_midnight_new_york_in_utc(simulator):
    answer = raw_bars(simulator.url, symbols="SPY", start="2026-07-31", end="2026-07-31")
    assert answer.status_code == 200
    body = answer.json()
    assert body["bars"]["SPY"][0]["t"] == "2026-07-31T04:00:00Z"  # EDT
    assert body["next_page_token"] is None
    winter = raw_bars(simulator.url, symbols="SPY", start="2026-11-24").json()
    assert winter["bars"]["SPY"][0]["t"] == "2026-11-24T05:00:00Z"  # EST


def test_bars_end_with_the_clocks_session(simulator):
    """T1: the feed has no bar beyond the session the clock is in (no look-ahead)."""
    client = data_client(simulator.url)
    bars = client.get_stock_bars(daily("SPY", date(2026, 11, 1), date(2026, 12, 31))).data["SPY"]
    assert bars[-1].timestamp.astimezone(EXCHANGE_TZ).date() == SIM_SESSION
    # Before the next session's open, the latest bar is still the previous session's.
    set_sim_clock(simulator.url, datetime(2026, 11, 25, 8, tzinfo=EXCHANGE_TZ))
    bars = client.get_stock_bars(daily("SPY", date(2026, 11, 1))).data["SPY"]
    assert bars[-1].timestamp.astimezone(EXCHANGE_TZ).date() == SIM_SESSION


def test_default_window_is_the_current_day(simulator):
    body = raw_bars(simulator.url, symbols="SPY,TECL").json()
    assert {s: len(b) for s, b in body["bars"].items()} == {"SPY": 1, "TECL": 1}


@pytest.mark.parametrize("adjustment", [Adjustment.RAW, Adjustment.SPLIT, None])
def test_only_adjusted_bars_are_served(simulator, adjustment):
    """X2: the simulator refuses to serve unadjusted history (Alpaca's default is raw)."""
    request = StockBarsRequest(symbol_or_symbols="SPY", timeframe=DAILY, adjustment=adjustment)
    with pytest.raises(APIError) as caught:
        data_client(simulator.url).get_stock_bars(request)
    assert caught.value.status_code == 422
    assert "adjustment=all" in caught.value.message


def test_only_daily_bars_are_served(simulator):
    answer = raw_bars(simulator.url, symbols="SPY", timeframe="1Hour")
    assert answer.status_code == 422 and "1Day" in answer.json()["message"]


def test_pagination_follows_next_page_token(simulator):
    first = raw_bars(simulator.url, symbols="TECL,SPY", start="2026-11-01", limit=7).json()
    assert sum(len(b) for b in first["bars"].values()) == 7
    assert list(first["bars"]) == ["SPY"]  # ordered by symbol, then time
    collected = {s: list(b) for s, b in first["bars"].items()}
    token = first["next_page_token"]
    pages = 1
    while token:
        page = raw_bars(
            simulator.url, symbols="TECL,SPY", start="2026-11-01", limit=7, page_token=token
        ).json()
        for symbol, bars in page["bars"].items():
            collected.setdefault(symbol, []).extend(bars)
        token = page["next_page_token"]
        pages += 1
    whole = raw_bars(simulator.url, symbols="TECL,SPY", start="2026-11-01").json()
    assert collected == whole["bars"]
    assert pages == -(-sum(len(b) for b in whole["bars"].values()) // 7)


def test_alpaca_py_pages_through_a_full_history(simulator, sim_calendar):
    """Every symbol since the demo's start is more than one 10,000-bar page: alpaca-py must
    follow next_page_token and get every bar exactly once."""
    barset = data_client(simulator.url).get_stock_bars(daily(list(SYMBOLS), DEMO_START))
    expected = demo_closes(sim_calendar, SYMBOLS)
    assert {s: len(b) for s, b in barset.data.items()} == {s: len(expected) for s in SYMBOLS}
    assert [b.close for b in barset.data["UVXY"]] == list(expected["UVXY"])
    assert sim_state(simulator.url)["requests"]["GET /v2/stocks/bars"] == 2


def test_limit_caps_the_total_and_sort_desc_reverses(simulator):
    client = data_client(simulator.url)
    capped = client.get_stock_bars(daily("SPY", date(2026, 1, 1), limit=5)).data["SPY"]
    assert len(capped) == 5
    newest_first = raw_bars(simulator.url, symbols="SPY", start="2026-11-20", sort="desc").json()[
        "bars"
    ]["SPY"]
    assert [b["t"][:10] for b in newest_first] == ["2026-11-24", "2026-11-23", "2026-11-20"]


def test_unknown_symbols_are_left_out_and_bad_tokens_refused(simulator):
    body = raw_bars(simulator.url, symbols="SPY,NOPE", start="2026-11-24").json()
    assert list(body["bars"]) == ["SPY"]
    forged = base64.urlsafe_b64encode(b"ZZZ|2026-01-01T05:00:00Z").decode()
    answer = raw_bars(simulator.url, symbols="SPY", start="2026-11-24", page_token=forged)
    assert answer.status_code == 422


def test_latest_trades_parse_at_the_simulated_price(simulator):
    client = data_client(simulator.url)
    trades = client.get_stock_latest_trade(
        StockLatestTradeRequest(symbol_or_symbols=["SPY", "TECL"])
    )
    assert set(trades) == {"SPY", "TECL"}
    assert all(isinstance(t, Trade) for t in trades.values())
    tecl = trades["TECL"]
    assert Decimal(str(tecl.price)) == simulator.simulator.price("TECL")
    assert tecl.timestamp == datetime(2026, 11, 24, 15, 45, tzinfo=EXCHANGE_TZ)
    assert (tecl.exchange, tecl.size, tecl.tape) == ("V", 100, "B")


def test_after_the_close_the_latest_trade_is_stamped_at_the_close(simulator):
    set_sim_clock(simulator.url, datetime(2026, 11, 24, 19, tzinfo=EXCHANGE_TZ))
    trade = data_client(simulator.url).get_stock_latest_trade(
        StockLatestTradeRequest(symbol_or_symbols="SPY")
    )["SPY"]
    assert trade.timestamp == datetime(2026, 11, 24, 16, tzinfo=EXCHANGE_TZ)


def test_market_data_needs_the_credentials_too(simulator):
    client = data_client(simulator.url, secret="wrong")
    with pytest.raises(APIError) as caught:
        client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY"))
    assert (caught.value.status_code, caught.value.code) == (401, 40110000)


def test_split_keeps_adjusted_history_consistent_and_the_position_whole(simulator):
    """X2: after a 2:1 split the position doubles without an order, its average price halves,
    and every bar of the symbol (history included) is halved: no false 50% crash."""
    trading = trading_client(simulator.url)
    data = data_client(simulator.url)
    trading.submit_order(
        MarketOrderRequest(
            symbol="TECL", qty=3, side="buy", time_in_force="day", client_order_id="split-1"
        )
    )
    before = data.get_stock_bars(daily("TECL", date(2026, 11, 1))).data["TECL"]
    position = trading.get_open_position("TECL")
    equity = amount(trading.get_account().equity)

    sim_admin(simulator.url, "/_sim/split", {"symbol": "TECL", "ratio": "2"})

    after = data.get_stock_bars(daily("TECL", date(2026, 11, 1))).data["TECL"]
    assert [b.close for b in after] == pytest.approx([b.close / 2 for b in before], rel=1e-15)
    split_position = trading.get_open_position("TECL")
    assert split_position.qty == "6"
    assert Decimal(split_position.avg_entry_price) == Decimal(position.avg_entry_price) / 2
    assert abs(amount(trading.get_account().equity) - equity) <= Decimal("0.01")
    assert simulator.simulator.price("TECL") == (amount(position.current_price) / 2).quantize(
        Decimal("0.01")
    )
    assert sim_state(simulator.url)["split_ratios"] == {"TECL": "2"}
    assert [o["client_order_id"] for o in sim_state(simulator.url)["orders"]] == ["split-1"]


# -- the data plan ------------------------------------------------------------------------------

RECENT_SIP = {"message": "subscription does not permit querying recent SIP data"}


def raw_trades(url: str, **params) -> requests.Response:
    query = {"symbols": "SPY", **params}
    return requests.get(f"{url}/v2/stocks/trades/latest", params=query, headers=HEADERS, timeout=5)


@pytest.mark.parametrize("feed", [None, "sip"])
def test_the_free_plan_refuses_recent_sip_data_as_alpaca_does(simulator, sim_calendar, feed):
    """Alpaca's Basic plan (the default here, as on a new account): SIP data from the last 15
    minutes is 403 with Alpaca's body, which has no code. Bars are SIP unless a feed is named,
    so bars through the end of today are refused, as a latest SIP trade is."""
    chosen = {"feed": feed}
    today = sim_calendar.decision_time(SIM_SESSION).replace(hour=23, minute=59).isoformat()
    bars = raw_bars(simulator.url, symbols="SPY", start="2026-11-01", end=today, **chosen)
    trades = raw_trades(simulator.url, feed="sip")

    assert (bars.status_code, bars.json()) == (403, RECENT_SIP)
    assert (trades.status_code, trades.json()) == (403, RECENT_SIP)


def test_the_free_plan_serves_iex_delayed_sip_and_older_sip(simulator, sim_calendar):
    """What Basic does serve: IEX and delayed SIP at any time, SIP up to 15 minutes ago, and
    Alpaca's defaults on it (bars without `end` stop 15 minutes ago; a latest trade without
    a feed is IEX's)."""
    now = sim_calendar.decision_time(SIM_SESSION)
    older = (now - timedelta(minutes=15)).isoformat()
    recent = (now - timedelta(minutes=14)).isoformat()

    for feed in ("iex", "delayed_sip"):
        assert raw_trades(simulator.url, feed=feed).status_code == 200
        assert raw_bars(simulator.url, symbols="SPY", start="2026-11-01", feed=feed).ok
    assert raw_bars(simulator.url, symbols="SPY", start="2026-11-01", end=older, feed="sip").ok
    late = raw_bars(simulator.url, symbols="SPY", start="2026-11-01", end=recent, feed="sip")
    assert late.status_code == 403
    assert raw_bars(simulator.url, symbols="SPY", start="2026-11-01", feed=None).ok
    assert raw_trades(simulator.url).json()["trades"]["SPY"]["p"] > 0


def test_the_data_plan_is_switched_under_sim_and_reset_to_basic(simulator):
    assert sim_state(simulator.url)["data_plan"] == "basic"
    sim_admin(simulator.url, "/_sim/data-plan", {"plan": "unlimited"})

    assert sim_state(simulator.url)["data_plan"] == "unlimited"
    assert raw_trades(simulator.url, feed="sip").status_code == 200
    tonight = datetime(2026, 11, 24, 23, tzinfo=EXCHANGE_TZ).isoformat()
    assert raw_bars(simulator.url, symbols="SPY", start="2026-11-01", end=tonight, feed=None).ok
    with pytest.raises(HTTPError) as caught:
        sim_admin(simulator.url, "/_sim/data-plan", {"plan": "pro"})
    assert caught.value.code == 400 and "'pro'" in caught.value.read().decode()

    sim_admin(simulator.url, "/_sim/reset")
    assert sim_state(simulator.url)["data_plan"] == "basic"
