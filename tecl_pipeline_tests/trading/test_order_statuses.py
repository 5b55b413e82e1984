"""Every order status Alpaca documents has a meaning for a run, proven through alpaca-py over
HTTP against the simulator, which puts a working order in that status the moment the run
starts waiting for it (a market event) (B5, T6, B3):

- working statuses are waited for, then cancelled when the phase's time is up;
- `done_for_day` and `calculated` end the wait at once: nothing more fills today;
- `canceled`, `expired` and `rejected` after acceptance end it too, and the next run sends
  the leg's next attempt for what is still missing;
- `replaced` stops the run: this pipeline never replaces an order, so someone else did;
- a status Alpaca does not document stops the run in one sentence, never retried and never
  taken for a garbled answer.
"""

from datetime import datetime
from decimal import Decimal

import pytest
from alpaca.trading.enums import OrderStatus as AlpacaOrderStatus

from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.simulator import SimulatorServer
from tecl_pipeline.trading.errors import MalformedResponseError, OrderStateError
from tecl_pipeline.trading.execution import ExecutionReport, execute, leg_prefix
from tecl_pipeline.trading.models import Order, OrderSide, OrderStatus
from tecl_pipeline_tests.trading.fake_time import FakeTime
from tecl_pipeline_tests.trading.over_http import ALL_TECL, FAST, SESSION, submissions

