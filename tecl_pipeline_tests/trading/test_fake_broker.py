"""The in-memory broker keeps the `Broker` protocol and behaves as the real adapter does
against the simulator, so the fast execution tests built on it cannot drift (R3)."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.core.errors import SessionReversalError
from tecl_pipeline.core.universe import HOLDINGS
from tecl_pipeline.simulator import SimulatorServer
from tecl_pipeline.trading.broker import Broker
from tecl_pipeline.trading.credentials import Credentials, StaticCredentials
from tecl_pipeline.trading.errors import (
    DuplicateClientOrderIdError,
    NotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
)
from tecl_pipeline.trading.execution import ExecutionPolicy, ExecutionReport, execute
from tecl_pipeline.trading.models import Order, OrderRequest, OrderSide, OrderStatus
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_KEY,
    SIM_SECRET,
    SIM_SESSION,
    hold_bil,
)
from tecl_pipeline_tests.trading.fake_broker import INSTANT, FakeBroker, Fills, partial
from tecl_pipeline_tests.trading.fake_time import FakeTime

NOW_PRICES = {"TECL": Decimal("100"), "BIL": Decimal("91.50")}


def fake(cash: Decimal = Decimal("100000"), fills: Fills = INSTANT) -> FakeBroker:
    return FakeBroker(
        prices=dict(NOW_PRICES),
        now=datetime(2026, 11, 24, 20, 45, tzinfo=UTC),
        cash=cash,
        fills=fills,
    )


def test_the_fake_is_a_broker() -> None:
    """The type checker holds the fake to the protocol: this assignment fails `make lint`
    when a method is missing or its signature differs."""
    broker: Broker = fake()

    assert broker.description
    assert broker.get_account().currency == "USD"


def test_a_client_order_id_is_placed_once() -> None:
    broker = fake()
    request = OrderRequest(
        symbol="TECL", side=OrderSide.BUY, qty=Decimal(1), client_order_id="tecl-x-1"
    )
    broker.submit_order(request)

    with pytest.raises(DuplicateClientOrderIdError):
        broker.submit_order(request)
    assert len(broker.orders) == 1


def test_a_lost_acknowledgement_leaves_the_order_at_the_broker() -> None:
    broker = fake()
    broker.lose_ack("tecl-x-1")
    request = OrderRequest(
        symbol="TECL", side=OrderSide.BUY, qty=Decimal(2), client_order_id="tecl-x-1"
    )

    with pytest.raises(OutcomeUnknownError):
        broker.submit_order(request)

    found = broker.get_order_by_client_id("tecl-x-1")
    assert found is not None and found.status is OrderStatus.FILLED
    assert broker.held == {"TECL": Decimal(2)}


def test_refusals_are_the_brokers_errors() -> None:
    broker = fake(cash=Decimal("150"))
    broker.reject("BIL", 'asset "BIL" is halted')

    def buy(symbol: str, qty: str, cid: str) -> Order:
        return broker.submit_order(
            OrderRequest(symbol=symbol, side=OrderSide.BUY, qty=Decimal(qty), client_order_id=cid)
        )

    with pytest.raises(OrderRejectedError, match="halted"):
        buy("BIL", "1", "a")
    with pytest.raises(OrderRejectedError, match="buying power"):
        buy("TECL", "2", "b")
    with pytest.raises(OrderRejectedError, match="insufficient qty"):
        broker.submit_order(
            OrderRequest(symbol="TECL", side=OrderSide.SELL, qty=Decimal(1), client_order_id="c")
        )
    with pytest.raises(NotFoundError):
        broker.get_order("no-such-order")
    assert broker.orders == [] and broker.cash == Decimal("150")


def test_reads_move_a_partial_fill_on_and_money_follows() -> None:
    broker = fake(fills=partial(4))
    order = broker.submit_order(
        OrderRequest(symbol="TECL", side=OrderSide.BUY, qty=Decimal(8), client_order_id="p-1")
    )
    assert order.status is OrderStatus.NEW and broker.held == {}

    read = broker.get_order(order.id)

    assert (read.status, read.filled_qty) == (OrderStatus.PARTIALLY_FILLED, Decimal(2))
    assert broker.cash == Decimal("100000") - Decimal("200.00")
    assert broker.get_account().buying_power == broker.cash - Decimal("600.00")
    broker.cancel_order(order.id)
    assert broker.get_order(order.id).status is OrderStatus.CANCELED
    assert broker.held == {"TECL": Decimal(2)}


# -- the fake against the real adapter over HTTP ------------------------------------------

SESSION = SIM_SESSION
ALL_TECL = {"TECL": Decimal(1)}
MIX = {"UVXY": Decimal("0.25"), "BIL": Decimal("0.75")}
SHORT = ExecutionPolicy(fill_timeout=1.0, poll_interval=1.0, first_poll=1.0)  # one look
FAST = ExecutionPolicy(fill_timeout=10.0, poll_interval=1.0)


@dataclass(frozen=True)
class Outcome:
    """What a scenario leaves behind, in terms both brokers share."""

    reports: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]], ...]
    refusal: str
    orders: tuple[tuple[str, OrderSide, str, Decimal, Decimal, OrderStatus], ...]
    positions: dict[str, Decimal]
    cash: Decimal


def summary(
    report: ExecutionReport,
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    return (
        tuple(o.client_order_id for o in report.sent),
        report.skipped,
        report.cancelled,
    )


def scenario(
    broker: Broker,
    hold_bil_first: Callable[[], None],
    set_fills: Callable[[str], None],
    prices: dict[str, Decimal],
    calendar: TradingCalendar,
) -> Outcome:
    """Hold BIL; switch to TECL while orders fill in four steps and time runs out after one
    (a partial sell, then buys sized on what is left); finish with instant fills; then a
    decision that would reverse the session's trades."""
    hold_bil_first()
    set_fills("partial")
    first = execute(
        broker, SESSION, ALL_TECL, prices, SHORT, FakeTime().pacing(), calendar=calendar
    )
    set_fills("instant")
    second = execute(
        broker, SESSION, ALL_TECL, prices, FAST, FakeTime().pacing(), calendar=calendar
    )
    with pytest.raises(SessionReversalError) as refused:
        execute(broker, SESSION, MIX, prices, FAST, FakeTime().pacing(), calendar=calendar)
    orders = broker.list_orders("")
    return Outcome(
        reports=(summary(first), summary(second)),
        refusal=str(refused.value),
        orders=tuple(
            (o.client_order_id, o.side, o.symbol, o.qty, o.filled_qty, o.status) for o in orders
        ),
        positions={s: p.qty for s, p in broker.get_positions().items()},
        cash=broker.get_account().cash,
    )


