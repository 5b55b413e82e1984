"""A garbled answer to a read is asked again under the one retry policy (B3, B5): while an
order is being followed to its fill, a malformed status answer must not abandon the order
working at the broker and the session unrecorded.

The real alpaca-py client over HTTP against the broker simulator, whose fault plan mangles
the answers (every key renamed, as a schema change would) and whose orders fill only after
they have been read a few times, so the fill wait really polls.
"""

from datetime import date

from dagster import DagsterInstance

from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.config.settings import Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.trading.errors import MalformedResponseError
from tecl_pipeline.trading.models import OrderStatus
from tecl_pipeline_tests.adapters.alpaca.adapter_helpers import buy, faults, make_broker
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_SESSION, sim_requests, sim_state

POLL = "GET /v2/orders/{id}"


def test_a_malformed_order_status_is_read_again_under_the_retry_policy(simulator):
    """B3/B5: one garbled answer to GET /v2/orders/{id} costs one backoff, not the order;
    an answer that stays garbled still fails loudly once the policy gives up."""
    broker, sleeps = make_broker(simulator.url)
    placed = broker.submit_order(buy("poll-1"))
    faults(simulator.url, {"endpoint": POLL, "kind": "malformed", "times": 1})

    order = broker.get_order(placed.id)

    assert order.id == placed.id and order.client_order_id == "poll-1"
    assert sim_state(simulator.url)["faults_injected"] == {"malformed": 1}
    assert sim_requests(simulator.url, POLL) == 2
    assert len(sleeps) == 1

    faults(simulator.url, {"endpoint": POLL, "kind": "malformed"})
    stubborn, sleeps = make_broker(simulator.url, policy=RetryPolicy(max_attempts=3))
    try:
        stubborn.get_order(placed.id)
    except MalformedResponseError as exc:
        assert POLL.replace("{id}", placed.id) in str(exc)
    else:
        raise AssertionError("a schema change must not be read as an order")
    assert sim_requests(simulator.url, POLL) == 2 + 3
    assert len(sleeps) == 2


def test_a_malformed_answer_during_the_fill_wait_does_not_abort_the_run(tmp_path, simulator):
    """B5: orders fill only after two status reads, and the first two status answers are
    garbled: the job still follows every order to its fill, completes, and journals them."""
    session: date = SIM_SESSION
    simulator.simulator.set_fill_mode("delayed", delay_polls=2)
    faults(simulator.url, {"endpoint": POLL, "kind": "malformed", "times": 2})
    state = tmp_path / "state"
    settings = Settings(state_uri=state.as_uri(), broker_url=simulator.url)
    job = build_definitions(settings).resolve_job_def("daily_trading_job")
    policy = {"config": {"fill_timeout_seconds": 60.0, "poll_interval_seconds": 0.05}}

    result = job.execute_in_process(
        partition_key=session.isoformat(),
        instance=DagsterInstance.ephemeral(),
        run_config={"resources": {"trading_policy": policy}},
        raise_on_error=False,
    )

    assert result.success
    injected = sim_state(simulator.url)["faults_injected"]
    assert injected == {"malformed": 2}
    report = result.asset_value("executed_orders")
    assert report.sent and all(o.status is OrderStatus.FILLED for o in report.sent)
    assert not report.cancelled
    record = LocalJournal(state / "journal").latest(session)
    assert record is not None and record.run_id == result.run_id
    assert [o.client_order_id for o in record.orders] == [o.client_order_id for o in report.sent]
