"""The simulator's account on disk (`book_path`): simulators on one book file, in one process or
several, see one account; the file is validated, written atomically under a file lock, and
never holds a secret."""

# The simulator fixtures are imported below; pytest injects them into tests by name.
# ruff: noqa: F811

import json
import random
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BookFileError, BrokerSimulator, FillMode, SimulatorServer
from tecl_pipeline.simulator.wire import ApiError
from tecl_pipeline_tests.simulator.simulator_fixtures import (  # noqa: F401 (fixtures)
    SIM_SESSION,
    amount,
    sim_calendar,
    trading_client,
)

REPO = Path(__file__).resolve().parents[2]
CENT = Decimal("0.01")
NEXT_SESSION = date(2026, 11, 25)


def make(calendar, book: Path | None, *, now: datetime | None = None, **kwargs) -> BrokerSimulator:
    """A simulator on `book`; orders fill in the POST unless `fills` says otherwise (these
    tests are about the shared file, not an order's life)."""
    moment = now or calendar.decision_time(SIM_SESSION)
    market_data = DemoMarketData(calendar, now=lambda: moment)
    kwargs.setdefault("fills", FillMode.IMMEDIATE)
    return BrokerSimulator(market_data, calendar, now=moment, book_path=book, **kwargs)


def submit(sim: BrokerSimulator, cid: str, qty: str = "1", symbol: str = "TECL", side="buy"):
    return sim.submit_order(
        {
            "symbol": symbol,
            "qty": qty,
            "side": side,
            "type": "market",
            "time_in_force": "day",
            "client_order_id": cid,
        }
    )


def client_ids(sim: BrokerSimulator) -> list[str]:
    return [o["client_order_id"] for o in sim.state()["orders"]]


def on_disk(book: Path) -> dict:
    return json.loads(book.read_text())


@pytest.fixture
def book(tmp_path) -> Path:
    return tmp_path / "demo" / "book.json"


# -- one account across simulators ----------------------------------------------------------------


def test_two_simulators_on_one_book_see_each_others_orders_and_positions(sim_calendar, book):
    first = make(sim_calendar, book)
    assert book.exists() and on_disk(book)["version"] == 1  # created with the fresh account
    second = make(sim_calendar, book)
    bought = submit(first, "p-buy", "10")
    assert bought["status"] == "filled"

    assert client_ids(second) == ["p-buy"]
    assert second.position("TECL")["qty"] == "10"
    assert second.order(bought["id"]) == first.order(bought["id"])
    assert second.account()["cash"] == first.account()["cash"]
    assert Decimal(second.account()["cash"]) == Decimal(100000) - (
        10 * amount(first.price("TECL"))
    ).quantize(CENT)

    sold = submit(second, "p-sell", "4", side="sell")
    assert sold["status"] == "filled" and sold["id"] != bought["id"]
    assert first.position("TECL")["qty"] == "6"
    assert client_ids(first) == ["p-buy", "p-sell"]
    assert [s["client_order_id"] for s in first.state()["submissions"]] == ["p-buy", "p-sell"]
    # A third simulator, started after the others stopped changing it, sees it all.
    third = make(sim_calendar, book)
    assert third.state()["positions"] == first.state()["positions"]
    assert third.state()["orders"] == first.state()["orders"]


def test_a_client_order_id_used_by_one_simulator_is_a_duplicate_in_the_other(sim_calendar, book):
    first, second = make(sim_calendar, book), make(sim_calendar, book)
    submit(first, "dup-1")
    with pytest.raises(ApiError) as caught:
        submit(second, "dup-1")
    assert caught.value.status == 422 and "client_order_id must be unique" in caught.value.message
    # The rejected attempt is logged, and the log is shared too.
    log = first.state()["submissions"]
    assert [(s["client_order_id"], s["http_status"]) for s in log] == [
        ("dup-1", 200),
        ("dup-1", 422),
    ]
    assert client_ids(first) == ["dup-1"]


