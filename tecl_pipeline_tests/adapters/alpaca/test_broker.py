"""The Alpaca adapter against the broker simulator, over HTTP, with faults at the wire.

The real alpaca-py TradingClient talks to a real HTTP server; nothing of alpaca-py is
mocked. Sleeping is faked (the waits are recorded, not slept), the retry jitter comes from
a seeded generator whose seed is printed (R2), and the client timeout is short (0.5 s).
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tecl_pipeline.adapters.alpaca import broker as alpaca_module
from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.adapters.alpaca.errors import parse_retry_after
from tecl_pipeline.common.endpoints import validate_endpoint
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.trading.credentials import (
    Credentials,
    EnvCredentials,
    StaticCredentials,
)
from tecl_pipeline.trading.errors import (
    AuthError,
    BrokerError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    MalformedResponseError,
    NotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
)
from tecl_pipeline.trading.models import Account, Clock, OrderRequest, OrderSide, OrderStatus
from tecl_pipeline_tests.adapters.alpaca.adapter_helpers import (
    CountingProvider,
    buy,
    faults,
    make_broker,
    sim_credentials,
)
from tecl_pipeline_tests.simulator import simulator_fixtures
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_KEY,
    SIM_SECRET,
    set_sim_clock,
    sim_admin,
    sim_requests,
    sim_state,
)

# The simulator's fixtures, made visible to pytest in this module.
simulator = simulator_fixtures.simulator
sim_calendar = simulator_fixtures.sim_calendar

# The simulator's "timeout" and "latency" faults stall for longer than the client's TIMEOUT.
STALL = 5.0
LOOKUP = "GET /v2/orders:by_client_order_id"
SUBMIT = "POST /v2/orders"


def submissions(url: str, client_order_id: str) -> list[dict[str, Any]]:
    return [s for s in sim_state(url)["submissions"] if s["client_order_id"] == client_order_id]


def orders_with(url: str, client_order_id: str) -> list[dict[str, Any]]:
    return [o for o in sim_state(url)["orders"] if o["client_order_id"] == client_order_id]


# ------------------------------------------------------------------------ plain reads


def test_every_read_is_validated_into_the_project_models(simulator):
    """B3: account, clock, asset, positions and orders come back as validated models."""
    broker, sleeps = make_broker(simulator.url)
    account = broker.get_account()
    assert isinstance(account, Account)
    assert account.currency == "USD" and account.cash > 0 and not account.trading_blocked
    clock = broker.get_clock()
    assert isinstance(clock, Clock) and clock.is_open and clock.timestamp.tzinfo is not None
    asset = broker.get_asset("TECL")
    assert asset.symbol == "TECL" and asset.tradable
    placed = broker.submit_order(buy("read-1", "2"))
    # Alpaca's answer to a POST: accepted, nothing filled yet; reads see it fill.
    assert placed.status is OrderStatus.ACCEPTED and placed.filled_qty == 0
    order = placed
    for _ in range(10):
        order = broker.get_order(placed.id)
        if order.status.is_final:
            break
    assert order.status is OrderStatus.FILLED and order.filled_qty == Decimal("2")
    assert broker.get_order_by_client_id("read-1") == order
    positions = broker.get_positions()
    assert positions["TECL"].qty == Decimal("2")
    assert broker.list_orders("read-") == [order]
    assert sleeps == []
    broker.close()


def test_unknown_ids_are_not_found(simulator):
    """B3: 404 -> NotFoundError; the lookup by client order id answers None instead."""
    broker, _ = make_broker(simulator.url)
    assert broker.get_order_by_client_id("never-sent") is None
    with pytest.raises(NotFoundError, match="GET /v2/orders/"):
        broker.get_order("00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        broker.get_asset("NOPE")


def test_list_orders_pages_through_every_order_and_filters_by_prefix(simulator, monkeypatch):
    """B5, D4: all pages are read, also when a page boundary falls inside a timestamp."""
    monkeypatch.setattr(alpaca_module, "ORDERS_PAGE_LIMIT", 3)
    broker, _ = make_broker(simulator.url)
    start = simulator.simulator.now
    plan = [("a-0", 0), ("x-0", 0), ("a-1", 1), ("a-2", 2), ("x-1", 2), ("a-3", 3)]
    plan += [("a-4", 4), ("x-2", 4), ("a-5", 5), ("a-6", 6), ("x-3", 6), ("a-7", 7)]
    for client_order_id, offset in plan:
        set_sim_clock(simulator.url, start + timedelta(seconds=offset))
        broker.submit_order(buy(client_order_id))
    listed = broker.list_orders("a-")
    assert [o.client_order_id for o in listed] == [f"a-{n}" for n in range(8)]
    assert len(broker.list_orders()) == len(plan)
    assert sim_requests(simulator.url, "GET /v2/orders") >= 2 * 4


def test_list_orders_after_a_moment_asks_the_broker_for_that_window_only(simulator, monkeypatch):
    """D4: with `submitted_after`, the broker filters (Alpaca's `after`, exclusive): orders
    submitted at or before that moment are neither listed nor paged through."""
    monkeypatch.setattr(alpaca_module, "ORDERS_PAGE_LIMIT", 3)
    broker, _ = make_broker(simulator.url)
    start = simulator.simulator.now
    for day in range(4):
        for n in range(3):
            set_sim_clock(simulator.url, start + timedelta(days=day, seconds=n))
            broker.submit_order(buy(f"w-{day}-{n}"))
    listed = broker.list_orders("w-", submitted_after=start + timedelta(days=2))
    assert [o.client_order_id for o in listed] == ["w-2-1", "w-2-2", "w-3-0", "w-3-1", "w-3-2"]
    window_pages = sim_requests(simulator.url, "GET /v2/orders")
    assert len(broker.list_orders("w-")) == 12
    whole_pages = sim_requests(simulator.url, "GET /v2/orders") - window_pages
    assert window_pages < whole_pages


def test_list_orders_refuses_to_return_a_silently_short_list(simulator, monkeypatch):
    """D4: a full page of one timestamp cannot be paged past: an error, not missing orders."""
    monkeypatch.setattr(alpaca_module, "ORDERS_PAGE_LIMIT", 3)
    broker, _ = make_broker(simulator.url)
    for n in range(4):
        broker.submit_order(buy(f"same-time-{n}"))
    with pytest.raises(BrokerError, match="share submitted_at"):
        broker.list_orders("same-time-")


# ------------------------------------------------------------------ endpoint and secrets


def test_description_names_mode_and_endpoint_never_the_secret(simulator):
    """S2, S5: the run log says PAPER or LIVE and which endpoint; never key or secret."""
    paper, _ = make_broker(simulator.url)
    assert paper.description == f"Alpaca PAPER API at {simulator.url}"
    live = AlpacaBroker(sim_credentials(), paper=False, url=simulator.url)
    assert live.description == f"Alpaca LIVE API at {simulator.url}"
    default = AlpacaBroker(sim_credentials(), paper=True)
    assert default.description == "Alpaca PAPER API at https://paper-api.alpaca.markets"
    for text in (paper.description, repr(paper), live.description, repr(default)):
        assert SIM_SECRET not in text and SIM_KEY not in text


def test_paper_flag_contradicting_alpacas_own_endpoint_is_refused():
    """S5: url_override silently wins over paper= in alpaca-py; a PAPER label on the LIVE
    endpoint (or the reverse) is refused instead."""
    creds = sim_credentials()
    with pytest.raises(ValueError, match="LIVE"):
        AlpacaBroker(creds, paper=True, url="https://api.alpaca.markets")
    with pytest.raises(ValueError, match="PAPER"):
        AlpacaBroker(creds, paper=False, url="https://paper-api.alpaca.markets/")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.5:8080",
        "http://127.0.0.1.example.com",
        "http://[2001:db8::1]:80",
        "ftp://127.0.0.1",
        "http://user:pw@127.0.0.1:1",
        "https://paper-api.alpaca.markets/v2",
    ],
)
def test_plain_http_to_a_non_loopback_host_is_refused(url):
    """S5: the secret never travels unencrypted; the error names the URL (never credentials)."""
    with pytest.raises(ValueError) as caught:
        AlpacaBroker(sim_credentials(), paper=True, url=url)
    if "@" not in url:
        assert url in str(caught.value)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://127.1.2.3",
        "http://[::1]:8000",
        "http://localhost:8000/",
        "https://broker.example.com",
    ],
)
def test_https_anywhere_and_http_to_loopback_are_accepted(url):
    """S5: the simulator on loopback is reachable over plain HTTP."""
    assert validate_endpoint(url) == url.rstrip("/")


def test_secrets_never_appear_in_errors_logs_or_descriptions(simulator, caplog):
    """S2: a distinctive secret is absent from every error, cause chain and log line."""
    caplog.set_level(logging.DEBUG)
    secret = "Zq8-very-distinctive-secret-Zq8"
    sim_admin(simulator.url, "/_sim/credentials", {"key": "PKDISTINCT", "secret": secret})
    provider = StaticCredentials(Credentials("PKDISTINCT", secret))
    broker, _ = make_broker(
        simulator.url, provider=provider, policy=RetryPolicy(max_attempts=2, base_delay=0.01)
    )
    failures: list[BaseException] = []
    scenarios: list[tuple[dict[str, Any], Callable[[], object]]] = [
        ({"endpoint": "GET /v2/account", "kind": "bad_gateway_html"}, broker.get_account),
        ({"endpoint": "GET /v2/account", "kind": "timeout", "delay": STALL}, broker.get_account),
        ({"endpoint": "GET /v2/clock", "kind": "malformed"}, broker.get_clock),
        ({"endpoint": "GET /v2/clock", "kind": "error_body"}, broker.get_clock),
        ({"endpoint": "GET /v2/clock", "kind": "unauthorized"}, broker.get_clock),
        ({"endpoint": SUBMIT, "kind": "rate_limit"}, lambda: broker.submit_order(buy("s2-1"))),
    ]
    for rule, call in scenarios:
        faults(simulator.url, rule)
        with pytest.raises(BrokerError) as caught:
            call()
        failures.append(caught.value)
    # A refused key, end to end: the broker's answer and our message both stay clean.
    sim_admin(simulator.url, "/_sim/credentials", {"key": "PKOTHER", "secret": "other"})
    faults(simulator.url)
    with pytest.raises(AuthError) as refused:
        broker.get_account()
    failures.append(refused.value)
    texts = [broker.description, repr(broker), caplog.text]
    for failure in failures:
        link: BaseException | None = failure
        while link is not None:
            texts += [str(link), repr(link), *getattr(link, "__notes__", [])]
            link = link.__cause__ or link.__context__
    assert all(secret not in text for text in texts)
    assert len(failures) == 7


# --------------------------------------------------------------------------- submits


def test_lost_acknowledgement_is_found_by_client_order_id_not_resent(simulator):
    """B5: the order landed but the answer was dropped -> lookup finds it, no second POST."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "drop_response", "times": 1})
    broker, sleeps = make_broker(simulator.url)
    order = broker.submit_order(buy("lost-ack-1"))
    assert order.client_order_id == "lost-ack-1" and order.qty == Decimal("1")
    assert len(orders_with(simulator.url, "lost-ack-1")) == 1
    accepted = [s for s in submissions(simulator.url, "lost-ack-1") if s["order_id"]]
    assert len(accepted) == 1
    assert sim_requests(simulator.url, SUBMIT) == 1
    assert sim_requests(simulator.url, LOOKUP) == 1
    assert len(sleeps) == 1


def test_timeout_on_submit_looks_up_first_then_resends_with_the_same_id(simulator):
    """B2, B5: a submit that timed out (never reached the book) is looked up, not found,
    and resent with the SAME client order id: one order in the end."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "timeout", "times": 1, "delay": STALL})
    broker, _ = make_broker(simulator.url)
    order = broker.submit_order(buy("timeout-1"))
    assert order.client_order_id == "timeout-1"
    sent = submissions(simulator.url, "timeout-1")
    assert sent[0]["outcome"] == "not processed"
    assert len(sent) == 2 and {s["client_order_id"] for s in sent} == {"timeout-1"}
    assert len(orders_with(simulator.url, "timeout-1")) == 1
    assert sim_requests(simulator.url, LOOKUP) == 1
    # No other client order id was made up along the way.
    assert {s["client_order_id"] for s in sim_state(simulator.url)["submissions"]} == {"timeout-1"}


def test_duplicate_on_resend_means_the_first_attempt_landed(simulator):
    """B5: dropped answer, lookup wrongly misses the order (a 404 from a lagging replica),
    resend -> 422 "client_order_id must be unique" -> look up again and return that order."""
    faults(
        simulator.url,
        {"endpoint": SUBMIT, "kind": "drop_response", "times": 1},
        {"endpoint": LOOKUP, "kind": "server_error", "status": 404, "times": 1},
    )
    broker, _ = make_broker(simulator.url)
    order = broker.submit_order(buy("dup-resend-1"))
    assert order.client_order_id == "dup-resend-1"
    assert len(orders_with(simulator.url, "dup-resend-1")) == 1
    assert sim_requests(simulator.url, SUBMIT) == 2
    assert sim_requests(simulator.url, LOOKUP) == 2


def test_submit_whose_outcome_stays_unknown_says_so(simulator):
    """B2, B5: answers keep getting lost and lookups fail -> OutcomeUnknownError after the
    policy's attempts, never a new client order id."""
    faults(
        simulator.url,
        {"endpoint": SUBMIT, "kind": "drop_response"},
        {"endpoint": LOOKUP, "kind": "server_error"},
    )
    broker, sleeps = make_broker(simulator.url, policy=RetryPolicy(max_attempts=3))
    with pytest.raises(OutcomeUnknownError, match="unknown-1"):
        broker.submit_order(buy("unknown-1"))
    assert sim_requests(simulator.url, SUBMIT) == 1  # never resent while the lookup fails
    assert sim_requests(simulator.url, LOOKUP) == 2
    assert len(sleeps) == 2
    assert {s["client_order_id"] for s in sim_state(simulator.url)["submissions"]} == {"unknown-1"}


def test_rate_limited_submit_waits_retry_after_and_sends_once_more(simulator):
    """B1: a 429 was not processed: wait at least Retry-After, resend, no lookup needed."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "rate_limit", "times": 1, "retry_after": 4})
    broker, sleeps = make_broker(simulator.url)
    order = broker.submit_order(buy("rl-1"))
    assert order.client_order_id == "rl-1"
    assert sleeps == [4.0]
    assert sim_requests(simulator.url, LOOKUP) == 0
    assert len(orders_with(simulator.url, "rl-1")) == 1


def test_rate_limit_storm_on_submit_ends_in_a_clean_error_and_no_order(simulator):
    """B1, C6: every POST throttled -> RateLimitedError after the allowed attempts."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "rate_limit", "retry_after": 1})
    broker, sleeps = make_broker(simulator.url, policy=RetryPolicy(max_attempts=4))
    with pytest.raises(RateLimitedError, match="429") as caught:
        broker.submit_order(buy("storm-1"))
    assert caught.value.retry_after == 1.0
    assert sim_requests(simulator.url, SUBMIT) == 4
    assert len(sleeps) == 3
    assert orders_with(simulator.url, "storm-1") == []


def test_malformed_answer_to_a_submit_is_resolved_by_lookup(simulator):
    """B3, B5: a garbled answer to a POST that did place the order -> the lookup returns it."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "malformed", "times": 1})
    broker, _ = make_broker(simulator.url)
    order = broker.submit_order(buy("garbled-1"))
    assert order.client_order_id == "garbled-1"
    assert len(orders_with(simulator.url, "garbled-1")) == 1
    assert sim_requests(simulator.url, SUBMIT) == 1


def test_error_body_under_200_on_submit_is_never_success(simulator):
    """X4: 200 {"code", "message"} to a POST -> looked up, not there -> MalformedResponseError."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "error_body", "times": 1})
    broker, _ = make_broker(simulator.url)
    with pytest.raises(MalformedResponseError, match="error body"):
        broker.submit_order(buy("errbody-1"))
    assert orders_with(simulator.url, "errbody-1") == []
    assert sim_requests(simulator.url, SUBMIT) == 1
    assert sim_requests(simulator.url, LOOKUP) == 1


def test_insufficient_buying_power_is_rejected_without_retry(simulator):
    """B7: 403 insufficient buying power -> OrderRejectedError with the broker's message and
    code, one POST, no wait, no lookup."""
    broker, sleeps = make_broker(simulator.url)
    with pytest.raises(OrderRejectedError, match="insufficient buying power") as caught:
        broker.submit_order(buy("too-big-1", qty="1000000", symbol="SPY"))
    assert caught.value.code == 40310000
    assert sim_requests(simulator.url, SUBMIT) == 1
    assert sim_requests(simulator.url, LOOKUP) == 0
    assert sleeps == []


def test_blocked_account_is_a_rejection_not_an_auth_failure(simulator):
    """B4, B7: 403 "account is not authorized to trade" must not trigger a credentials refresh."""
    sim_admin(simulator.url, "/_sim/account", {"trading_blocked": True})
    provider = CountingProvider(sim_credentials())
    broker, _ = make_broker(simulator.url, provider=provider)
    assert broker.get_account().trading_blocked
    with pytest.raises(OrderRejectedError, match="not authorized to trade"):
        broker.submit_order(buy("blocked-1"))
    assert provider.refreshes == 0


def test_unsupported_time_in_force_is_rejected_naming_the_rule(simulator):
    """X1: 422 for a fractional non-DAY order -> OrderRejectedError naming the rule."""
    broker, sleeps = make_broker(simulator.url)
    # OrderRequest only admits DAY; build the bad request around its validation on purpose.
    bad = OrderRequest.model_construct(
        symbol="TECL",
        side=OrderSide.BUY,
        qty=Decimal("0.5"),
        client_order_id="tif-1",
        type="market",
        time_in_force="gtc",
    )
    with pytest.raises(OrderRejectedError, match="fractional orders must be DAY orders"):
        broker.submit_order(bad)
    assert sim_requests(simulator.url, SUBMIT) == 1
    assert sleeps == []


def test_fractional_order_for_a_non_fractionable_asset_names_the_rule(simulator):
    """X1, T7: 422 "not fractionable" -> OrderRejectedError, not retried."""
    sim_admin(simulator.url, "/_sim/assets/TECL", {"fractionable": False})
    broker, _ = make_broker(simulator.url)
    assert not broker.get_asset("TECL").fractionable
    with pytest.raises(OrderRejectedError, match="not fractionable"):
        broker.submit_order(buy("frac-1", qty="0.5"))
    assert sim_requests(simulator.url, SUBMIT) == 1


def test_reused_client_order_id_is_reported_as_duplicate(simulator):
    """X3: the broker refuses a client order id it has seen: DuplicateClientOrderIdError."""
    broker, _ = make_broker(simulator.url)
    broker.submit_order(buy("once-1"))
    with pytest.raises(DuplicateClientOrderIdError):
        broker.submit_order(buy("once-1"))
    assert len(orders_with(simulator.url, "once-1")) == 1


# ----------------------------------------------------------------------------- cancels


@pytest.mark.instant_fills
def test_cancel_open_order_and_cancel_of_a_final_order_is_not_an_error(simulator):
    """T6: an open order is canceled; canceling a filled or canceled one (422) is a no-op."""
    broker, _ = make_broker(simulator.url)
    filled = broker.submit_order(buy("cancel-filled"))
    assert filled.status is OrderStatus.FILLED
    broker.cancel_order(filled.id)  # 422: already filled
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    working = broker.submit_order(buy("cancel-open"))
    assert not working.status.is_final
    broker.cancel_order(working.id)
    assert broker.get_order(working.id).status is OrderStatus.CANCELED
    broker.cancel_order(working.id)  # 422: already canceled
    with pytest.raises(NotFoundError):
        broker.cancel_order("00000000-0000-4000-8000-000000000000")


def test_cancel_whose_answer_is_lost_is_retried_idempotently(simulator):
    """B5: a lost answer to DELETE is asked again (cancel is idempotent)."""
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    broker, _ = make_broker(simulator.url)
    working = broker.submit_order(buy("cancel-lost"))
    faults(
        simulator.url, {"endpoint": "DELETE /v2/orders/{id}", "kind": "drop_response", "times": 1}
    )
    broker.cancel_order(working.id)
    assert broker.get_order(working.id).status is OrderStatus.CANCELED
    assert sim_requests(simulator.url, "DELETE /v2/orders/{id}") == 2


# -------------------------------------------------------------------- faults on reads


def test_rate_limited_read_honours_retry_after(simulator):
    """B1: two 429s with Retry-After 3 -> two waits of 3 s (the backoff alone is shorter)."""
    faults(
        simulator.url,
        {"endpoint": "GET /v2/account", "kind": "rate_limit", "times": 2, "retry_after": 3},
    )
    broker, sleeps = make_broker(simulator.url)
    assert broker.get_account().currency == "USD"
    assert sleeps == [3.0, 3.0]


def test_rate_limit_storm_on_reads_exhausts_the_policy_cleanly(simulator):
    """B1, C6: a 429 storm -> RateLimitedError after max_attempts, with the waits bounded."""
    faults(simulator.url, {"endpoint": "*", "kind": "rate_limit", "retry_after": 1})
    broker, sleeps = make_broker(simulator.url, policy=RetryPolicy(max_attempts=5))
    with pytest.raises(RateLimitedError) as caught:
        broker.get_positions()
    assert "gave up after 5 attempt(s)" in " ".join(caught.value.__notes__)
    assert sim_requests(simulator.url, "GET /v2/positions") == 5
    assert len(sleeps) == 4 and all(1.0 <= s <= 30.0 for s in sleeps)


def test_retry_after_beyond_the_deadline_stops_at_once(simulator):
    """B1: a Retry-After longer than the time left is not slept into."""
    faults(simulator.url, {"endpoint": "GET /v2/clock", "kind": "rate_limit", "retry_after": 600})
    broker, sleeps = make_broker(simulator.url, policy=RetryPolicy(deadline=60.0))
    with pytest.raises(RateLimitedError, match="GET /v2/clock"):
        broker.get_clock()
    assert sleeps == []
    assert sim_requests(simulator.url, "GET /v2/clock") == 1


def test_server_errors_and_maintenance_on_reads_are_retried(simulator):
    """B8: 500, then 503 maintenance with Retry-After -> retried, then success."""
    faults(
        simulator.url,
        {"endpoint": "GET /v2/positions", "kind": "server_error", "times": 1},
        {"endpoint": "GET /v2/positions", "kind": "maintenance", "times": 1, "retry_after": 5},
    )
    broker, sleeps = make_broker(simulator.url)
    assert broker.get_positions() == {}
    assert len(sleeps) == 2 and sleeps[1] == 5.0


def test_maintenance_window_stops_reads_cleanly(simulator):
    """B8: a broker in maintenance -> BrokerUnavailableError naming it, after the policy."""
    faults(simulator.url, {"endpoint": "*", "kind": "maintenance", "retry_after": 2})
    broker, sleeps = make_broker(simulator.url, policy=RetryPolicy(max_attempts=3))
    with pytest.raises(BrokerUnavailableError, match="maintenance"):
        broker.get_clock()
    assert len(sleeps) == 2


def test_html_502_from_a_gateway_is_mapped_not_crashed_on(simulator):
    """B8: a non-JSON 502 page is a BrokerUnavailableError (retried), never a JSON crash."""
    faults(simulator.url, {"endpoint": "GET /v2/clock", "kind": "bad_gateway_html", "times": 1})
    broker, sleeps = make_broker(simulator.url)
    assert broker.get_clock().is_open
    assert len(sleeps) == 1
    faults(simulator.url, {"endpoint": "GET /v2/clock", "kind": "bad_gateway_html"})
    broker2, _ = make_broker(simulator.url, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(BrokerUnavailableError, match="502 Bad Gateway"):
        broker2.get_clock()


def test_read_timeout_is_retried_and_never_hangs(simulator):
    """B2: a stalled answer ends at the client's timeout and is retried."""
    faults(
        simulator.url,
        {"endpoint": "GET /v2/account", "kind": "timeout", "times": 1, "delay": STALL},
    )
    broker, sleeps = make_broker(simulator.url)
    assert broker.get_account().currency == "USD"
    assert len(sleeps) == 1
    faults(simulator.url, {"endpoint": "GET /v2/clock", "kind": "latency", "delay": STALL})
    broker2, _ = make_broker(simulator.url, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(BrokerUnavailableError, match=r"(?i)timed out"):
        broker2.get_clock()


def test_error_body_under_200_on_a_read_is_never_success(simulator):
    """X4: 200 with {"code", "message"} is never read as success: the read is asked again
    under the retry policy, and when every answer is an error body the call fails with
    MalformedResponseError naming the endpoint."""
    faults(simulator.url, {"endpoint": "GET /v2/account", "kind": "error_body", "times": 1})
    broker, sleeps = make_broker(simulator.url)
    assert broker.get_account().currency == "USD"
    assert sim_requests(simulator.url, "GET /v2/account") == 2
    assert len(sleeps) == 1

    faults(simulator.url, {"endpoint": "GET /v2/account", "kind": "error_body"})
    broker, sleeps = make_broker(simulator.url, policy=RetryPolicy(max_attempts=3))
    with pytest.raises(MalformedResponseError, match=r"GET /v2/account.*error body"):
        broker.get_account()
    assert sim_requests(simulator.url, "GET /v2/account") == 2 + 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("endpoint", "call"),
    [
        ("GET /v2/account", lambda b: b.get_account()),
        ("GET /v2/clock", lambda b: b.get_clock()),
        ("GET /v2/orders", lambda b: b.list_orders()),
    ],
)
def test_malformed_bodies_fail_loudly_naming_the_endpoint(simulator, endpoint, call):
    """B3: a schema change (renamed fields) is a MalformedResponseError, never misread."""
    broker, _ = make_broker(simulator.url)
    broker.submit_order(buy("shape-1"))
    faults(simulator.url, {"endpoint": endpoint, "kind": "malformed"})
    with pytest.raises(MalformedResponseError, match=endpoint):
        call(broker)


@pytest.mark.instant_fills
def test_malformed_position_list_fails_loudly(simulator):
    """B3: every element of a list is validated."""
    broker, _ = make_broker(simulator.url)
    broker.submit_order(buy("shape-2"))
    faults(simulator.url, {"endpoint": "GET /v2/positions", "kind": "malformed"})
    with pytest.raises(MalformedResponseError, match=r"GET /v2/positions.*lacks"):
        broker.get_positions()


# --------------------------------------------------------------------------- auth


def test_unauthorized_once_refreshes_credentials_once_then_succeeds(simulator):
    """B4: a single 401 -> one refresh, one retry, success."""
    faults(simulator.url, {"endpoint": "GET /v2/account", "kind": "unauthorized", "times": 1})
    provider = CountingProvider(sim_credentials())
    broker, _ = make_broker(simulator.url, provider=provider)
    assert broker.get_account().currency == "USD"
    assert provider.refreshes == 1
    assert sim_requests(simulator.url, "GET /v2/account") == 2


def test_rotated_key_is_picked_up_by_the_refresh(simulator):
    """X6: the broker rotated the key and the secret store has the new one: the cached old
    pair is refused, the refresh fetches the new pair, the call succeeds."""
    environ = {"ALPACA_API_KEY": SIM_KEY, "ALPACA_SECRET_KEY": SIM_SECRET}
    provider = CountingProvider(EnvCredentials(environ))
    broker, _ = make_broker(simulator.url, provider=provider)
    assert broker.get_clock().is_open  # the old pair is now cached in the client
    # A secret is masked wherever an answer holds it, so it must not be an everyday word
    # that answers carry ("rotated" is in the client order id); real ones are random.
    rotated = "rotated-Qm7x2Kp9Lw4"
    sim_admin(simulator.url, "/_sim/credentials", {"key": "PKROTATED", "secret": rotated})
    environ.update(ALPACA_API_KEY="PKROTATED", ALPACA_SECRET_KEY=rotated)
    order = broker.submit_order(buy("rotated-1"))
    assert order.client_order_id == "rotated-1"
    assert provider.refreshes == 1
    assert len(orders_with(simulator.url, "rotated-1")) == 1


def test_still_refused_after_one_refresh_stops_with_auth_error(simulator):
    """B4, X6: the refreshed pair is refused too -> AuthError; exactly one refresh, two tries."""
    sim_admin(simulator.url, "/_sim/credentials", {"key": "PKNEW", "secret": "unknown-to-us"})
    provider = CountingProvider(sim_credentials())
    broker, sleeps = make_broker(simulator.url, provider=provider)
    with pytest.raises(AuthError, match="still refused after refreshing") as caught:
        broker.get_account()
    assert provider.refreshes == 1
    assert sim_requests(simulator.url, "GET /v2/account") == 2
    assert sleeps == []
    assert SIM_SECRET not in str(caught.value)
    with pytest.raises(AuthError):
        broker.submit_order(buy("refused-1"))
    assert orders_with(simulator.url, "refused-1") == []


# ------------------------------------------------------------- one retry policy only


def test_504_on_submit_is_not_resent_blindly_by_alpaca_py(simulator):
    """C6, B5: alpaca-py's own 504 retry (which resends POST /v2/orders) is off: each 504 is
    one request, followed by a lookup before the next POST; the end is OutcomeUnknownError."""
    faults(simulator.url, {"endpoint": SUBMIT, "kind": "server_error", "status": 504})
    broker, sleeps = make_broker(simulator.url, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(OutcomeUnknownError, match="gw-1"):
        broker.submit_order(buy("gw-1"))
    assert sim_requests(simulator.url, SUBMIT) == 2
    assert sim_requests(simulator.url, LOOKUP) == 1
    assert len(sleeps) == 1


# ------------------------------------------------------------ header and body parsing


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("Wed, 25 Nov 2026 17:00:30 GMT", 30.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_header_forms(header, seconds):
    """B1: delta-seconds and HTTP dates are understood; nonsense is ignored, not fatal."""
    now = datetime(2026, 11, 25, 17, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds
