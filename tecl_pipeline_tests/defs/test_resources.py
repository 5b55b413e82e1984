"""The resources' configuration edges: values that must be refused when the resource is
built, with the key named (A1, C4), the alert path before and after setup (C5, S7), and
credentials that a refresh re-reads from the environment (B4, X6). Nothing here does
network I/O: adapters are built but not called."""

import logging
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tecl_pipeline.adapters.alpaca.market_data import AlpacaMarketData
from tecl_pipeline.common.events import Event, EventKind, Severity
from tecl_pipeline.config.settings import ConfigError, Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.resources import (
    AlertsResource,
    BrokerResource,
    MarketDataResource,
    ObservabilityResource,
    StateResource,
    TradingPolicyResource,
)
from tecl_pipeline.observability.alerts import Alerter
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline_tests.observability.helpers import CaptureSink

LOOPBACK = "http://127.0.0.1:9"


STEP_LOG = "tecl_pipeline_tests.step_log"


def observability_resource(log_dir: Path) -> ObservabilityResource:
    """The resource as a test builds it outside a run: not set up, so no alert path yet."""
    return ObservabilityResource(
        log_dir=str(log_dir), alerts=AlertsResource(redactor=Redactor(), log_dir=str(log_dir))
    )


def _secret_event(kind: EventKind, severity: Severity, message: str) -> Event:
    return Event(kind, severity, "secrets manager", message)


def test_an_alert_before_setup_is_logged_not_raised(tmp_path, caplog):
    """C5: an alert path that is not set up yet never breaks the trading path."""
    observability = observability_resource(tmp_path)
    observability.alert("run_failed", "the run failed", "details")
    assert "alert without an alert path: the run failed details" in caplog.text
    denied = _secret_event(EventKind.SECRET_ACCESS_FAILURE, Severity.CRITICAL, "AccessDenied")
    observability.event_sink()(denied)  # nothing to count on
    assert "event without an alert path: secrets manager secret_access_failure" in caplog.text


def test_events_reach_the_step_log_and_the_alert_path(tmp_path, caplog):
    """S7, S1: through the resource's event sink, each event is in the step's log at its
    severity's level; access failures feed the repeated-failure count, while a stale cache
    or an overdue rotation alerts at once, with its kind, severity, session and run."""
    observability = observability_resource(tmp_path)
    sink = CaptureSink()
    observability._alerter = Alerter([sink], Redactor(), auth_failure_threshold=2)
    # A real logger standing in for a step's `context.log`, read back through caplog.
    log = logging.getLogger(STEP_LOG)
    caplog.set_level(logging.DEBUG, logger=STEP_LOG)
    session = date(2026, 11, 24)
    events = observability.event_sink(session=session, run_id="run-1", log=log)
    denied = _secret_event(
        EventKind.SECRET_ACCESS_FAILURE, Severity.CRITICAL, "AccessDenied on tecl/alpaca"
    )

    events(denied)
    assert sink.sent == []  # one failure is counted, not yet an alert
    events(
        _secret_event(
            EventKind.SECRET_ROTATION_OVERDUE, Severity.WARNING, "the secret is 120 days old"
        )
    )
    events(denied)

    overdue, burst = sink.sent
    assert (overdue.kind, overdue.severity) == (EventKind.SECRET_ROTATION_OVERDUE, "warning")
    assert overdue.title == "session 2026-11-24: secrets manager secret rotation overdue"
    assert (overdue.detail, overdue.session, overdue.run_id) == (
        "the secret is 120 days old",
        session,
        "run-1",
    )
    assert (burst.kind, burst.severity, burst.run_id) == ("auth_failures", "critical", "run-1")
    assert "secrets manager x2" in burst.detail
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == STEP_LOG]
    assert [level for level, _ in lines] == [
        logging.CRITICAL,
        logging.WARNING,
        logging.CRITICAL,
    ]
    assert lines[1][1] == "secrets manager secret_rotation_overdue: the secret is 120 days old"


def test_csv_market_data_needs_a_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"data_dir: required when source is 'csv'"):
        MarketDataResource(source="csv").open(calendar=CALENDAR)


def test_alpaca_market_data_needs_both_keys_and_gets_the_configured_endpoint():
    with pytest.raises(ConfigError, match="ALPACA_API_KEY / ALPACA_SECRET_KEY"):
        MarketDataResource(source="alpaca", api_key="k").open(calendar=CALENDAR)
    source = MarketDataResource(
        source="alpaca", url=LOOPBACK, api_key="PKTEST", secret_key="secret-value"
    ).open(calendar=CALENDAR)
    assert isinstance(source, AlpacaMarketData) and source.url == LOOPBACK
    assert "secret-value" not in source.description


def test_the_data_feed_is_one_setting_for_bars_and_the_brokers_latest_trades(tmp_path):
    """TECL_DATA_FEED reaches the market data and, through it, the broker's latest trades:
    the launchpad takes the wire names (`sip`), and anything else is one line listing them."""
    settings = Settings.from_env(
        {"TECL_MODE": "paper", "TECL_DATA_FEED": "delayed_sip", "TECL_BROKER_URL": LOOPBACK},
        cwd=tmp_path,
    )
    resources = build_definitions(settings).resources or {}
    assert resources["market_data_source"].feed == "delayed_sip"
    assert resources["broker"].market_data_source.feed == "delayed_sip"
    assert MarketDataResource(feed="sip").feed == "sip"
    with pytest.raises(ConfigError) as caught:
        MarketDataResource(feed="SIP")
    assert "feed: 'SIP' is not a data feed; use one of iex, sip, delayed_sip" in str(caught.value)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"max_order_notional": "lots"}, "max_order_notional: 'lots' is not a decimal number"),
        ({"max_daily_turnover": "-1"}, "max_daily_turnover: '-1' must be a finite number >= 0"),
        ({"cash_reserve": "1"}, "cash_reserve: '1' must be below 1"),
        ({"cash_reserve": "Infinity"}, "must be a finite number"),
        ({"poll_interval_seconds": 0.0}, "need 0 < poll interval <= timeout"),
        ({"poll_interval_seconds": 5.0, "fill_timeout_seconds": 1.0}, "poll interval <= timeout"),
        ({"max_price_age_seconds": 0}, "max_price_age_seconds: Input should be greater than 0"),
        ({"max_price_age_seconds": float("inf")}, "max_price_age_seconds: .* finite number"),
        ({"max_price_age_seconds": 1e12}, "max_price_age_seconds: .* less than or equal to 86400"),
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
        observability=observability_resource(tmp_path),
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
    error = failure.engine_event_data.error
    assert error is not None
    assert "ConfigError: cash_reserve: '2' must be below 1" in error.to_string()
