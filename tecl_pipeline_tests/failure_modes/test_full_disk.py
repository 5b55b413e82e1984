"""A disk that fills mid-run (D1, D3): the broker simulator's account file cannot be written.

The simulator answers 500 and keeps its old account whole (temp file + rename, never
truncate-then-write); the run that sold and then could not buy alerts and says what filled;
once there is room again a re-run finishes the session without a second sell. The full disk
is the kernel's own ENOSPC: the book's temporary file is opened on /dev/full.
"""

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from dagster import DagsterInstance, ExecuteInProcessResult

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.run_report import EXIT_NOT_CLEAN, explain_result
from tecl_pipeline.marketdata.demo import DemoMarketData
from tecl_pipeline.simulator import BrokerSimulator, FillMode, SimulatorServer, persist
from tecl_pipeline.simulator.engine import DEMO_API_KEY, DEMO_API_SECRET
from tecl_pipeline_tests.simulator.simulator_fixtures import market_order, trading_client

SESSION = date(2026, 11, 24)
SOLD = "SQQQ"  # held before the session, not in its target: the run sells it, then buys


class FullDisk:
    """The book's writes land on /dev/full once `fill()` is called (or, with `when`, once a
    book about to be written contains those bytes)."""

    def __init__(self, when: bytes | None = None) -> None:
        self.full = False
        self.when = when
        self.failed_writes = 0

    def fill(self) -> None:
        self.full = True

    def write(
        self, real_write: Callable[[persist.BookStore, bytes], None]
    ) -> Callable[[persist.BookStore, bytes], None]:
        def write(store: persist.BookStore, data: bytes) -> None:
            if self.when is not None and self.when in data:
                self.full = True
            try:
                real_write(store, data)
            except OSError:
                self.failed_writes += 1
                raise

        return write

    def mkstemp(self, *, dir: Path, prefix: str, suffix: str) -> tuple[int, str]:
        fd, path = tempfile.mkstemp(dir=dir, prefix=prefix, suffix=suffix)
        if not self.full:
            return fd, path
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FullDisk]]:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")

    def install(when: bytes | None = None) -> FullDisk:
        disk = FullDisk(when)
        monkeypatch.setattr(persist, "tempfile", SimpleNamespace(mkstemp=disk.mkstemp))
        monkeypatch.setattr(persist.BookStore, "write", disk.write(persist.BookStore.write))
        return disk

    yield install


def _simulator(book: Path) -> BrokerSimulator:
    """A simulator on `book` that fills in the POST: what it places is held at once."""
    calendar = TradingCalendar()
    moment = calendar.decision_time(SESSION)
    return BrokerSimulator(
        DemoMarketData(calendar, now=lambda: moment),
        calendar,
        now=moment,
        book_path=book,
        fills=FillMode.IMMEDIATE,
    )


def test_a_full_disk_answers_500_and_keeps_the_old_account_whole(tmp_path, full_disk):
    book = tmp_path / "demo-broker" / "account.json"
    with SimulatorServer(_simulator(book)).start() as server:
        client = trading_client(server.url, key=DEMO_API_KEY, secret=DEMO_API_SECRET)
        market_order(client, "TECL", 2, "kept-1")
        before = book.read_bytes()
        disk = full_disk()
        disk.fill()

        with pytest.raises(APIError) as caught:
            market_order(client, "TECL", 3, "lost-1")

        assert caught.value.status_code == 500
        assert disk.failed_writes >= 1
        assert book.read_bytes() == before
        assert [p.name for p in book.parent.iterdir() if p.name.endswith(".tmp")] == []
        # Reads still answer, from the account the file holds: the lost order never was.
        every = GetOrdersRequest(status=QueryOrderStatus.ALL)
        assert [o.client_order_id for o in client.get_orders(every)] == ["kept-1"]
        assert client.get_open_position("TECL").qty == "2"
    reopened = _simulator(book).state()
    assert [o["client_order_id"] for o in reopened["orders"]] == ["kept-1"]


