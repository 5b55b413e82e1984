"""Alpaca market data against the broker simulator, over HTTP, with faults at the wire.

The real alpaca-py StockHistoricalDataClient talks to a real HTTP server serving the demo
data; nothing of alpaca-py is mocked. Sleeping is faked, jitter is seeded (printed, R2).
"""

import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tecl_pipeline.adapters.alpaca.market_data import AlpacaMarketData
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.config.settings import DataFeed
from tecl_pipeline.core.errors import MarketDataError, RefusedToTrade
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.trading.credentials import CredentialsProvider
from tecl_pipeline.trading.errors import (
    AuthError,
    BrokerUnavailableError,
    DataEntitlementError,
    MalformedResponseError,
    RateLimitedError,
)
from tecl_pipeline_tests.adapters.alpaca.adapter_helpers import (
    SEED,
    CountingProvider,
    faults,
    recorded_waits,
    sim_credentials,
)
from tecl_pipeline_tests.simulator import simulator_fixtures
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_KEY,
    SIM_SECRET,
    SIM_SESSION,
    sim_admin,
    sim_requests,
)

# The simulator's fixtures, made visible to pytest in this module.
simulator = simulator_fixtures.simulator
sim_calendar = simulator_fixtures.sim_calendar

BARS = "GET /v2/stocks/bars"
TRADES = "GET /v2/stocks/trades/latest"


def make_source(
    url: str,
    *,
    provider: CredentialsProvider | None = None,
    policy: RetryPolicy | None = None,
    seed: int = SEED,
    timeout: float = 10.0,
    feed: DataFeed = DataFeed.IEX,
) -> tuple[AlpacaMarketData, list[float]]:
    """A source with fake sleep; the timeout is generous by default because the simulator
    builds a page of 10,000 bars in a few hundred milliseconds."""
    sleeps, rng = recorded_waits(seed)
    source = AlpacaMarketData(
        provider or sim_credentials(),
        url=url,
        timeout=timeout,
        retry=policy or RetryPolicy(max_attempts=4),
        sleep=sleeps.append,
        rng=rng,
        feed=feed,
    )
    return source, sleeps


def fetch(source: AlpacaMarketData, endpoint: str) -> pd.DataFrame | dict[str, Decimal]:
    if endpoint == BARS:
        return source.closes(("SPY",), SIM_SESSION)
    return source.latest_prices(("SPY",))


@pytest.fixture
def demo(sim_calendar):
    """The data the simulator serves, read directly (independent of the adapter)."""
    return DemoMarketData(sim_calendar, now=lambda: sim_calendar.decision_time(SIM_SESSION))


def test_closes_are_the_served_adjusted_history_across_pages(simulator, demo):
    """R4, B3: every session of every symbol, paginated (10,000 bars a page), equal to the
    source; DatetimeIndex of session dates, one float column per symbol."""
    source, sleeps = make_source(simulator.url)
    closes = source.closes(SYMBOLS, SIM_SESSION)
    expected = demo.closes(SYMBOLS, SIM_SESSION)
    assert list(closes.columns) == list(SYMBOLS)
    assert isinstance(closes.index, pd.DatetimeIndex)
    assert closes.index[-1] == pd.Timestamp(SIM_SESSION)
    assert all(dtype == np.float64 for dtype in closes.dtypes)
    pd.testing.assert_frame_equal(closes, expected, check_names=False, check_freq=False)
    assert closes.size > 10_000 and sim_requests(simulator.url, BARS) >= 2
    assert sleeps == []


def test_closes_stop_at_through(simulator, demo):
    """T1: nothing after `through`, and the same history as asked in one go."""
    source, _ = make_source(simulator.url)
    through = demo.closes(("SPY",), SIM_SESSION).index[-30].date()
    closes = source.closes(("SPY", "TECL"), through)
    assert closes.index[-1].date() == through
    full = source.closes(("SPY", "TECL"), SIM_SESSION)
    pd.testing.assert_frame_equal(closes, full.loc[: pd.Timestamp(through)])


def test_bars_are_split_adjusted_so_a_split_is_no_crash(simulator):
    """X2: after a 2:1 split every past close halves with it; no fake -50% day appears."""
    source, _ = make_source(simulator.url)
    before = source.closes(("TECL",), SIM_SESSION)["TECL"]
    sim_admin(simulator.url, "/_sim/split", {"symbol": "TECL", "ratio": 2})
    after = source.closes(("TECL",), SIM_SESSION)["TECL"]
    np.testing.assert_allclose(after.to_numpy(), before.to_numpy() / 2, rtol=1e-12)
    assert after.pct_change().min() == pytest.approx(before.pct_change().min(), rel=1e-9)


def test_latest_session_is_the_newest_bar(simulator):
    """T1, T2: the newest daily bar's session date, in exchange time."""
    source, _ = make_source(simulator.url)
    assert source.latest_session(SYMBOLS) == SIM_SESSION


