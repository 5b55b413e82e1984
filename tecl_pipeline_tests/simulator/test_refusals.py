"""The broker simulator refuses what Alpaca refuses, the way Alpaca does (422 naming the
field, 400 for a body that is not an object), keeps its book file honest, and never lets a
queued order overdraw the account (R3, B3).

Requests go over HTTP with `requests`, below alpaca-py, so that the exact query strings and
bodies alpaca-py would never send can be tried.
"""

import base64
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BookFileError, BrokerSimulator, FillMode
from tecl_pipeline.simulator.faults import FaultPlan, FaultPlanError
from tecl_pipeline.simulator.persist import BookStore
from tecl_pipeline_tests.simulator import simulator_fixtures
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_KEY,
    SIM_SECRET,
    SIM_SESSION,
    sim_admin,
)

# These tests are about what the broker refuses, not an order's life:
# orders fill in the POST here.
pytestmark = pytest.mark.instant_fills


simulator = simulator_fixtures.simulator
sim_calendar = simulator_fixtures.sim_calendar

AUTH = {"APCA-API-KEY-ID": SIM_KEY, "APCA-API-SECRET-KEY": SIM_SECRET}
ORDER = {
    "symbol": "TECL",
    "side": "buy",
    "qty": "1",
    "type": "market",
    "time_in_force": "day",
    "client_order_id": "edge-1",
}
BARS = {"symbols": "SPY", "timeframe": "1Day", "adjustment": "all", "feed": "iex"}


def call(url: str, method: str, path: str, *, params=None, body=None) -> requests.Response:
    data = None if body is None else json.dumps(body)
    return requests.request(method, url + path, params=params, data=data, headers=AUTH, timeout=10)


# -- requests refused as Alpaca refuses them --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "match"),
    [
        ("/v2/orders", {"status": "pending"}, "invalid status 'pending'"),
        ("/v2/orders", {"direction": "up"}, "invalid direction 'up'"),
        ("/v2/orders", {"limit": "0"}, "invalid limit: 0 is outside 1..500"),
        ("/v2/orders", {"limit": "ten"}, "invalid limit: 'ten' is not an integer"),
        ("/v2/orders", {"after": "yesterday"}, "not an RFC 3339 time or a date"),
        ("/v2/orders:by_client_order_id", {}, "client_order_id is required"),
        ("/v2/stocks/bars", {**BARS, "sort": "up"}, "invalid sort 'up'"),
        ("/v2/stocks/bars", {**BARS, "feed": "nyse"}, "invalid feed 'nyse'"),
        ("/v2/stocks/bars", {**BARS, "symbols": " , "}, "symbols is required"),
        (
            "/v2/stocks/bars",
            {**BARS, "start": "2026-11-20", "end": "2026-11-10"},
            "end should not be before start",
        ),
        ("/v2/stocks/bars", {**BARS, "page_token": "%%%"}, "invalid page_token"),
        (
            "/v2/stocks/bars",
            {**BARS, "page_token": base64.urlsafe_b64encode(b"no separator").decode()},
            "invalid page_token",
        ),
        ("/v2/calendar", {"start": "someday"}, "invalid start: 'someday'"),
    ],
)
def test_bad_query_parameters_are_422_naming_them(simulator, path, params, match):
    answer = call(simulator.url, "GET", path, params=params)
    assert answer.status_code == 422, answer.text
    assert match in answer.json()["message"]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"type": None}, "type is required"),
        ({"notional": "100"}, "by qty only, not by notional"),
        ({"order_class": "bracket"}, "simple orders only"),
        ({"extended_hours": True}, 'only type="limit" is allowed for extended hours'),
        ({"time_in_force": None}, "time_in_force is required"),
        ({"client_order_id": "x" * 129}, "at most 128 characters"),
        ({"client_order_id": 42}, "at most 128 characters"),
        ({"qty": True}, "invalid qty: True"),
        ({"qty": "a dozen"}, "invalid qty: 'a dozen'"),
    ],
)
def test_bad_order_bodies_are_422_naming_the_field_and_place_nothing(simulator, changes, match):
    body = {k: v for k, v in {**ORDER, **changes}.items() if v is not None}
    answer = call(simulator.url, "POST", "/v2/orders", body=body)
    assert answer.status_code == 422, answer.text
    assert match in answer.json()["message"]
    assert simulator.simulator.state()["orders"] == []