@pytest.fixture
def real(simulator: SimulatorServer) -> Iterator[AlpacaBroker]:
    with AlpacaBroker(
        StaticCredentials(Credentials(SIM_KEY, SIM_SECRET)),
        paper=True,
        url=simulator.url,
        timeout=5.0,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, deadline=5.0),
    ) as broker:
        yield broker


def test_the_fake_trades_a_session_as_the_adapter_does_against_the_simulator(
    real: AlpacaBroker, simulator: SimulatorServer, sim_calendar: TradingCalendar
) -> None:
    """The same scenario, on the real adapter over HTTP and on the fake, leaves the same
    orders (ids, quantities, fills, states), positions, cash and reports."""
    prices = {s: p for s in HOLDINGS if (p := simulator.simulator.price(s)) is not None}
    sim = simulator.simulator
    on_real = scenario(
        real,
        lambda: hold_bil(simulator.url),
        lambda mode: (
            sim.set_fill_mode("partial", steps=4)
            if mode == "partial"
            else sim.set_fill_mode("immediate")
        ),
        prices,
        sim_calendar,
    )

    memory = FakeBroker(
        prices=prices,
        now=sim_calendar.decision_time(SESSION),
        cash=Decimal("100000"),  # the simulator's starting cash
        calendar=sim_calendar,
    )

    def fills(mode: str) -> None:
        memory.fills = partial(4) if mode == "partial" else INSTANT

    def hold() -> None:
        memory.place_as_another_run(
            OrderRequest(
                symbol="BIL", side=OrderSide.BUY, qty=Decimal(100), client_order_id="manual-bil-1"
            ),
            Fills(),
        )

    on_fake = scenario(memory, hold, fills, prices, sim_calendar)

    assert on_fake == on_real
    assert any(status is OrderStatus.CANCELED for *_, status in on_real.orders)
