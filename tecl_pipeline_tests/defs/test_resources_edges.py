"""The resources' configuration edges: values that must be refused when the resource is
built, with the key named (A1, C4), the alert path before and after setup (C5, S7), and
credentials that a refresh re-reads from the environment (B4, X6). Nothing here does
network I/O: adapters are built but not called."""

from datetime import date
from decimal import Decimal

import pytest
from dagster import DagsterInstance

from tecl_pipeline.adapters.alpaca.market_data import AlpacaMarketData
from tecl_pipeline.config.settings import ConfigError, Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.resources import (
    BrokerResource,
    MarketDataResource,
    ObservabilityResource,
    StateResource,
    TradingPolicyResource,
)

LOOPBACK = "http://127.0.0.1:9"


class RecordingAlerter:
    def __init__(self) -> None:
        self.sent: list = []
        self.auth_failures: list[tuple[str, str]] = []

    def send(self, alert) -> None:
        self.sent.append(alert)

    def record_auth_failure(self, source: str, message: str) -> None:
        self.auth_failures.append((source, message))


def test_an_alert_before_setup_is_logged_not_raised(tmp_path, caplog):
    """C5: an alert path that is not set up yet never breaks the trading path."""
    observability = ObservabilityResource(log_dir=str(tmp_path))
    observability.alert("run_failed", "the run failed", "details")
    assert "alert without an alert path: the run failed details" in caplog.text
    observability.secret_event("secret_access_failure", "AccessDenied")  # nothing to count on


def test_secret_events_count_access_failures_and_alert_the_rest(tmp_path):
    """S7: access failures feed the repeated-failure count; stale caches and overdue
    rotations (S1) alert at once, titled by their kind."""
    observability = ObservabilityResource(log_dir=str(tmp_path))
    alerter = RecordingAlerter()
    observability._alerter = alerter

    observability.secret_event("secret_access_failure", "AccessDenied on tecl/alpaca")
    observability.secret_event("rotation_overdue", "the secret is 120 days old")

    assert alerter.auth_failures == [("secrets manager", "AccessDenied on tecl/alpaca")]
    (alert,) = alerter.sent
    assert (alert.kind, alert.title) == ("rotation_overdue", "secrets: rotation overdue")
    assert alert.detail == "the secret is 120 days old" and alert.severity == "warning"


def test_csv_market_data_needs_a_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"data_dir: required when source is 'csv'"):
        MarketDataResource(source="csv").open(calendar=None)


def test_alpaca_market_data_needs_both_keys_and_gets_the_configured_endpoint():
    with pytest.raises(ConfigError, match="ALPACA_API_KEY / ALPACA_SECRET_KEY"):
        MarketDataResource(source="alpaca", api_key="k").open(calendar=None)
    source = MarketDataResource(
        source="alpaca", url=LOOPBACK, api_key="PKTEST", secret_key="secret-value"
    ).open(calendar=None)
    assert isinstance(source, AlpacaMarketData) and source.url == LOOPBACK
    assert "secret-value" not in source.description


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"max_order_notional": "lots"}, "max_order_notional: 'lots' is not a decimal number"),
        ({"max_daily_turnover": "-1"}, "max_daily_turnover: '-1' must be a finite number >= 0"),
        ({"cash_reserve": "1"}, "cash_reserve: '1' must be below 1"),
        ({"cash_reserve": "Infinity"}, "must be a finite number"),
        ({"poll_interval_seconds": 0.0}, "need 0 < poll interval <= timeout"),
        ({"poll_interval_seconds": 5.0, "fill_timeout_seconds": 1.0}, "poll interval <= timeout"),
    ],
)
def test_a_trading_policy_that_cannot_be_right_is_refused_naming_the_key(config, match):
    with pytest.raises(ConfigError, match=match):
        TradingPolicyResource(**config).policy()


def test_optional_risk_limits_arrive_as_decimals():
    policy = TradingPolicyResource(max_order_notional="2500.50", max_daily_turnover="2").policy()
    assert policy.risk.max_order_notional == Decimal("2500.50")
    assert policy.risk.max_daily_turnover == Decimal("2")
    assert TradingPolicyResource().policy().risk.max_order_notional is None


def broker(tmp_path, **config) -> BrokerResource:
    return BrokerResource(
        market_data_source=MarketDataResource(),
        observability=ObservabilityResource(log_dir=str(tmp_path)),
        **config,
    )


def test_paper_mode_connects_to_the_configured_url_with_refreshable_env_credentials(
    tmp_path, monkeypatch
):
    """B4, X6: the configured pair is used first; a refresh (after a 401) reads the
    environment again, so a key rotated while the run waited is picked up."""
    monkeypatch.setenv("ALPACA_API_KEY", "PKROTATED")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "rotated-secret")
    resource = broker(tmp_path, mode="paper", url=LOOPBACK, api_key="PKFIRST", secret_key="first")
    with resource.connect(date(2026, 11, 24)) as adapter:
        assert adapter.description == f"Alpaca PAPER API at {LOOPBACK}"
    provider = resource._credentials_provider()
    assert provider is resource._credentials_provider()  # one per resource instance
    assert provider.get().key_id == "PKFIRST"
    assert provider.get(refresh=True).key_id == "PKROTATED"


def test_a_negative_retry_delay_is_a_config_error_when_the_resource_is_built(tmp_path):
    with pytest.raises(ConfigError, match="retry_base_delay_seconds"):
        broker(
            tmp_path,
            mode="paper",
            url=LOOPBACK,
            api_key="k",
            secret_key="s",
            retry_base_delay_seconds=-1.0,
        )


def test_the_embedded_demo_broker_needs_a_book_file(tmp_path):
    assert broker(tmp_path, mode="demo", book_path=str(tmp_path / "account.json")).embedded
    with pytest.raises(ConfigError, match="book_path: the embedded demo broker needs a file"):
        broker(tmp_path, mode="demo")


def test_a_bad_resource_value_fails_when_the_definitions_load_in_one_line(tmp_path):
    """C4: the values are checked as the deployment's resources are built, not when a step
    first uses them; every problem is named on one line."""
    settings = Settings(state_uri=tmp_path.as_uri())
    bad = {"trading_policy": {"cash_reserve": "2", "max_price_gap": "wide"}}
    with pytest.raises(ConfigError) as caught:
        build_definitions(settings, resource_config=bad)
    assert str(caught.value) == (
        "cash_reserve: '2' must be below 1; max_price_gap: 'wide' is not a decimal number"
    )
    with pytest.raises(ConfigError, match=r"^state_uri: 'ftp://x' is neither"):
        StateResource(state_uri="ftp://x", local_dir=str(tmp_path))


def test_a_bad_launchpad_value_fails_the_run_before_any_step_naming_the_key(tmp_path):
    """C4: a value set in the launchpad is checked as the run builds its resources: no step
    runs, and the failure names the key and the rule."""
    settings = Settings(state_uri=(tmp_path / "state").as_uri(), log_dir=tmp_path / "logs")
    job = build_definitions(settings).resolve_job_def("daily_trading_job")

    result = job.execute_in_process(
        partition_key="2026-11-24",
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"resources": {"trading_policy": {"config": {"cash_reserve": "2"}}}},
    )

    assert not result.success
    assert result.get_step_success_events() == []
    [failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert (
        "ConfigError: cash_reserve: '2' must be below 1"
        in failure.event_specific_data.error.to_string()
    )