def test_an_order_body_that_is_not_an_object_is_400(simulator):
    answer = call(simulator.url, "POST", "/v2/orders", body=[ORDER])
    assert answer.status_code == 400
    assert "request body format is invalid" in answer.json()["message"]


def test_an_asset_without_prices_cannot_be_ordered(simulator):
    sim_admin(simulator.url, "/_sim/assets/NEWCO", {"tradable": True})
    answer = call(simulator.url, "POST", "/v2/orders", body={**ORDER, "symbol": "NEWCO"})
    assert answer.status_code == 422
    assert answer.json()["message"] == 'no price for "NEWCO" in the market data'


def test_bars_asked_for_after_the_clocks_session_are_none(simulator):
    """T1: the simulator never serves a bar from its own future."""
    later = SIM_SESSION + timedelta(days=7)
    params = {**BARS, "start": later.isoformat(), "end": (later + timedelta(days=7)).isoformat()}
    answer = call(simulator.url, "GET", "/v2/stocks/bars", params=params)
    assert answer.status_code == 200
    assert answer.json() == {"bars": {}, "next_page_token": None}


def test_the_calendars_last_session_still_has_a_settlement_date(simulator, sim_calendar):
    last = sim_calendar.last_session
    answer = call(simulator.url, "GET", "/v2/calendar", params={"start": last.isoformat()})
    (day,) = answer.json()
    assert day["date"] == last.isoformat()
    assert day["settlement_date"] == (last + timedelta(days=1)).isoformat()


# -- admin arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"seed": "7", "rules": []}, "seed must be an integer"),
        ({"seed": True, "rules": []}, "seed must be an integer"),
        ({"seed": 1, "rules": "server_error"}, "rules must be a list"),
    ],
)
def test_a_fault_plan_with_a_bad_seed_or_rules_is_refused(simulator, payload, match):
    answer = requests.post(simulator.url + "/_sim/faults", json=payload, timeout=10)
    assert answer.status_code == 400 and match in answer.text
    assert simulator.simulator.state()["fault_plan"]["rules"] == []


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        ({"kind": "latency", "after": -1}, "after must be >= 0"),
        ({"kind": "rate_limit", "retry_after": -1}, "retry_after must be >= 0"),
        ({"kind": "latency", "delay": -0.5}, "delay must be a finite number >= 0"),
        ({"kind": "latency", "delay": float("inf")}, "delay must be a finite number >= 0"),
        ({"kind": "latency", "endpoint": ""}, "endpoint must be a non-empty string"),
        ({"kind": "latency", "times": 1.5}, "times must be an integer"),
        ("latency", "must be a JSON object"),
    ],
)
def test_fault_rules_that_cannot_be_used_are_refused_naming_the_field(rule, match, seed):
    with pytest.raises(FaultPlanError, match=match):
        FaultPlan.from_json({"seed": seed, "rules": [rule]})


def test_a_fault_plan_must_be_an_object():
    with pytest.raises(FaultPlanError, match="must be a JSON object"):
        FaultPlan.from_json([{"kind": "latency"}])


def test_the_simulators_own_arguments_are_checked(simulator):
    sim = simulator.simulator
    with pytest.raises(ValueError, match="split ratio must be a number, got 'abc'"):
        sim.split("TECL", "abc")
    with pytest.raises(ValueError, match="key and secret must be non-empty"):
        sim.set_credentials("", "secret")
    with pytest.raises(TypeError, match="now must be a datetime, got str"):
        sim.set_clock("2026-11-24T15:45:00-05:00")
    assert sim.api_key == SIM_KEY
    assert sim.book_path is None and "account book" not in sim.description


# -- the book file ---------------------------------------------------------------------------