def test_partial_fill_progress_survives_across_simulators(sim_calendar, book):
    first = make(sim_calendar, book)
    first.set_fill_mode("partial", steps=3)
    placed = submit(first, "partial-1", "9")
    assert first.order(placed["id"])["filled_qty"] == "3"
    # The second simulator's own fill mode (immediate) does not touch an order in flight.
    second = make(sim_calendar, book)
    assert second.order(placed["id"])["filled_qty"] == "6"
    assert second.position("TECL")["qty"] == "6"
    assert on_disk(book)["orders"][0]["reads"] == 2
    final = first.order_by_client_id("partial-1")
    assert (final["status"], final["filled_qty"]) == ("filled", "9")
    assert second.position("TECL")["qty"] == "9"
    price = amount(first.price("TECL"))
    assert Decimal(second.account()["cash"]) == Decimal(100000) - sum(
        ((3 * price).quantize(CENT) for _ in range(3)), Decimal(0)
    )


def test_a_status_a_market_event_set_is_shared_and_survives_a_new_simulator(sim_calendar, book):
    first = make(sim_calendar, book)
    first.set_fill_mode("never")
    placed = submit(first, "held-1", "2")
    first.set_order_status("held-1", "held")
    assert make(sim_calendar, book).order(placed["id"])["status"] == "held"
    assert on_disk(book)["orders"][0]["status"] == "held"


def test_cancel_expiry_splits_assets_and_account_are_shared_but_not_clock_faults_or_fills(
    sim_calendar, book, seed
):
    first, second = make(sim_calendar, book), make(sim_calendar, book)
    first.set_fill_mode("never")
    first.set_faults(seed, [{"endpoint": "GET /v2/clock", "kind": "server_error"}])
    kept = submit(first, "never-1")
    gone = submit(first, "never-2")
    second.cancel_order(gone["id"])
    assert first.order(gone["id"])["status"] == "canceled"

    close = datetime(2026, 11, 24, 16, 1, tzinfo=EXCHANGE_TZ)
    first.set_clock(close)
    assert second.order(kept["id"])["status"] == "expired"
    assert second.now == sim_calendar.decision_time(SIM_SESSION)  # the clock is per simulator

    tecl = amount(second.price("TECL"))
    first.split("TECL", 2)
    first.set_asset("SPY", halted=True)
    first.set_asset("NEWSYM", tradable=False)
    first.set_account(cash="2500.50", trading_blocked=False, currency="USD")
    state = second.state()
    assert state["split_ratios"] == {"TECL": "2"} and second.price("TECL") == tecl / 2
    assert state["assets"]["SPY"]["halted"] is True
    assert state["assets"]["NEWSYM"]["tradable"] is False
    assert state["cash"] == "2500.5"
    assert state["fault_plan"]["rules"] == [] and state["fill_mode"]["mode"] == "immediate"
    with pytest.raises(ApiError, match="halted"):
        submit(second, "halted-1", symbol="SPY")
    assert client_ids(first) == ["never-1", "never-2"]


def test_a_later_simulator_moves_loaded_orders_on_to_its_own_clock(sim_calendar, book):
    """The clock is not in the file: a run on the next session expires yesterday's DAY order
    and starts an order queued for its session."""
    first = make(sim_calendar, book)
    first.set_fill_mode("never")
    stale = submit(first, "stale-day")
    first.set_fill_mode("immediate")
    first.set_clock(datetime(2026, 11, 24, 18, tzinfo=EXCHANGE_TZ))
    queued = submit(first, "queued", "2")
    assert queued["status"] == "accepted"

    later = make(sim_calendar, book, now=sim_calendar.decision_time(NEXT_SESSION))
    assert later.order(stale["id"])["status"] == "expired"
    assert later.order(queued["id"])["status"] == "filled"
    assert later.position("TECL")["qty"] == "2"
    statuses = {o["client_order_id"]: o["status"] for o in on_disk(book)["orders"]}
    assert statuses == {"stale-day": "expired", "queued": "filled"}


def test_reset_saves_a_fresh_account_for_everyone_and_a_deleted_book_starts_afresh(
    sim_calendar, book
):
    first, second = make(sim_calendar, book), make(sim_calendar, book)
    submit(first, "before-reset")
    version = on_disk(book)["version"]
    second.reset()
    assert book.exists() and on_disk(book)["version"] == version + 1
    assert on_disk(book)["orders"] == [] and client_ids(first) == []
    assert first.account()["cash"] == "100000"
    submit(first, "before-reset")  # ids start afresh everywhere
    book.unlink()
    assert client_ids(second) == []
    submit(second, "after-delete")
    assert client_ids(first) == ["after-delete"]


