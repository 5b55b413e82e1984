"""Paper mode end to end: credentials through EnvVar, Alpaca market data and trading, both
over HTTP against the simulator standing in for Alpaca."""

import json

import pytest
from dagster import DagsterInstance, DagsterInvalidConfigError

from tecl_pipeline.config.settings import DataFeed, Mode, Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_KEY,
    SIM_SECRET,
    SIM_SESSION,
    sim_state,
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


def run(settings: Settings):
    job = build_definitions(settings).resolve_job_def("daily_trading_job")
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