def test_latest_prices_are_decimals_of_the_latest_trades(simulator):
    """C3: the live price as Decimal, converted through str, for every symbol asked."""
    source, _ = make_source(simulator.url)
    prices = source.latest_prices(("TECL", "SPY"))
    assert set(prices) == {"TECL", "SPY"}
    for symbol, price in prices.items():
        assert isinstance(price, Decimal) and price > 0
        assert price == Decimal(str(float(simulator.simulator.price(symbol))))


def test_unknown_symbol_is_a_market_data_error(simulator):
    """T1: a symbol the source does not have raises MarketDataError naming it."""
    source, _ = make_source(simulator.url)
    with pytest.raises(MarketDataError, match="ZZZZ"):
        source.closes(("SPY", "ZZZZ"), SIM_SESSION)
    with pytest.raises(MarketDataError, match="ZZZZ"):
        source.latest_prices(("ZZZZ",))


def test_description_names_endpoint_and_no_secret(simulator):
    """S2: the description names the endpoint and adjustment; not demo; no credentials."""
    source, _ = make_source(simulator.url)
    assert simulator.url in source.description and "adjustment=all" in source.description
    assert not source.is_demo
    for text in (source.description, repr(source)):
        assert SIM_SECRET not in text and SIM_KEY not in text
    default = AlpacaMarketData(sim_credentials())
    assert "https://data.alpaca.markets" in default.description


def test_plain_http_to_a_remote_data_host_is_refused():
    """S5: no secret over plain HTTP except to loopback."""
    with pytest.raises(ValueError, match=r"http://data\.example\.com"):
        AlpacaMarketData(sim_credentials(), url="http://data.example.com")


def test_rate_limited_bars_honour_retry_after(simulator):
    """B1: 429 with Retry-After 2 -> a wait of 2 s, then the data."""
    faults(simulator.url, {"endpoint": BARS, "kind": "rate_limit", "times": 1, "retry_after": 2})
    source, sleeps = make_source(simulator.url)
    assert source.latest_session(("SPY",)) == SIM_SESSION
    assert sleeps == [2.0]


def test_rate_limit_storm_on_market_data_stops_cleanly(simulator):
    """B1, C6: a 429 storm ends in RateLimitedError after the policy's attempts."""
    faults(simulator.url, {"endpoint": TRADES, "kind": "rate_limit", "retry_after": 1})
    source, sleeps = make_source(simulator.url, policy=RetryPolicy(max_attempts=3))
    with pytest.raises(RateLimitedError, match=TRADES):
        source.latest_prices(("SPY",))
    assert sim_requests(simulator.url, TRADES) == 3 and len(sleeps) == 2


def test_5xx_and_html_502_on_bars_are_retried_per_page(simulator):
    """B8: a 500 and an HTML 502 on page 1 and a 503 on page 2 are each retried, page by page."""
    faults(
        simulator.url,
        {"endpoint": BARS, "kind": "server_error", "times": 1},
        {"endpoint": BARS, "kind": "bad_gateway_html", "times": 1},
        # Rules are tried in order, so this one first sees the third request (page 1's
        # success) and fails the fourth: page 2.
        {"endpoint": BARS, "kind": "maintenance", "times": 1, "after": 1, "retry_after": 2},
    )
    source, sleeps = make_source(simulator.url)
    closes = source.closes(SYMBOLS, SIM_SESSION)
    assert closes.index[-1].date() == SIM_SESSION
    assert len(sleeps) == 3 and sleeps[2] == 2.0
    pages = math.ceil(int(closes.notna().sum().sum()) / 10_000)
    assert pages >= 2
    # Only the failed page is asked again, never the whole history from the start.
    assert sim_requests(simulator.url, BARS) == pages + 3


