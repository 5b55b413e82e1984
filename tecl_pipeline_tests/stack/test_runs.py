"""Runs on the running stack: submitted through the webserver's GraphQL API, queued and
dequeued by the daemon, started by the code server in processes of their own, recorded in
PostgreSQL, trading against the broker simulator and journaling on the stack's volume."""

import threading
from collections import Counter
from datetime import date

from dagster import DagsterRunStatus, RunsFilter
from dagster_postgres import PostgresRunStorage

from tecl_pipeline_tests.stack.conftest import Stack, environment_of, started_pid, wait_for


def test_a_run_submitted_through_the_webserver_trades_in_its_own_process_on_postgres(
    stack: Stack, session: date
):
    stack.open_session(session)
    # Orders fill only after 10 reads: the run is still going, in its process, once it has
    # sent one, and the process can be looked at.
    stack.sim("fills", {"mode": "delayed", "delay_polls": 10})
    service_pids = {state.pid for state in stack.local.status()}

    run_id = stack.submit(session)
    wait_for(stack.submissions, 120, f"run {run_id} sending an order")
    pid = started_pid(stack.instance, run_id)
    assert pid is not None and _alive(pid)
    # The run carries the code server's environment: the stack's settings.
    assert environment_of(pid).get("TECL_STATE_URI") == stack.state_uri
    status = stack.wait(run_id)

    assert status == DagsterRunStatus.SUCCESS
    # The run's record is in the stack's PostgreSQL, as the daemon and webserver read it.
    assert isinstance(stack.instance.run_storage, PostgresRunStorage)
    run = stack.instance.get_run_by_id(run_id)
    assert run is not None and run.tags["dagster/partition"] == session.isoformat()
    # Executed in a process of its own, not in a service's, and gone when it ended.
    assert pid not in service_pids
    # A run writes its last status just before its process exits.
    wait_for(lambda: not _alive(pid), 30, f"the exit of the run's process {pid}", every=0.2)
    # The session traded: every order it sent filled, once, and the journal says so.
    submitted = stack.submissions()
    assert submitted, "the session sent no order"
    (record,) = stack.journal(session, run_id)
    assert {order.client_order_id for order in record.orders} == {
        s["client_order_id"] for s in submitted
    }
    assert all(order.filled_qty == order.qty for order in record.orders), record.orders
    held = {symbol for symbol, qty in record.positions.items() if qty > 0}
    assert held == {symbol for symbol, weight in record.weights.items() if weight > 0}


def test_two_submissions_of_one_session_run_one_after_the_other_and_trade_once(
    stack: Stack, session: date
):
    stack.open_session(session)
    run_ids: list[str] = []
    # Submitted together, each through its own client, as two people pressing Launch at once.
    threads = [
        threading.Thread(target=lambda: run_ids.append(stack.client().submit(session)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [stack.wait(run_id) for run_id in run_ids] == [DagsterRunStatus.SUCCESS] * 2
    records = stack.instance.get_run_records(RunsFilter(run_ids=run_ids))
    first, second = sorted(records, key=lambda r: r.start_time or 0)
    # The queue's limit of one run per session partition held: the second started after
    # the first had ended.
    assert first.end_time is not None and second.start_time is not None
    assert second.start_time >= first.end_time
    # One trades; the other finds the session's orders at the broker and sends none: each
    # leg, and each client order id, reached the broker once.
    submitted = stack.submissions()
    legs = Counter((s["symbol"], s["side"]) for s in submitted)
    assert submitted and set(legs.values()) == {1}, legs
    assert set(Counter(s["client_order_id"] for s in submitted).values()) == {1}
    journal = stack.journal(session, *run_ids)
    assert len(journal) == 2
    assert journal[0].positions == journal[1].positions
    sent = {s["client_order_id"] for s in submitted}
    assert {order.client_order_id for order in journal[1].orders} == sent


def _alive(pid: int) -> bool:
    from deploy.stack.local import alive

    return alive(pid)
