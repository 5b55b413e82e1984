"""A run that dies mid-way on the stack: its code server's container gone with it after the
run sent an order. Run monitoring (the daemon, through the code server run launcher) marks
it failed, the failure sensor alerts from the daemon, and a re-execution from failure
through the webserver completes the session without placing any order twice."""

from collections import Counter
from datetime import date

from dagster import DagsterEventType, DagsterRunStatus

from tecl_pipeline_tests.stack.conftest import Stack, wait_for

MONITORING_S = 180


def test_a_run_that_died_with_its_code_server_is_failed_alerted_and_reexecuted(
    stack: Stack, session: date
):
    """A2: on the deployed stack, a run whose code server is killed (SIGKILL, its whole
    process group) after it sent an order is failed and alerted, and its re-execution from
    failure completes the session."""
    stack.open_session(session)
    # Orders fill only after 15 reads: the run is mid-way, an order sent and open, when its
    # container goes.
    stack.sim("fills", {"mode": "delayed", "delay_polls": 15})
    run_id = stack.submit(session)
    sent = wait_for(stack.submissions, 180, "order sent")

    stack.local.kill("codeserver")
    # A new container takes its place, as `restart: unless-stopped` would start one.
    stack.local.up()

    assert stack.wait(run_id, timeout=MONITORING_S) == DagsterRunStatus.FAILURE
    failure = [
        entry.message or ""
        for entry in stack.instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    ]
    assert any("has no process for this run" in message for message in failure), failure
    alert = wait_for(
        lambda: [a for a in stack.alerts() if a["run_id"] == run_id], 120, "failure alert"
    )
    assert [a["kind"] for a in alert] == ["run_failure"]

    rerun_id = stack.reexecute_from_failure(run_id)
    assert stack.wait(rerun_id) == DagsterRunStatus.SUCCESS

    # Every order the broker took, it took once; the first run's among them.
    submitted = stack.submissions()
    placed = [s for s in submitted if s["http_status"] == 200]
    assert set(Counter(s["client_order_id"] for s in placed).values()) == {1}, submitted
    assert sent[0]["client_order_id"] in {s["client_order_id"] for s in placed}
    legs = Counter((s["symbol"], s["side"]) for s in placed)
    assert set(legs.values()) == {1}, legs
    (record,) = stack.journal(session, rerun_id)
    held = {symbol for symbol, qty in record.positions.items() if qty > 0}
    assert held == {symbol for symbol, weight in record.weights.items() if weight > 0}
    assert all(order.filled_qty == order.qty for order in record.orders), record.orders
