"""Paper mode end to end: credentials through EnvVar, Alpaca market data and trading, both
over HTTP against the simulator standing in for Alpaca."""

import json

import pytest
from alpaca.trading.enums import OrderSide
from dagster import DagsterInstance, DagsterInvalidConfigError

from tecl_pipeline.config.settings import DataFeed, Mode, Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.simulator import AccountKind
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_KEY,
    SIM_SECRET,
    SIM_SESSION,
    by_hand,
    sim_state,
    trading_client,
)


@pytest.fixture
def paper_settings(simulator, tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("ALPACA_API_KEY", SIM_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SIM_SECRET)
    return Settings(
        mode=Mode.PAPER,
        state_uri=(tmp_path / "state").as_uri(),
        broker_url=simulator.url,
        data_url=simulator.url,
    )


def run(settings: Settings, **resource_config):
    job = build_definitions(settings, resource_config=resource_config).resolve_job_def(
        "daily_trading_job"
    )
    return job.execute_in_process(
        partition_key=SIM_SESSION.isoformat(),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_paper_run_trades_through_alpaca_apis(paper_settings, simulator):
    result = run(paper_settings)

    assert result.success
    [md] = result.asset_materializations_for_node("market_data")
    assert simulator.url in md.metadata["source"].value
    assert "feed iex" in str(md.metadata["source"].value)
    orders = result.asset_value("executed_orders")
    assert "Alpaca PAPER API" in orders.broker and simulator.url in orders.broker
    placed = {s["client_order_id"] for s in sim_state(simulator.url)["submissions"]}
    assert placed == {o.client_order_id for o in orders.sent} and placed


@pytest.mark.parametrize(
    ("feed", "basis", "age"),
    [
        (DataFeed.IEX, "the latest trade on IEX", "0.0 min"),
        (DataFeed.DELAYED_SIP, "as of 15 minutes before", "15.0 min"),
    ],
    ids=["iex", "delayed_sip"],
)
def test_each_decision_price_shows_how_it_was_formed_its_time_and_feed(
    paper_settings, simulator, feed, basis, age
):
    """T1: market_data says how the decision price is formed on the feed and shows each
    symbol's latest trade with its time and feed; target_allocation shows each decision
    price beside the broker's trade and its age by the broker's clock. The delayed feed's
    15-minute-old prices are within the default limit, and the session trades."""
    result = run(paper_settings.model_copy(update={"data_feed": feed}))

    assert result.success
    [md] = result.asset_materializations_for_node("market_data")
    assert basis in str(md.metadata["decision_price"].value)
    latest = str(md.metadata["latest_bars"].value)
    traded_at = (
        "2026-11-24 15:30:00 EST" if feed is DataFeed.DELAYED_SIP else "2026-11-24 15:45:00 EST"
    )
    for symbol in ("TECL", "SPY", "BIL"):
        [row] = [line for line in latest.splitlines() if line.startswith(f"| {symbol} |")]
        assert row.endswith(f"| {traded_at} | {feed.value} |"), row
    [target] = result.asset_materializations_for_node("target_allocation")
    prices = str(target.metadata["decision_prices"].value)
    rows = prices.splitlines()[2:]  # after the header and its rule
    assert len(rows) == 10 and all(row.endswith(f"| {feed.value} | {age} |") for row in rows)
    assert target.metadata["max_price_age_minutes"].value == 20.0
    assert sim_state(simulator.url)["submissions"]


def test_prices_older_than_the_policy_allows_refuse_the_session(paper_settings, simulator):
    """T1: a policy of 10 minutes refuses the delayed SIP feed's 15-minute-old prices at the
    pre-trade check, naming the age and the limit; no order is sent."""
    result = run(
        paper_settings.model_copy(update={"data_feed": DataFeed.DELAYED_SIP}),
        trading_policy={"max_price_age_seconds": 600},
    )

    assert not result.success
    [check] = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "pre_trade_ready"
    ]
    description = check.description or ""
    assert not check.passed
    assert "its latest trade on feed delayed_sip is 15.0 min old" in description
    assert "more than the 10.0 min" in description
    assert sim_state(simulator.url)["submissions"] == []


@pytest.mark.parametrize("kind", [AccountKind.MARGIN, AccountKind.PDT], ids=lambda k: k.value)
def test_a_short_position_at_the_broker_refuses_the_session_with_an_alert(
    paper_settings, simulator, tmp_path, kind
):
    """B7: a margin account can hold a short position (opened by hand: a sell of a symbol
    it did not hold). The pipeline never trades around one: the session is refused before
    any order, naming the symbol and what to do, and the refusal is alerted."""
    simulator.simulator.set_account(kind=kind)
    by_hand(simulator.url, "UVXY", 10, OrderSide.SELL, "manual-short-1")
    client = trading_client(simulator.url)
    assert [(p.symbol, p.qty) for p in client.get_all_positions()] == [("UVXY", "-10")]
    alert_file = tmp_path / "alerts.jsonl"

    result = run(paper_settings.model_copy(update={"alert_file": alert_file}))

    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    refusal = failure.step_failure_data.user_failure_data
    assert failure.step_key == "target_allocation" and refusal is not None
    assert "UVXY position qty is -10: a short position" in str(refusal.description)
    [alert] = [json.loads(line) for line in alert_file.read_text().splitlines()]
    assert alert["kind"] == "refused" and "a short position" in alert["detail"]
    submitted = [s["client_order_id"] for s in sim_state(simulator.url)["submissions"]]
    assert submitted == ["manual-short-1"], "the pipeline sent nothing"


def test_paper_run_on_sip_is_refused_on_the_free_plan(paper_settings, simulator):
    """SIP on Alpaca's free plan (the simulator's default) is refused at market data, naming
    TECL_DATA_FEED; no order is sent. (The default feed, IEX, trades: the test above.)"""
    result = run(paper_settings.model_copy(update={"data_feed": DataFeed.SIP}))

    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    refusal = failure.step_failure_data.user_failure_data
    assert failure.step_key == "market_data" and refusal is not None
    assert "TECL_DATA_FEED=iex" in str(refusal.description)
    assert sim_state(simulator.url)["submissions"] == []


def test_paper_run_without_credentials_fails_before_any_order(
    paper_settings, simulator, monkeypatch
):
    """C4/S4: missing credentials stop the run before it starts, naming the variable."""
    monkeypatch.delenv("ALPACA_SECRET_KEY")

    with pytest.raises(DagsterInvalidConfigError, match="ALPACA_SECRET_KEY"):
        run(paper_settings)
    assert sim_state(simulator.url)["submissions"] == []


def test_paper_run_with_keys_from_secrets_manager(simulator, tmp_path, aws_sandbox, monkeypatch):
    """A6/S4/X6: with TECL_SECRET_ID the keys come from Secrets Manager (moto, over HTTP),
    not from ALPACA_* variables, and the run trades."""
    import boto3

    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_SECRET_KEY", raising=False)
    secrets = boto3.client("secretsmanager", endpoint_url=aws_sandbox, region_name="us-east-1")
    secret = secrets.create_secret(
        Name=f"tecl/alpaca-{tmp_path.name}",
        SecretString=json.dumps({"ALPACA_API_KEY": SIM_KEY, "ALPACA_SECRET_KEY": SIM_SECRET}),
    )
    settings = Settings(
        mode=Mode.PAPER,
        state_uri=(tmp_path / "state").as_uri(),
        broker_url=simulator.url,
        data_url=simulator.url,
        secret_id=secret["ARN"],
        log_dir=tmp_path / "logs",
    )

    result = run(settings)

    assert result.success
    assert sim_state(simulator.url)["submissions"]
