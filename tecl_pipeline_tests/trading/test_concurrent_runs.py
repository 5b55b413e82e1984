"""Two runs of one session that share nothing but the broker (no lock, no local state): each
is paused at one point of its work while the other trades the whole session, through the real
alpaca-py client against the simulator. No leg may fill twice (C2, X3)."""

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.core.errors import SessionReversalError
from tecl_pipeline.core.portfolio import PlannedOrder
from tecl_pipeline.simulator import SimulatorServer
from tecl_pipeline.trading.execution import ExecutionPolicy, OrdersSeen, execute, first_reversal
from tecl_pipeline.trading.models import (
    Account,
    Asset,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
)
from tecl_pipeline_tests.trading.over_http import (
    ALL_TECL,
    FAST,
    MIX,
    SESSION,
    CrashingAfterSubmit,
    KilledAfterSubmit,
    adapter,
    submissions,
)

# Half the account kept in cash: the other run's buy leaves the buying power for a second
# one, as a margin account's would.
HALF = ExecutionPolicy(fill_timeout=10.0, poll_interval=1.0, cash_reserve=Decimal("0.5"))


class PausingBroker(AlpacaBroker):
    """A run that, the first time it reaches a point named in `pauses`, stands still while
    that point's function runs (another host's run), then carries on with what it had read."""

    pauses: dict[str, Callable[[], object]]

    def _pause(self, point: str) -> None:
        meanwhile = self.pauses.pop(point, None)
        if meanwhile is not None:
            meanwhile()

    def get_account(self) -> Account:
        self._pause("get_account")
        return super().get_account()

    def get_asset(self, symbol: str) -> Asset:
        self._pause("get_asset")
        return super().get_asset(symbol)

    def submit_order(self, request: OrderRequest) -> Order:
        self._pause("submit_order")
        return super().submit_order(request)


def paused(server: SimulatorServer, **pauses: Callable[[], object]) -> PausingBroker:
    broker = adapter(server, PausingBroker)
    assert isinstance(broker, PausingBroker)
    broker.pauses = pauses
    return broker


def filled_per_leg(server: SimulatorServer) -> dict[tuple[str, str], int]:
    legs: dict[tuple[str, str], int] = {}
    for order in server.simulator.orders_with_prefix(f"tecl-{SESSION:%Y%m%d}-"):
        if Decimal(order["filled_qty"]) > 0:
            leg = (order["side"], order["symbol"])
            legs[leg] = legs.get(leg, 0) + 1
    return legs


def test_run_that_read_positions_before_another_runs_fill_sends_nothing(
    client,
    prices,
    simulator,
):
    """The issue's case: run B reads positions, is slowed at the asset lookup while run A
    buys and fills the leg; B then finds A's `-1` final and must not send `-2`."""
    other = paused(simulator, get_asset=lambda: execute(client, SESSION, ALL_TECL, prices, HALF))
    with other:
        late = execute(other, SESSION, ALL_TECL, prices, HALF)

    assert late.sent == ()
    [(symbol, why)] = late.skipped
    assert symbol == "TECL" and "tecl-20261124-buy-TECL-1" in why and "another run" in why
    assert len(submissions(simulator)) == 1
    assert filled_per_leg(simulator) == {("buy", "TECL"): 1}
    [order] = client.list_orders("tecl-20261124-")
    assert client.get_positions()["TECL"].qty == order.filled_qty


def test_run_that_planned_a_sell_before_another_run_sold_never_sells_again(
    client,
    prices,
    simulator,
):
    """A stale full-size sell would open a short on a margin account: after run A switched
    TECL to UVXY/BIL, run B (paused after reading TECL held) sends no sell and no buy."""
    execute(client, date(2026, 11, 23), ALL_TECL, prices, FAST)
    other = paused(simulator, get_asset=lambda: execute(client, SESSION, MIX, prices, HALF))
    with other:
        late = execute(other, SESSION, MIX, prices, HALF)

    assert late.sent == ()
    assert {symbol for symbol, _ in late.skipped} == {"TECL", "UVXY", "BIL"}, late.skipped
    assert all("another run" in why for _, why in late.skipped), late.skipped
    positions = client.get_positions()
    assert set(positions) == {"UVXY", "BIL"}
    assert all(p.qty > 0 for p in positions.values())
    assert filled_per_leg(simulator) == {
        ("sell", "TECL"): 1,
        ("buy", "UVXY"): 1,
        ("buy", "BIL"): 1,
    }


