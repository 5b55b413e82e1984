"""The simulator's HTTP layer and admin surface: admin endpoints, the in-process API, server
life cycle, concurrency, and the `serve` entry point behind `tecl simulator`."""

# The simulator fixtures are imported below; pytest injects them into tests by name.
# ruff: noqa: F811

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.marketdata.csv_source import CsvMarketData
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BrokerSimulator, FillMode, SimulatorServer, serve
from tecl_pipeline_tests.simulator.simulator_fixtures import (  # noqa: F401 (fixtures)
    SIM_SESSION,
    market_order,
    sim_admin,
    sim_calendar,
    sim_state,
    simulator,
    trading_client,
)

# These tests are about the server and its admin endpoints, not an order's life:
# orders fill in the POST here.
pytestmark = pytest.mark.instant_fills


REPO = Path(__file__).resolve().parents[2]


def buy(client, cid: str, qty: float, symbol: str = "SPY"):
    return market_order(client, symbol, qty, cid)


def admin_error(url: str, path: str, payload=None, method: str = "POST") -> tuple[int, str]:
    with pytest.raises(urllib.error.HTTPError) as caught:
        sim_admin(url, path, payload, method=method)
    return caught.value.code, json.loads(caught.value.read())["error"]


# -- admin endpoints ------------------------------------------------------------------------------


def test_state_reports_orders_submissions_positions_cash_and_requests(simulator):
    client = trading_client(simulator.url)
    buy(client, "state-1", 2)
    client.get_account()
    state = sim_state(simulator.url)
    assert state["now"] == "2026-11-24T15:45:00-05:00"
    assert [o["client_order_id"] for o in state["orders"]] == ["state-1"]
    assert state["orders"][0]["status"] == "filled"
    (submission,) = state["submissions"]
    assert submission["client_order_id"] == "state-1"
    assert (submission["http_status"], submission["outcome"]) == (200, "filled")
    assert state["positions"]["SPY"]["qty"] == "2"
    assert Decimal(state["cash"]) < Decimal("100000")
    assert state["requests"] == {"POST /v2/orders": 1, "GET /v2/account": 1}
    assert state["faults_injected"] == {}
    assert state["api_key"] == "sim-key" and "sim-secret" not in json.dumps(state)


def test_clock_admin_needs_an_aware_time(simulator):
    answer = sim_admin(simulator.url, "/_sim/clock", {"now": "2026-11-25T10:00:00-05:00"})
    assert answer["now"] == "2026-11-25T10:00:00-05:00"
    assert trading_client(simulator.url).get_clock().is_open is True
    status, message = admin_error(simulator.url, "/_sim/clock", {"now": "2026-11-25T10:00:00"})
    assert status == 400 and "timezone-aware" in message
    assert admin_error(simulator.url, "/_sim/clock", {})[0] == 400


def test_fills_admin_validates_the_mode(simulator):
    sim_admin(simulator.url, "/_sim/fills", {"mode": "partial", "steps": 4, "delay_polls": 0})
    assert sim_state(simulator.url)["fill_mode"] == {
        "mode": "partial",
        "steps": 4,
        "delay_polls": 0,
    }
    assert admin_error(simulator.url, "/_sim/fills", {"mode": "sometimes"})[0] == 400
    assert admin_error(simulator.url, "/_sim/fills", {"mode": "partial", "steps": 0})[0] == 400


def test_faults_admin_validates_rules_and_can_be_cleared(simulator, seed):
    status, message = admin_error(
        simulator.url, "/_sim/faults", {"seed": seed, "rules": [{"kind": "x"}]}
    )
    assert status == 400 and "unknown fault kind" in message
    sim_admin(simulator.url, "/_sim/faults", {"seed": seed, "rules": [{"kind": "server_error"}]})
    assert sim_state(simulator.url)["fault_plan"]["seed"] == seed
    with pytest.raises(APIError):
        trading_client(simulator.url).get_clock()
    sim_admin(simulator.url, "/_sim/faults", method="DELETE")
    assert trading_client(simulator.url).get_clock().is_open is True


def test_split_asset_account_and_credentials_admin_validation(simulator):
    assert admin_error(simulator.url, "/_sim/split", {"symbol": "TECL", "ratio": "0"})[0] == 400
    assert admin_error(simulator.url, "/_sim/split", {"ratio": "2"})[0] == 400
    assert admin_error(simulator.url, "/_sim/assets/TECL", {"tradable": "no"})[0] == 400
    assert admin_error(simulator.url, "/_sim/account", {"cash": "lots"})[0] == 400
    assert admin_error(simulator.url, "/_sim/credentials", {"key": "k"})[0] == 400
    sim_admin(simulator.url, "/_sim/assets/NEWCO", {"tradable": False})
    assert trading_client(simulator.url).get_asset("NEWCO").tradable is False


def test_unknown_admin_path_is_404_and_bodies_must_be_objects(simulator):
    assert admin_error(simulator.url, "/_sim/teleport", {})[0] == 404
    assert admin_error(simulator.url, "/_sim/clock", [1, 2])[0] == 400


def test_reset_restores_the_initial_state(simulator, seed):
    client = trading_client(simulator.url)
    buy(client, "reset-1", 1)
    sim_admin(simulator.url, "/_sim/clock", {"now": "2026-11-25T10:00:00-05:00"})
    sim_admin(simulator.url, "/_sim/credentials", {"key": "k2", "secret": "s2"})
    sim_admin(simulator.url, "/_sim/split", {"symbol": "SPY", "ratio": "3"})
    sim_admin(simulator.url, "/_sim/faults", {"seed": seed, "rules": [{"kind": "server_error"}]})
    sim_admin(simulator.url, "/_sim/reset", {})
    state = sim_state(simulator.url)
    assert state["orders"] == state["submissions"] == [] and state["positions"] == {}
    assert state["cash"] == "100000" and state["now"] == "2026-11-24T15:45:00-05:00"
    assert state["split_ratios"] == {} and state["fault_plan"]["rules"] == []
    assert client.get_account().cash == "100000"  # the original key pair works again
    assert buy(client, "reset-1", 1).client_order_id == "reset-1"  # ids start afresh


def test_unknown_broker_endpoint_is_404_json(simulator):
    answer = requests.get(
        f"{simulator.url}/v2/watchlists",
        headers={"APCA-API-KEY-ID": "sim-key", "APCA-API-SECRET-KEY": "sim-secret"},
        timeout=5,
    )
    assert answer.status_code == 404
    assert answer.json() == {"code": 40410000, "message": "endpoint not found"}
    assert sim_state(simulator.url)["requests"] == {"GET /v2/watchlists": 1}


# -- concurrency and life cycle -----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "fills", "lowest_cash"), [("cash", 4, 0), ("margin", 8, -100000)])
def test_concurrent_buys_never_spend_the_same_cash_twice(simulator, kind, fills, lowest_cash):
    """C2: twenty simultaneous orders, each for a quarter of the cash: exactly as many fill as
    the buying power covers (the cash, or twice the equity on margin), the rest are refused
    for buying power, and the account never spends beyond it."""
    sim_admin(simulator.url, "/_sim/account", {"kind": kind})
    price = simulator.simulator.price("SPY")
    qty = int(Decimal("25000") / price)
    barrier = threading.Barrier(20)

    def attempt(i: int) -> str:
        client = trading_client(simulator.url)
        barrier.wait()
        try:
            return buy(client, f"race-{i}", qty).status.value
        except APIError as exc:
            return exc.message

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count("filled") == fills
    assert outcomes.count("insufficient buying power") == 20 - fills
    assert Decimal(sim_state(simulator.url)["cash"]) >= lowest_cash


def test_stop_does_not_wait_for_a_stalled_answer(sim_calendar, seed):
    now = sim_calendar.decision_time(SIM_SESSION)
    sim = BrokerSimulator(DemoMarketData(sim_calendar, now=lambda: now), sim_calendar, now=now)
    server = SimulatorServer(sim).start()
    sim.set_faults(seed, [{"kind": "timeout", "delay": 30}])
    seen: list[BaseException] = []

    def wait_for_an_answer() -> None:
        try:
            requests.get(f"{server.url}/v2/clock", timeout=60)
        except requests.exceptions.ConnectionError as exc:
            seen.append(exc)

    stalled = threading.Thread(target=wait_for_an_answer, daemon=True)
    stalled.start()
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    stalled.join(timeout=5)
    assert time.monotonic() - started < 3
    assert not stalled.is_alive()
    assert len(seen) == 1  # the stalled call ended without an answer, not after 30 s
    server.stop()  # idempotent
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{server.url}/v2/clock", timeout=1)


def test_servers_on_free_ports_do_not_collide(sim_calendar):
    now = sim_calendar.decision_time(SIM_SESSION)
    sims = [
        BrokerSimulator(
            DemoMarketData(sim_calendar, now=lambda: now),
            sim_calendar,
            now=now,
            fills=FillMode.IMMEDIATE,
        )
        for _ in range(2)
    ]
    with SimulatorServer(sims[0]) as first, SimulatorServer(sims[1]) as second:
        assert first.url != second.url
        assert first.url.startswith("http://127.0.0.1:")
        buy(trading_client(first.url), "only-here", 1)
        assert len(sim_state(first.url)["orders"]) == 1
        assert sim_state(second.url)["orders"] == []


# -- the in-process API ---------------------------------------------------------------------------


def test_default_clock_is_the_decision_time_of_the_latest_session(sim_calendar):
    wall = datetime(2026, 11, 25, 12, tzinfo=UTC)  # before Wednesday's close
    sim = BrokerSimulator(DemoMarketData(sim_calendar, now=lambda: wall), sim_calendar)
    assert sim.now == datetime(2026, 11, 24, 15, 45, tzinfo=EXCHANGE_TZ)


def test_in_process_setup_needs_no_http(sim_calendar, seed):
    now = sim_calendar.decision_time(SIM_SESSION)
    sim = BrokerSimulator(
        DemoMarketData(sim_calendar, now=lambda: now),
        sim_calendar,
        now=now,
        starting_cash=Decimal("5000"),
        api_key="k",
        api_secret="s",
    )
    sim.set_fill_mode(FillMode.NEVER)
    sim.set_asset("TECL", fractionable=False)
    sim.set_account(currency="USD", cash="2500")
    sim.split("BIL", 2)
    sim.set_faults(seed, [{"endpoint": "GET /v2/clock", "kind": "latency", "delay": 0}])
    sim.set_credentials("k2", "s2")
    with pytest.raises(ValueError, match="timezone-aware"):
        sim.set_clock(datetime(2026, 11, 25, 10))  # noqa: DTZ001 -- the point of the test
    state = sim.state()
    assert state["cash"] == "2500" and state["fill_mode"]["mode"] == "never"
    assert state["assets"]["TECL"]["fractionable"] is False
    assert state["split_ratios"] == {"BIL": "2"} and state["api_key"] == "k2"
    with SimulatorServer(sim) as server:
        client = trading_client(server.url, key="k2", secret="s2")
        assert client.get_account().cash == "2500"


def test_csv_market_data_drive_the_simulator(tmp_path, sim_calendar):
    """The same simulator replays CSV closes; the clock defaults to the last session's decision
    time and a feed that stops short keeps quoting its last close."""
    sessions = sim_calendar.sessions(date(2026, 10, 1), date(2026, 11, 24))
    for i, symbol in enumerate(SYMBOLS):
        closes = [10 + i + k / 100 for k in range(len(sessions))]
        frame = pd.DataFrame({"date": [d.isoformat() for d in sessions], "adj_close": closes})
        frame.to_csv(tmp_path / f"{symbol}.csv", index=False)
    sim = BrokerSimulator(CsvMarketData(tmp_path), sim_calendar)
    assert sim.now == sim_calendar.decision_time(date(2026, 11, 24))
    assert sim.price("SPY") == Decimal(str(round(10 + (len(sessions) - 1) / 100, 2)))
    sim.set_clock(datetime(2026, 11, 25, 10, tzinfo=EXCHANGE_TZ))
    assert sim.price("SPY") == Decimal(str(round(10 + (len(sessions) - 1) / 100, 2)))
    assert sim.price("NOPE") is None


# -- `tecl simulator` ---------------------------------------------------------------------------


def test_serve_refuses_a_non_loopback_host():
    """S5: plain HTTP with a fixed demo key only on loopback unless explicitly allowed."""
    with pytest.raises(ValueError, match="non-loopback"):
        serve("0.0.0.0", 0, data_dir=None, seed=None, now=None)


def test_serve_prints_the_url_and_key_and_stops_on_ctrl_c():
    code = (
        "from datetime import datetime; from zoneinfo import ZoneInfo;"
        "from tecl_pipeline.simulator import serve;"
        "serve('127.0.0.1', 0, data_dir=None, seed=None,"
        " now=datetime(2026, 11, 24, 15, 45, tzinfo=ZoneInfo('America/New_York')))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first, process.stderr.read()
        url = first.rsplit(" ", 1)[1].strip()
        lines = [process.stdout.readline() for _ in range(6)]
        printed = first + "".join(lines)
        assert "DEMO DATA" in printed and "ALPACA_API_KEY=sim-key" in printed
        assert "rate limit: 200 requests a minute per API key" in printed
        assert "fills: async" in printed
        assert "2026-11-24T15:45:00-05:00" in printed
        assert trading_client(url).get_clock().is_open is True
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "simulator stopped" in out