def test_reads_do_not_rewrite_the_book(sim_calendar, book):
    sim = make(sim_calendar, book)
    submit(sim, "quiet")
    before = book.read_bytes(), book.stat().st_mtime_ns
    sim.account()
    sim.positions()
    sim.state()
    sim.orders({"status": "all"})
    sim.bars({"symbols": "TECL", "timeframe": "1Day", "adjustment": "all", "feed": "iex"})
    assert (book.read_bytes(), book.stat().st_mtime_ns) == before


def test_two_http_servers_on_one_book_serve_one_account(sim_calendar, book):
    """Demo mode: an embedded simulator per process, each behind its own server."""
    with (
        SimulatorServer(make(sim_calendar, book)) as one,
        SimulatorServer(make(sim_calendar, book)) as two,
    ):
        request = MarketOrderRequest(
            symbol="TECL",
            qty=3,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id="http-1",
        )
        placed = trading_client(one.url).submit_order(request)
        other = trading_client(two.url)
        (seen,) = other.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
        assert (seen.id, seen.status) == (placed.id, OrderStatus.FILLED)
        assert other.get_open_position("TECL").qty == "3"
        with pytest.raises(APIError) as caught:
            other.submit_order(request)
        assert caught.value.status_code == 422


# -- other processes ------------------------------------------------------------------------------

_SCRIPT = """
import json, sys
from datetime import date
from pathlib import Path
from tecl_pipeline.simulator import BrokerSimulator, FillMode
from tecl_pipeline.simulator.wire import ApiError
from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.marketdata.demo import DemoMarketData

calendar = TradingCalendar(start=date(2018, 1, 1), end=date(2027, 12, 31))
now = calendar.decision_time(date(2026, 11, 24))
sim = BrokerSimulator(
    DemoMarketData(calendar, now=lambda: now),
    calendar,
    now=now,
    book_path=Path(sys.argv[1]),
    fills=FillMode.IMMEDIATE,
)
order = {"symbol": "TECL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
try:
    sim.submit_order({**order, "client_order_id": sys.argv[2]})
    outcome = "placed"
except ApiError as exc:
    outcome = f"{exc.status} {exc.message}"
state = sim.state()
print(json.dumps({
    "outcome": outcome,
    "orders": [o["client_order_id"] for o in state["orders"]],
    "positions": state["positions"],
}))
"""


def _in_another_process(book: Path, cid: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(book), cid],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_second_process_sees_the_first_ones_orders_and_positions(sim_calendar, book):
    first = _in_another_process(book, "proc-1")
    assert (first["outcome"], first["orders"]) == ("placed", ["proc-1"])
    assert first["positions"]["TECL"]["qty"] == "1"
    here = make(sim_calendar, book)
    assert client_ids(here) == ["proc-1"]
    submit(here, "here-1")
    second = _in_another_process(book, "proc-2")
    assert second["outcome"] == "placed"
    assert second["orders"] == ["proc-1", "here-1", "proc-2"]
    assert second["positions"]["TECL"]["qty"] == "3"
    again = _in_another_process(book, "proc-1")
    assert again["outcome"] == "422 client_order_id must be unique"
    assert here.position("TECL")["qty"] == "3"


# -- the file -------------------------------------------------------------------------------------


def _valid_book(calendar, book: Path) -> bytes:
    sim = make(calendar, book)
    submit(sim, "valid")
    return book.read_bytes()


def _edit(data: bytes, change) -> bytes:
    document = json.loads(data)
    change(document)
    return json.dumps(document).encode()