def test_two_runs_posting_the_same_attempt_place_one_order(
    client,
    prices,
    simulator,
):
    """Run B decided to send `-1` from the same history as run A, and its POST arrives after
    A's: the broker refuses the second use of the id; B follows A's order and says so."""
    other = paused(simulator, submit_order=lambda: execute(client, SESSION, ALL_TECL, prices, HALF))
    with other:
        late = execute(other, SESSION, ALL_TECL, prices, HALF)

    assert late.sent == ()
    [(symbol, why)] = late.skipped
    assert symbol == "TECL" and "sent by another run" in why
    [order] = late.session_orders
    assert order.client_order_id == "tecl-20261124-buy-TECL-1"
    assert order.status is OrderStatus.FILLED
    assert filled_per_leg(simulator) == {("buy", "TECL"): 1}
    assert [s["client_order_id"] for s in submissions(simulator)] == [
        "tecl-20261124-buy-TECL-1"
    ] * 2


def _send_and_die(simulator: SimulatorServer, prices: dict[str, Decimal]) -> None:
    with adapter(simulator, CrashingAfterSubmit) as crashing, pytest.raises(KilledAfterSubmit):
        execute(crashing, SESSION, ALL_TECL, prices, HALF)


@pytest.mark.parametrize("filled_before_the_post", [False, True])
def test_order_another_run_sent_while_this_one_planned_is_not_repeated(
    client,
    prices,
    simulator,
    filled_before_the_post,
):
    """Run A's order reaches the broker after run B listed the session's orders and before
    B read positions, and fills late: B sends nothing for the leg, whether A's order is
    still open when B is about to send or has filled in between; the next run ends at the
    target with no second order."""
    simulator.simulator.set_fill_mode("delayed", delay_polls=1)

    def fill_it() -> None:
        [order] = client.list_orders("tecl-20261124-")
        assert client.get_order(order.id).status is OrderStatus.FILLED

    pauses = {"get_account": lambda: _send_and_die(simulator, prices)}
    if filled_before_the_post:
        pauses["get_asset"] = fill_it
    other = paused(simulator, **pauses)
    with other:
        late = execute(other, SESSION, ALL_TECL, prices, HALF)

    assert late.sent == ()
    [(symbol, why)] = late.skipped
    assert symbol == "TECL" and "tecl-20261124-buy-TECL-1" in why
    assert len(submissions(simulator)) == 1
    simulator.simulator.set_fill_mode("immediate")
    assert execute(client, SESSION, ALL_TECL, prices, HALF).sent == ()
    assert filled_per_leg(simulator) == {("buy", "TECL"): 1}


def test_run_whose_decision_would_reverse_the_sessions_fill_sends_nothing(
    client,
    prices,
    simulator,
    sim_calendar,
):
    """C2/X3: host A bought TECL for the session; host B, deciding on slightly different
    data, would sell it for UVXY/BIL. B refuses before any order and names A's order: one
    direction per symbol per session, from the broker's orders alone (no shared journal)."""
    [bought] = execute(client, SESSION, ALL_TECL, prices, HALF, calendar=sim_calendar).sent
    assert bought.client_order_id == "tecl-20261124-buy-TECL-1"

    with adapter(simulator) as other, pytest.raises(SessionReversalError) as refused:
        execute(other, SESSION, MIX, prices, HALF, calendar=sim_calendar)

    assert str(refused.value) == (
        "session 2026-11-24 already bought TECL (tecl-20261124-buy-TECL-1); "
        "this run's decision would sell it: not sending"
    )
    assert len(submissions(simulator)) == 1
    assert filled_per_leg(simulator) == {("buy", "TECL"): 1}
    assert set(client.get_positions()) == {"TECL"}