def test_stalled_market_data_times_out_and_is_retried(simulator):
    """B2: a stalled answer ends at the client's timeout (no hang) and is retried."""
    warm, _ = make_source(simulator.url)
    warm.latest_prices(SYMBOLS)  # the simulator's price cache: 2 s is plenty even under load
    faults(simulator.url, {"endpoint": TRADES, "kind": "timeout", "times": 1, "delay": 5.0})
    source, sleeps = make_source(simulator.url, timeout=2.0)
    assert set(source.latest_prices(SYMBOLS)) == set(SYMBOLS)
    assert len(sleeps) == 1
    faults(simulator.url, {"endpoint": TRADES, "kind": "latency", "delay": 5.0})
    stalled, _ = make_source(simulator.url, timeout=2.0, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(BrokerUnavailableError, match=r"(?i)timed out"):
        stalled.latest_prices(("SPY",))


def test_market_data_outage_stops_cleanly(simulator):
    """B8: maintenance throughout -> BrokerUnavailableError naming the endpoint."""
    faults(simulator.url, {"endpoint": "*", "kind": "maintenance", "retry_after": 1})
    source, _ = make_source(simulator.url, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(BrokerUnavailableError, match=BARS):
        source.closes(("SPY",), SIM_SESSION)


def fetch_malformed(url: str, endpoint: str, kind: str) -> list[float]:
    """Fetch from `endpoint` under a fault of `kind`: it must raise MalformedResponseError
    naming the endpoint. Returns the waits of the source's retry policy."""
    faults(url, {"endpoint": endpoint, "kind": kind})
    source, sleeps = make_source(url)
    with pytest.raises(MalformedResponseError, match=endpoint):
        fetch(source, endpoint)
    return sleeps


@pytest.mark.parametrize("endpoint", [BARS, TRADES])
def test_error_body_under_200_is_never_data(simulator, endpoint):
    """X4: 200 {"code", "message"} -> asked again under the retry policy (4 attempts here),
    then MalformedResponseError, not an empty history; one such answer is only a retry."""
    sleeps = fetch_malformed(simulator.url, endpoint, "error_body")
    assert len(sleeps) == 3
    assert sim_requests(simulator.url, endpoint) == 4

    faults(simulator.url, {"endpoint": endpoint, "kind": "error_body", "times": 1})
    source, sleeps = make_source(simulator.url)
    fetched = fetch(source, endpoint)
    assert len(fetched) > 0  # closes (a frame) or prices (a dict), read after one wait
    assert len(sleeps) == 1


@pytest.mark.parametrize("endpoint", [BARS, TRADES])
def test_renamed_fields_fail_loudly(simulator, endpoint):
    """B3: bars/trades with spelled-out keys (a schema change) are MalformedResponseError."""
    fetch_malformed(simulator.url, endpoint, "malformed")


def test_unauthorized_refreshes_once_then_succeeds_or_stops(simulator):
    """B4, X6: one 401 -> one refresh and success; a refused pair after refresh -> AuthError."""
    faults(simulator.url, {"endpoint": TRADES, "kind": "unauthorized", "times": 1})
    provider = CountingProvider(sim_credentials())
    source, _ = make_source(simulator.url, provider=provider)
    assert source.latest_prices(("SPY",))["SPY"] > 0
    assert provider.refreshes == 1
    sim_admin(simulator.url, "/_sim/credentials", {"key": "PKNEW", "secret": "not-ours"})
    with pytest.raises(AuthError, match="still refused") as caught:
        source.latest_prices(("SPY",))
    assert provider.refreshes == 2
    assert SIM_SECRET not in str(caught.value)


# -- the data plan: Alpaca's free Basic plan refuses SIP data from the last 15 minutes ---------


def test_the_default_feed_is_iex_on_every_request_and_works_on_the_free_plan(simulator):
    """Left out, the feed would be SIP, which the Basic plan (the simulator's default, as
    Alpaca's) refuses at decision time; IEX is named on bars and latest trades alike."""
    assert simulator_fixtures.sim_state(simulator.url)["data_plan"] == "basic"
    source, _ = make_source(simulator.url)

    assert source.closes(("SPY",), SIM_SESSION).index[-1].date() == SIM_SESSION
    assert source.latest_prices(("SPY",))["SPY"] > 0
    assert "feed iex" in source.description


@pytest.mark.parametrize("endpoint", [BARS, TRADES])
def test_sip_on_the_free_plan_is_a_refusal_naming_the_setting_and_the_fix(simulator, endpoint):
    """B4: Alpaca's 403 "subscription does not permit querying recent SIP data" is no key
    problem (no credentials refresh, no retry): a refusal to trade that names TECL_DATA_FEED
    and the feeds that work."""
    provider = CountingProvider(sim_credentials())
    source, sleeps = make_source(simulator.url, provider=provider, feed=DataFeed.SIP)

    with pytest.raises(DataEntitlementError) as caught:
        fetch(source, endpoint)

    assert isinstance(caught.value, RefusedToTrade)
    message = str(caught.value)
    assert "subscription does not permit querying recent SIP data" in message
    assert "TECL_DATA_FEED=iex" in message and "delayed_sip" in message
    assert provider.refreshes == 0 and sleeps == []
    assert sim_requests(simulator.url, endpoint) == 1


def test_delayed_sip_works_on_the_free_plan_and_sip_on_unlimited(simulator):
    delayed, _ = make_source(simulator.url, feed=DataFeed.DELAYED_SIP)
    assert delayed.latest_prices(("SPY",))["SPY"] > 0

    sim_admin(simulator.url, "/_sim/data-plan", {"plan": "unlimited"})
    sip, _ = make_source(simulator.url, feed=DataFeed.SIP)
    assert sip.closes(("SPY",), SIM_SESSION).index[-1].date() == SIM_SESSION
    assert sip.latest_prices(("SPY",))["SPY"] > 0
