"""B1 against Alpaca's own 429: it carries no Retry-After, only X-RateLimit-Reset (seconds
since the epoch), so the adapter waits until that reset, under the one retry policy and its
deadline, and the call then goes through. The simulator enforces the limit on a fake wall
clock, which the adapter's waits advance."""

import random
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tecl_pipeline.adapters.alpaca import errors as alpaca_errors
from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.adapters.alpaca.errors import parse_rate_limit_reset
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BrokerSimulator, SimulatorServer
from tecl_pipeline.trading.errors import RateLimitedError
from tecl_pipeline_tests.adapters.alpaca.adapter_helpers import SEED, TIMEOUT, sim_credentials
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_SESSION, sim_requests
from tecl_pipeline_tests.simulator.wall_clock import MINUTE_START, WallClock


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    """One fake wall clock for the simulator's windows and the adapter's reading of them."""
    clock = WallClock()
    monkeypatch.setattr(alpaca_errors, "time", SimpleNamespace(time=clock))
    return clock


@pytest.fixture
def two_a_minute(sim_calendar: TradingCalendar, wall: WallClock) -> Iterator[SimulatorServer]:
    now = sim_calendar.decision_time(SIM_SESSION)
    engine = BrokerSimulator(
        DemoMarketData(sim_calendar, now=lambda: now),
        sim_calendar,
        now=now,
        rate_limit=2,
        wall_clock=wall,
    )
    with SimulatorServer(engine).start() as server:
        yield server


def broker(server: SimulatorServer, wall: WallClock, sleeps: list[float]) -> AlpacaBroker:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        wall.now += seconds

    print(f"retry jitter seed={SEED}")
    return AlpacaBroker(
        sim_credentials(),
        paper=True,
        url=server.url,
        timeout=TIMEOUT,
        retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, deadline=120.0),
        sleep=sleep,
        rng=random.Random(SEED),
    )


def test_alpacas_429_is_waited_out_until_the_windows_reset(two_a_minute, wall):
    sleeps: list[float] = []
    client = broker(two_a_minute, wall, sleeps)
    client.get_clock()
    client.get_clock()

    clock = client.get_clock()

    assert clock.is_open
    assert sleeps == [30.0], "half a minute left in the window: the reset, not the backoff"
    assert sim_requests(two_a_minute.url, "GET /v2/clock") == 4


def test_a_reset_beyond_the_deadline_gives_up_at_once_naming_the_limit(
    two_a_minute, wall, monkeypatch
):
    """A window that resets after the policy's deadline (here a day away, as a hostile
    server or a broken clock could say) is not slept into: the call fails loudly at once."""
    sleeps: list[float] = []
    client = broker(two_a_minute, wall, sleeps)
    client.get_clock()
    client.get_clock()
    monkeypatch.setattr(alpaca_errors, "time", SimpleNamespace(time=lambda: wall.now - 86_400))

    with pytest.raises(RateLimitedError, match="HTTP 429: too many requests"):
        client.get_clock()
    assert sleeps == []


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (str(MINUTE_START + 60), 30.0),
        (f"{MINUTE_START + 45}.5", 15.5),
        (str(MINUTE_START), 1.0),  # already past: this clock runs ahead; a second at least
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_the_reset_header_is_read_as_seconds_from_now(header, seconds):
    assert parse_rate_limit_reset(header, now=MINUTE_START + 30.0) == seconds