CORRUPTIONS = {
    "garbage": lambda data: b"\x00\xffnot json at all",
    "empty": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
    "not a book": lambda data: b'{"cash": "100"}',
    "future schema": lambda data: _edit(data, lambda d: d.update(schema_version=2)),
    "float cash": lambda data: _edit(data, lambda d: d["account"].update(cash=100.5)),
    "naive time": lambda data: _edit(
        data, lambda d: d["orders"][0].update(created_at="2026-11-24T15:45:00")
    ),
    "status not in wire form": lambda data: _edit(
        data, lambda d: d["orders"][0].update(status="Filled!")
    ),
    "unknown field": lambda data: _edit(data, lambda d: d.update(api_secret="x")),
    "gap in orders": lambda data: _edit(data, lambda d: d["orders"][0].update(seq=2)),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_book_raises_naming_the_path_and_is_left_untouched(
    sim_calendar, book, corruption
):
    bad = CORRUPTIONS[corruption](_valid_book(sim_calendar, book))
    book.write_bytes(bad)
    with pytest.raises(BookFileError) as caught:
        make(sim_calendar, book)
    assert str(book) in str(caught.value) and caught.value.path == book
    assert book.read_bytes() == bad
    assert sorted(p.name for p in book.parent.iterdir()) == ["book.json", "book.json.lock"]


def test_a_book_corrupted_under_a_running_simulator_stops_it_without_overwriting(
    sim_calendar, book
):
    sim = make(sim_calendar, book)
    submit(sim, "before")
    book.write_bytes(b"{ oops")
    for call in (
        lambda: submit(sim, "after"),
        sim.account,
        sim.state,
        sim.reset,
        lambda: sim.set_clock(datetime(2026, 11, 25, 10, tzinfo=EXCHANGE_TZ)),
    ):
        with pytest.raises(BookFileError, match=str(book)):
            call()
        assert book.read_bytes() == b"{ oops"


def test_no_secret_reaches_the_disk(sim_calendar, book):
    secrets = ["persist-key-4711", "persist-secret-4711", "rotated-key-0815", "rotated-secret-0815"]
    sim = make(sim_calendar, book, api_key=secrets[0], api_secret=secrets[1])
    sim.set_credentials(secrets[2], secrets[3])
    submit(sim, "no-credentials")
    sim.record_unprocessed_submission({"symbol": "TECL"}, "server_error", 500)
    text = book.read_text()
    assert not [s for s in secrets if s in text]
    assert "sim-secret" not in text and "secret" not in text.lower()
    assert book.with_name("book.json.lock").read_bytes() == b""


def test_money_and_times_are_strings_in_the_file(sim_calendar, book):
    sim = make(sim_calendar, book)
    submit(sim, "fraction", "0.123456789", symbol="BIL")
    document = on_disk(book)
    assert document["schema_version"] == 1
    (order,) = document["orders"]
    assert order["qty"] == "0.123456789" and isinstance(order["filled_value"], str)
    assert datetime.fromisoformat(order["created_at"]).utcoffset() is not None
    assert isinstance(document["account"]["cash"], str)
    holding = document["positions"]["BIL"]
    again = make(sim_calendar, book)
    assert Decimal(again.position("BIL")["qty"]) == Decimal(holding["qty"])


# -- concurrency ----------------------------------------------------------------------------------


def test_concurrent_submits_on_two_simulators_never_lose_an_order(sim_calendar, book, seed):
    per_thread = 25
    symbols = ("TECL", "SPY", "BIL", "TQQQ")
    cash = Decimal(10_000_000)  # enough for every order: none is refused
    sims = [make(sim_calendar, book, starting_cash=cash), make(sim_calendar, book)]
    barrier = threading.Barrier(len(sims))
    failures: list[BaseException] = []
    placed: list[tuple[str, str, Decimal]] = []
    placed_lock = threading.Lock()

    def worker(index: int) -> None:
        rng = random.Random(seed * 2 + index)
        sim = sims[index]
        try:
            barrier.wait()
            for n in range(per_thread):
                symbol, qty = rng.choice(symbols), Decimal(rng.randint(1, 3))
                cid = f"t{index}-{n}"
                submit(sim, cid, str(qty), symbol=symbol)
                with placed_lock:
                    placed.append((cid, symbol, qty))
                if rng.random() < 0.3:
                    sim.positions()
                time.sleep(rng.random() / 1000)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(sims))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures

    state = make(sim_calendar, book).state()
    assert sorted(client_ids(sims[0])) == sorted(cid for cid, _, _ in placed)
    assert len(state["orders"]) == 2 * per_thread == len({o["id"] for o in state["orders"]})
    assert [s["seq"] for s in state["submissions"]] == list(range(1, 2 * per_thread + 1))
    assert {o["status"] for o in state["orders"]} == {"filled"}
    expected: dict[str, Decimal] = {}
    for _, symbol, qty in placed:
        expected[symbol] = expected.get(symbol, Decimal(0)) + qty
    assert {s: Decimal(p["qty"]) for s, p in state["positions"].items()} == expected
    spent = sum(((q * amount(sims[0].price(s))).quantize(CENT) for _, s, q in placed), Decimal(0))
    assert Decimal(state["cash"]) == cash - spent
    assert on_disk(book)["version"] >= 1 + 2 * per_thread