def test_reversal_that_appears_while_a_run_trades_stops_what_is_left(
    client,
    prices,
    simulator,
    sim_calendar,
):
    """C2/X3: run B read positions (half TECL, half cash) and planned to sell TECL for
    UVXY/BIL; another host's buy of TECL with the cash fills before B's first order: B
    sends none of its orders, the buys included, and names the order it would reverse."""
    execute(client, date(2026, 11, 23), ALL_TECL, prices, HALF)

    def other_host_buys_tecl() -> None:
        [order] = execute(client, SESSION, ALL_TECL, prices, FAST).sent
        assert order.client_order_id == "tecl-20261124-buy-TECL-1"

    other = paused(simulator, get_asset=other_host_buys_tecl)
    with other:
        late = execute(other, SESSION, MIX, prices, HALF, calendar=sim_calendar)

    assert late.sent == ()
    assert {symbol for symbol, _ in late.skipped} == {"TECL", "UVXY", "BIL"}, late.skipped
    assert all(
        "already bought TECL (tecl-20261124-buy-TECL-1)" in why for _, why in late.skipped
    ), late.skipped
    assert filled_per_leg(simulator) == {("buy", "TECL"): 1}


def test_run_whose_snapshot_another_run_traded_since_sends_nothing_more(
    client,
    prices,
    simulator,
    sim_calendar,
):
    """C2: run B read positions (all cash) and planned UVXY/BIL; another host buys TECL with
    half of that cash before B's first order. No order of B's would reverse it, yet B's plan was
    sized from cash that is gone, for another decision: B sends nothing, and names the
    order that moved, rather than spending the half the other host left on its own plan
    and leaving the account holding both decisions."""

    def other_host_buys_tecl() -> None:
        [order] = execute(client, SESSION, ALL_TECL, prices, HALF).sent
        assert order.client_order_id == "tecl-20261124-buy-TECL-1"

    other = paused(simulator, get_asset=other_host_buys_tecl)
    with other:
        late = execute(other, SESSION, MIX, prices, HALF, calendar=sim_calendar)

    assert late.sent == ()
    assert late.skipped and all(
        "tecl-20261124-buy-TECL-1" in why and "another run" in why for _, why in late.skipped
    ), late.skipped
    assert filled_per_leg(simulator) == {("buy", "TECL"): 1}


def test_only_fills_of_the_other_side_count_as_a_reversal():
    """The rule itself: a cancelled order with nothing filled traded nothing; an order of the
    same side, or of another session or symbol, is no reversal."""
    sell = PlannedOrder(symbol="TECL", side="sell", qty=Decimal(10), reference_price=Decimal(50))
    unfilled = _order("tecl-20261124-buy-TECL-1", "canceled", "0")
    assert first_reversal(SESSION, [sell], [unfilled]) is None
    other_day = _order("tecl-20261123-buy-TECL-1", "filled", "10")
    assert first_reversal(SESSION, [sell], [other_day]) is None
    buy = PlannedOrder(symbol="TECL", side="buy", qty=Decimal(10), reference_price=Decimal(50))
    partly = _order("tecl-20261124-buy-TECL-1", "canceled", "4")
    assert first_reversal(SESSION, [buy], [partly]) is None
    assert first_reversal(SESSION, [sell], [partly]) == (
        "session 2026-11-24 already bought TECL (tecl-20261124-buy-TECL-1); "
        "this run's decision would sell it: not sending"
    )


def _order(client_order_id: str, status: str, filled: str) -> Order:
    return Order(
        id=client_order_id,
        client_order_id=client_order_id,
        symbol="TECL",
        side=OrderSide.BUY,
        qty=Decimal(10),
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal(50) if Decimal(filled) else None,
        status=OrderStatus(status),
        submitted_at=datetime(2026, 11, 24, 20, 45, tzinfo=UTC),
    )


def test_only_orders_final_and_unchanged_since_planning_allow_a_new_attempt():
    """The rule itself: an earlier attempt seen final before planning, and the same now, lets
    the next attempt go; one that is new, was open then, or changed, does not."""
    cancelled = _order("tecl-20261124-buy-TECL-1", "canceled", "4")
    seen = OrdersSeen({cancelled.client_order_id: cancelled})
    assert seen.moved_since([cancelled]) == []
    assert seen.moved_since([]) == []

    newcomer = _order("tecl-20261124-buy-TECL-2", "filled", "6")
    assert seen.moved_since([cancelled, newcomer]) == [newcomer.client_order_id]

    working = _order("tecl-20261124-buy-TECL-1", "partially_filled", "4")
    finished = _order("tecl-20261124-buy-TECL-1", "filled", "10")
    assert OrdersSeen({working.client_order_id: working}).moved_since([finished]) == [
        finished.client_order_id
    ]
    assert OrdersSeen({working.client_order_id: working}).moved_since([working]) == [
        working.client_order_id
    ]