FIRST_BUY = leg_prefix(SESSION, OrderSide.BUY, "TECL") + "1"
WORKING = (
    OrderStatus.PENDING_NEW,
    OrderStatus.ACCEPTED,
    OrderStatus.ACCEPTED_FOR_BIDDING,
    OrderStatus.PENDING_REVIEW,
    OrderStatus.NEW,
    OrderStatus.HELD,
    OrderStatus.SUSPENDED,
    OrderStatus.STOPPED,
    OrderStatus.PARTIALLY_FILLED,
    OrderStatus.PENDING_REPLACE,
    OrderStatus.PENDING_CANCEL,
)
# A cancel under way that the run did not ask for (someone's at the broker) completes alone.
WAITED_FOR_THEN_CANCELLED = tuple(s for s in WORKING if s is not OrderStatus.PENDING_CANCEL)
DONE_FOR_THE_SESSION = (OrderStatus.DONE_FOR_DAY, OrderStatus.CALCULATED)
ENDED_AT_THE_BROKER = (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


class MarketEvent(FakeTime):
    """Execution's clock; its first wait moves the order `client_order_id` to `status` at
    the simulator, as a broker's market event would while the run polls."""

    def __init__(self, server: SimulatorServer, client_order_id: str, status: str) -> None:
        super().__init__()
        self._move = lambda: server.simulator.set_order_status(client_order_id, status)

    def sleep(self, seconds: float) -> None:
        if not self.sleeps:
            self._move()
        super().sleep(seconds)


def _buy_into(
    status: str,
    client: AlpacaBroker,
    prices: dict[str, Decimal],
    simulator: SimulatorServer,
    fills: str = "never",
) -> tuple[ExecutionReport, MarketEvent]:
    """A session that buys TECL, whose order does not fill and is moved to `status`."""
    simulator.simulator.set_fill_mode(fills)
    clock = MarketEvent(simulator, FIRST_BUY, status)
    return execute(client, SESSION, ALL_TECL, prices, FAST, clock.pacing()), clock


def test_the_statuses_are_alpacas_own():
    """The contract with alpaca-py's enum, both ways: a status Alpaca adds fails here first."""
    assert {s.value for s in OrderStatus} == {s.value for s in AlpacaOrderStatus}
    assert set(WORKING) | set(DONE_FOR_THE_SESSION) | set(ENDED_AT_THE_BROKER) | {
        OrderStatus.FILLED,
        OrderStatus.REPLACED,
    } == set(OrderStatus)


def test_only_statuses_that_can_still_fill_keep_a_run_waiting():
    assert not any(status.is_final for status in WORKING)
    assert all(status.is_final for status in (*DONE_FOR_THE_SESSION, *ENDED_AT_THE_BROKER))
    assert OrderStatus.FILLED.is_final and OrderStatus.REPLACED.is_final


def _view(status: OrderStatus, filled: str) -> Order:
    return Order(
        id="order-1",
        client_order_id=FIRST_BUY,
        symbol="TECL",
        side=OrderSide.BUY,
        qty=Decimal(10),
        filled_qty=Decimal(filled),
        filled_avg_price=None,
        status=status,
        submitted_at=datetime(2026, 11, 24, 15, 45, tzinfo=EXCHANGE_TZ),
    )


def test_a_late_update_never_moves_an_order_back_along_its_life():
    """B5: views of one order arriving out of order: the later one in its life wins, the
    stale one loses, whichever arrives last; a held or suspended order that turns new again
    is judged by its fills."""
    pairs = [
        (_view(OrderStatus.DONE_FOR_DAY, "4"), _view(OrderStatus.PARTIALLY_FILLED, "4")),
        (_view(OrderStatus.EXPIRED, "4"), _view(OrderStatus.DONE_FOR_DAY, "4")),
        (_view(OrderStatus.CANCELED, "0"), _view(OrderStatus.PENDING_CANCEL, "0")),
        (_view(OrderStatus.NEW, "2"), _view(OrderStatus.HELD, "0")),
        (_view(OrderStatus.PARTIALLY_FILLED, "3"), _view(OrderStatus.ACCEPTED, "0")),
    ]
    for later, stale in pairs:
        assert later.newer_than(stale) and not stale.newer_than(later), (later, stale)
    life = [
        OrderStatus.PENDING_NEW,
        OrderStatus.ACCEPTED,
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.DONE_FOR_DAY,
        OrderStatus.EXPIRED,
    ]
    ranks = [status.rank for status in life]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    for resting in (OrderStatus.HELD, OrderStatus.SUSPENDED, OrderStatus.STOPPED):
        assert resting.rank == OrderStatus.NEW.rank  # it may go back to new: the fills decide


@pytest.mark.parametrize("status", WAITED_FOR_THEN_CANCELLED, ids=str)
def test_a_working_order_is_waited_for_then_cancelled(status, client, prices, simulator):
    """T6: whatever working status the broker shows, the run waits the phase's time for a
    fill, then cancels the order, and reports it cancelled."""
    report, clock = _buy_into(status, client, prices, simulator)

    [order] = report.sent
    assert sum(clock.sleeps) >= FAST.fill_timeout
    assert report.cancelled == (FIRST_BUY,)
    assert order.status is OrderStatus.CANCELED


def test_the_runs_own_cancel_is_followed_through_pending_cancel(client, prices, simulator):
    """As Alpaca cancels: the DELETE is answered at once, the order reads pending_cancel, then
    canceled. The run waits for the cancel to take before it reports, so the report never
    leaves an order working that the broker is about to close."""
    report, clock = _buy_into(OrderStatus.HELD, client, prices, simulator, fills="async")

    [order] = report.sent
    assert report.cancelled == (FIRST_BUY,)
    assert order.status is OrderStatus.CANCELED
    assert sum(clock.sleeps) > FAST.fill_timeout, "a look after the cancel, past the timeout"


def test_a_cancel_someone_else_started_is_waited_for_and_not_repeated(client, prices, simulator):
    report, _ = _buy_into(OrderStatus.PENDING_CANCEL, client, prices, simulator)

    [order] = report.sent
    assert order.status is OrderStatus.CANCELED
    assert report.cancelled == ()


@pytest.mark.parametrize("status", DONE_FOR_THE_SESSION, ids=str)
def test_an_order_done_for_the_day_ends_the_wait_and_is_not_cancelled(
    status, client, prices, simulator
):
    report, clock = _buy_into(status, client, prices, simulator)

    [order] = report.sent
    assert order.status is status
    assert clock.sleeps == [FAST.first_poll], "one poll saw it, and the wait ended"
    assert report.cancelled == ()


@pytest.mark.parametrize("status", ENDED_AT_THE_BROKER, ids=str)
def test_an_order_ended_by_the_broker_after_acceptance_is_retried_by_the_next_run(
    status, client, prices, simulator
):
    """A rejection (or cancel, or expiry) after the POST was accepted: the run stops waiting
    and cancels nothing; the next run plans from the positions and sends the leg's second
    attempt for what is still missing, never a second order under the first's id."""
    report, clock = _buy_into(status, client, prices, simulator)

    [order] = report.sent
    assert order.status is status and order.filled_qty == 0
    assert report.cancelled == () and len(clock.sleeps) == 1

    simulator.simulator.set_fill_mode("immediate")
    [second] = execute(client, SESSION, ALL_TECL, prices, FAST).sent
    assert second.client_order_id == leg_prefix(SESSION, OrderSide.BUY, "TECL") + "2"
    assert second.status is OrderStatus.FILLED
    assert [s["client_order_id"] for s in submissions(simulator)] == [
        FIRST_BUY,
        second.client_order_id,
    ]


def test_an_order_replaced_by_someone_else_stops_the_run_and_the_next(client, prices, simulator):
    """Someone replaced the run's order at the broker (this pipeline never does): the run
    stops naming the order, and so does every later run of the session, sending nothing."""
    with pytest.raises(OrderStateError, match=f"order {FIRST_BUY} was replaced") as stopped:
        _buy_into(OrderStatus.REPLACED, client, prices, simulator)
    assert "no further order this session" in str(stopped.value)

    simulator.simulator.set_fill_mode("immediate")
    with pytest.raises(OrderStateError, match=f"order {FIRST_BUY} was replaced"):
        execute(client, SESSION, ALL_TECL, prices, FAST)
    assert [s["client_order_id"] for s in submissions(simulator)] == [FIRST_BUY]


@pytest.mark.off_contract
def test_a_status_alpaca_does_not_document_stops_the_run_without_retrying(
    client, prices, simulator
):
    """B3: a well-formed order in a status nobody documents is not a garbled answer to ask
    again about (which would send the fill wait into its retries): one read, one sentence
    naming the order and the status, and nothing more is sent."""
    with pytest.raises(OrderStateError) as stopped:
        _buy_into("frozen_for_review", client, prices, simulator)

    message = str(stopped.value)
    assert not isinstance(stopped.value, MalformedResponseError)
    assert f"order {FIRST_BUY} is in status 'frozen_for_review'" in message
    assert "not one of Alpaca's documented order statuses" in message
    assert "\n" not in message
    assert [s["client_order_id"] for s in submissions(simulator)] == [FIRST_BUY]
    assert simulator.simulator.state()["requests"]["GET /v2/orders/{id}"] == 1