def make(calendar, book: Path | None, **kwargs) -> BrokerSimulator:
    moment = kwargs.pop("now", None) or calendar.decision_time(SIM_SESSION)
    market_data = DemoMarketData(calendar, now=lambda: moment)
    kwargs.setdefault("fills", FillMode.IMMEDIATE)
    return BrokerSimulator(market_data, calendar, now=moment, book_path=book, **kwargs)


def submit(sim: BrokerSimulator, cid: str, qty: str = "1", side: str = "buy"):
    return sim.submit_order({**ORDER, "client_order_id": cid, "qty": qty, "side": side})


@pytest.fixture
def book(tmp_path) -> Path:
    return tmp_path / "book.json"


def _edited(book: Path, change) -> bytes:
    document = json.loads(book.read_bytes())
    change(document)
    return json.dumps(document).encode()


def _order(index: int = 0):
    return lambda d: d["orders"][index]


INCONSISTENT = {
    "negative version": lambda d: d.update(version=-1),
    "empty position": lambda d: d["positions"]["TECL"].update(qty="0"),
    "repeated client id": lambda d: d["orders"][1].update(client_order_id="a"),
    "unknown time in force": lambda d: d["orders"][0].update(time_in_force="fok-ish"),
    "overfilled": lambda d: d["orders"][0].update(filled_qty="5"),
    "negative reads": lambda d: d["orders"][0].update(reads=-1),
    "gap in submissions": lambda d: d["submissions"][1].update(seq=7),
    "zero split": lambda d: d["split_ratios"].update(TECL="0"),
    "cash not finite": lambda d: d["account"].update(cash="NaN"),
    "cash not a number": lambda d: d["account"].update(cash="lots"),
    "time not a string": lambda d: d["orders"][0].update(created_at=1764017100),
    "session not a string": lambda d: d["orders"][0].update(session=20261124),
}


@pytest.mark.parametrize("problem", sorted(INCONSISTENT))
def test_a_book_that_does_not_add_up_is_refused_and_left_alone(sim_calendar, book, problem):
    """R3: a file that parses but contradicts itself is never loaded nor overwritten."""
    sim = make(sim_calendar, book)
    submit(sim, "a")
    submit(sim, "b")
    bad = _edited(book, INCONSISTENT[problem])
    book.write_bytes(bad)
    with pytest.raises(BookFileError) as caught:
        make(sim_calendar, book)
    assert caught.value.path == book
    assert book.read_bytes() == bad


def test_a_failed_save_is_not_kept_in_memory_either(sim_calendar, book, monkeypatch):
    """R3: when the book cannot be written, the simulator does not go on from an account
    the file does not have: the next operation starts again from the file."""
    sim = make(sim_calendar, book)
    submit(sim, "kept")
    real_write = BookStore.write
    failures = iter([True])

    def full_disk(self: BookStore, data: bytes) -> None:
        if next(failures, False):
            raise OSError(28, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(BookStore, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        submit(sim, "lost")
    assert [o["client_order_id"] for o in sim.state()["orders"]] == ["kept"]
    assert [o["client_order_id"] for o in make(sim_calendar, book).state()["orders"]] == ["kept"]
    assert sim.book_path == book and str(book) in sim.description


def test_a_queued_buy_the_account_can_no_longer_pay_is_canceled_at_the_open(sim_calendar):
    """R3: an order queued after the close fills at the next open only if the cash is still
    there; otherwise it is canceled, and the account is never overdrawn."""
    after_close = sim_calendar.close_time(SIM_SESSION) + timedelta(hours=1)
    sim = make(sim_calendar, None, now=after_close)
    queued = submit(sim, "queued", "10")
    assert queued["status"] == "accepted"

    sim.set_account(cash="0")
    next_session = sim_calendar.next_session(SIM_SESSION)
    sim.set_clock(sim_calendar.open_time(next_session) + timedelta(minutes=1))

    order = sim.order(queued["id"])
    assert order["status"] == "canceled" and order["filled_qty"] == "0"
    assert sim.state()["positions"] == {}
    assert Decimal(sim.account()["cash"]) == 0
    assert isinstance(sim.now, datetime) and sim.now.tzinfo is not None
    assert sim.now.astimezone(EXCHANGE_TZ).date() == next_session