def _run(state_dir: Path) -> ExecuteInProcessResult:
    settings = Settings(state_uri=state_dir.as_uri())
    fast = {"broker": {"retry_base_delay_seconds": 0.01}}
    definitions = build_definitions(settings, resource_config=fast)
    return definitions.resolve_job_def("daily_trading_job").execute_in_process(
        partition_key=SESSION.isoformat(),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_a_disk_that_fills_after_the_sell_alerts_with_what_filled(tmp_path, full_disk):
    """The sell fills, the disk fills as the buy is placed: the run fails, alerts naming the
    filled sell and the positions, the account file still validates, and a re-run once there
    is room buys without selling twice."""
    state_dir = tmp_path / "state"
    book = state_dir / "demo-broker" / "account.json"
    seeded = _simulator(book)
    seeded.submit_order(
        {
            "symbol": SOLD,
            "qty": "40",
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "client_order_id": "manual-1",
        }
    )
    disk = full_disk(when=f"tecl-{SESSION:%Y%m%d}-buy-".encode())

    failed = _run(state_dir)

    assert not failed.success
    assert disk.failed_writes >= 1
    [failure] = failed.get_step_failure_events()
    assert failure.step_key == "executed_orders"
    user = failure.step_failure_data.user_failure_data
    assert user is not None and user.description is not None
    description = user.description
    sell = f"sell {SOLD} filled 40 of 40 [filled] tecl-{SESSION:%Y%m%d}-sell-{SOLD}-1"
    assert "trading stopped part way" in description and sell in description
    # What `tecl run` says: orders went out and the session did not end clean (exit 3), the
    # report ends with what to look at, the reason is one line naming the filled sell.
    outcome = explain_result(failed, SESSION)
    assert outcome.exit_code == EXIT_NOT_CLEAN
    assert sell in outcome.reason and "\n" not in outcome.reason
    assert "look at" in outcome.report and sell in outcome.report
    alerts = [
        json.loads(line)
        for line in (state_dir.parent / "logs" / "alerts.jsonl").read_text().splitlines()
    ]
    # One alert for the run: the step's own, which the run-failure hook does not repeat.
    [alert] = alerts
    assert alert["kind"] == "trading_incomplete"
    assert sell in alert["detail"] and alert["session"] == SESSION.isoformat()
    assert "positions now: none" in alert["detail"]
    state = _simulator(book).state()  # the file validates: nothing half-written
    assert state["positions"] == {}
    assert [o["client_order_id"] for o in state["orders"]] == [
        "manual-1",
        f"tecl-{SESSION:%Y%m%d}-sell-{SOLD}-1",
    ]

    disk.full, disk.when = False, None
    rerun = _run(state_dir)

    assert rerun.success
    sent = rerun.asset_value("executed_orders").sent
    assert sent and all(o.side.value == "buy" for o in sent)
    orders = _simulator(book).state()["orders"]
    assert sum(1 for o in orders if o["side"] == "sell") == 1
    assert Decimal(_simulator(book).state()["cash"]) >= 0


def test_a_disk_full_when_the_session_is_journaled_alerts_that_the_record_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The orders fill, then the disk is full for the journal and its spool alike (both
    passed their preflight): the run fails and the alert file holds a record_lost alert with
    the session, the filled orders and the positions, so the session is never silently
    unrecorded."""
    from tecl_pipeline.state.journal import local, spool

    real = spool.write_create_only

    def full_after_preflight(path: Path, data: bytes, *, mode: int = 0o644) -> None:
        if path.name.startswith(".p"):  # the preflight probes: there was room then
            return real(path, data, mode=mode)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local, "write_create_only", full_after_preflight)
    monkeypatch.setattr(spool, "write_create_only", full_after_preflight)
    state_dir = tmp_path / "state"

    result = _run(state_dir)

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "post_trade_positions"
    sent = result.asset_value("executed_orders").sent
    assert sent and all(o.status.value == "filled" for o in sent)
    alerts = [
        json.loads(line)
        for line in (state_dir.parent / "logs" / "alerts.jsonl").read_text().splitlines()
    ]
    [lost] = [a for a in alerts if a["kind"] == "record_lost"]
    assert lost["session"] == SESSION.isoformat() and lost["severity"] == "critical"
    assert "No space left on device" in lost["detail"]
    assert all(o.client_order_id in lost["detail"] for o in sent)
    assert not list((state_dir / "journal" / "sessions").rglob("*.json"))
