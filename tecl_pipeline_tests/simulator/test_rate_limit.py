"""Alpaca's rate limit, as the simulator enforces it by default: 200 requests a minute per
API key, counted apart for trading and for market data in a fixed wall-clock minute; every
answer carries X-RateLimit-Limit, -Remaining and -Reset (seconds since the epoch); a request
over the budget is answered 429 and not carried out, with no Retry-After, as Alpaca does.
The simulator's wall clock is a fake here, so no test depends on where in a minute it runs."""

from collections.abc import Iterator

import pytest
import requests

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BrokerSimulator, SimulatorServer
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_KEY,
    SIM_SECRET,
    SIM_SESSION,
    sim_admin,
    sim_state,
)
from tecl_pipeline_tests.simulator.wall_clock import MINUTE_START, WallClock

AUTH = {"APCA-API-KEY-ID": SIM_KEY, "APCA-API-SECRET-KEY": SIM_SECRET}


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
def limited(sim_calendar: TradingCalendar, wall: WallClock) -> Iterator[SimulatorServer]:
    """The simulator as `tecl simulator` starts it (Alpaca's limit), on a fake wall clock."""
    now = sim_calendar.decision_time(SIM_SESSION)
    market_data = DemoMarketData(sim_calendar, now=lambda: now)
    engine = BrokerSimulator(market_data, sim_calendar, now=now, wall_clock=wall)
    with SimulatorServer(engine).start() as server:
        yield server


def get(server: SimulatorServer, path: str, headers: dict[str, str] = AUTH) -> requests.Response:
    return requests.get(f"{server.url}{path}", headers=headers, timeout=5)


def test_every_answer_carries_rate_limit_headers(limited):
    """Successes and errors alike; one budget per API key for trading and one for data."""
    answers = [
        get(limited, "/v2/account"),
        get(limited, "/v2/positions/TECL"),
        get(limited, "/v2/no-such-thing"),
        get(limited, "/v2/account", headers={}),
        get(limited, "/v2/stocks/bars?symbols=SPY"),
    ]
    assert [a.status_code for a in answers] == [200, 404, 404, 401, 422]
    assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"200"}
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == [
        "199",
        "198",
        "197",
        "199",
        "199",
    ]
    assert {a.headers["X-RateLimit-Reset"] for a in answers} == {str(MINUTE_START + 60)}


def test_the_201st_request_of_a_minute_is_429_with_alpacas_headers_and_no_retry_after(limited):
    answers = [get(limited, "/v2/clock") for _ in range(200)]
    assert {a.status_code for a in answers} == {200}
    assert [int(a.headers["X-RateLimit-Remaining"]) for a in answers] == list(range(199, -1, -1))

    over = get(limited, "/v2/account")

    assert over.status_code == 429
    assert over.json() == {"code": 42910000, "message": "too many requests"}
    assert over.headers["X-RateLimit-Limit"] == "200"
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert over.headers["X-RateLimit-Reset"] == str(MINUTE_START + 60)
    assert "Retry-After" not in over.headers


def test_the_budget_comes_back_with_the_next_minute(limited, wall):
    for _ in range(201):
        get(limited, "/v2/clock")
    assert get(limited, "/v2/clock").status_code == 429

    wall.now = MINUTE_START + 60
    fresh = get(limited, "/v2/clock")

    assert fresh.status_code == 200
    assert fresh.headers["X-RateLimit-Remaining"] == "199"
    assert fresh.headers["X-RateLimit-Reset"] == str(MINUTE_START + 120)


def test_an_order_over_the_limit_is_not_placed_and_its_attempt_is_recorded(limited):
    for _ in range(200):
        get(limited, "/v2/clock")
    order = {
        "symbol": "TECL",
        "qty": "1",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "over-the-limit-1",
    }

    answer = requests.post(f"{limited.url}/v2/orders", json=order, headers=AUTH, timeout=5)

    assert answer.status_code == 429
    state = sim_state(limited.url)
    assert state["orders"] == []
    [attempt] = state["submissions"]
    assert (attempt["client_order_id"], attempt["http_status"]) == ("over-the-limit-1", 429)


def test_market_data_and_another_key_have_budgets_of_their_own(limited):
    for _ in range(201):
        get(limited, "/v2/clock")

    trades = get(limited, "/v2/stocks/trades/latest?symbols=SPY&feed=iex")
    stranger = get(limited, "/v2/clock", headers={"APCA-API-KEY-ID": "someone-else"})

    assert trades.status_code == 200 and trades.headers["X-RateLimit-Remaining"] == "199"
    assert stranger.status_code == 401 and stranger.headers["X-RateLimit-Remaining"] == "199"


def test_the_limit_is_set_shown_switched_off_and_reset(limited):
    assert sim_state(limited.url)["rate_limit"] == 200
    sim_admin(limited.url, "/_sim/rate-limit", {"per_minute": 2})
    assert [get(limited, "/v2/clock").status_code for _ in range(3)] == [200, 200, 429]

    sim_admin(limited.url, "/_sim/rate-limit", {"per_minute": None})
    assert sim_state(limited.url)["rate_limit"] is None
    assert {get(limited, "/v2/clock").status_code for _ in range(5)} == {200}

    sim_admin(limited.url, "/_sim/reset")
    assert sim_state(limited.url)["rate_limit"] == 200


@pytest.mark.parametrize("bad", [0, -1, 2.5, "200", True])
def test_a_bad_limit_is_refused_naming_it(limited, bad):
    refused = requests.post(f"{limited.url}/_sim/rate-limit", json={"per_minute": bad}, timeout=5)

    assert refused.status_code == 400
    assert "per_minute must be a whole number >= 1 or null" in refused.text
    assert sim_state(limited.url)["rate_limit"] == 200
