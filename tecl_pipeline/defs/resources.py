"""Resources: where market data come from, which broker to trade, where state lives, and
the trading policy. Configured per deployment in `definitions.py`; editable in the launchpad.
Credentials arrive only as Dagster `EnvVar`s, never as plain config values (S2).
"""

import logging
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from dagster import ConfigurableResource, InitResourceContext, ResourceDependency
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from tecl_pipeline.common.events import Event, EventSink, Severity
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.config.settings import (
    ConfigError,
    DataFeed,
    live_environment,
    one_line,
    validate_state_uri,
)
from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.core.portfolio import RiskLimits
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.run_tags import OWN_TAGS, tag_run
from tecl_pipeline.marketdata import MarketDataSource
from tecl_pipeline.marketdata.csv_source import CsvMarketData
from tecl_pipeline.marketdata.demo import DEMO_SEED, DemoMarketData
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline.trading.execution import ExecutionPolicy

if TYPE_CHECKING:
    # Imported where used: the adapter and simulator pull in alpaca-py and HTTP machinery
    # that loading the definitions (A1) does not need.
    from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
    from tecl_pipeline.observability.alerts import Alerter
    from tecl_pipeline.state.journal.base import JournalStore
    from tecl_pipeline.trading.credentials import Credentials, CredentialsProvider


def _decimal(value: str) -> Decimal:
    """A finite, non-negative decimal from config text; ValueError says why not."""
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{value!r} must be a finite number >= 0")
    return number


def _data_feed(value: str) -> str:
    """One of Alpaca's feeds by its wire name (a string, so that the launchpad takes `sip`
    as TECL_DATA_FEED does); ValueError lists them."""
    try:
        return DataFeed(value).value
    except ValueError:
        feeds = ", ".join(feed.value for feed in DataFeed)
        raise ValueError(f"{value!r} is not a data feed; use one of {feeds}") from None


def _retry_policy(base_delay: float) -> RetryPolicy:
    default = RetryPolicy()
    return RetryPolicy(base_delay=base_delay, max_delay=max(default.max_delay, base_delay))


class CheckedResource(ConfigurableResource):
    """A resource whose values are checked when it is built, so a bad one fails when the
    definitions load (or the launchpad's config is applied), not when a step first uses
    it: one line, each problem under its field's name (C4)."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(one_line(exc)) from None


def _now() -> datetime:
    return datetime.now().astimezone()


# Failure modes X9 (alert routing) and S2 (no secret in what it sends). The docstring is
# the UI's description of the resource: plain sentences, the IDs stay here.
class AlertsResource(ConfigurableResource):
    """Where alerts go: the log, the alert file (or <log_dir>/alerts.jsonl), the webhook and
    apprise (Telegram, Discord, e-mail, ntfy...). Runs alert through it (via
    `ObservabilityResource`), and so do the sensors.

    The webhook URL and the apprise URLs are credentials (whoever holds one can post to the
    channel), so they arrive as EnvVars like the broker keys. The redactor knows the
    deployment's secret values; it is built from the settings, never from config.
    """

    log_dir: str | None = None
    alert_file: str | None = None
    webhook_url: str | None = None
    # One or more apprise URLs (TECL_APPRISE_URL), https forms only.
    apprise_url: str | None = None
    redactor: ResourceDependency[Redactor]

    def alerter(self) -> "Alerter":
        """The alert path; cheap (a few sink objects), so built per use and nothing
        survives between sensor ticks but their cursors."""
        from tecl_pipeline.observability.alerts import build_alerter

        return build_alerter(
            self.redactor,
            log_dir=None if self.log_dir is None else Path(self.log_dir),
            alert_file=None if self.alert_file is None else Path(self.alert_file),
            webhook_url=self.webhook_url,
            apprise_urls=self.apprise_url,
        )


# Failure modes D7 (structured logs), S2 (redaction), X9 (alert routing).
class ObservabilityResource(ConfigurableResource):
    """Structured, redacted JSON logs and the alert path of a run."""

    log_dir: str
    alerts: ResourceDependency[AlertsResource]
    # Log records at this level and above are also written to stderr as JSON (a container's
    # log stream); `tecl run` raises it, since its stderr is one line for a person.
    stderr_level: int = logging.WARNING
    # Tags every run using this resource gets when it starts (defs/run_tags.py: the mode
    # and the market data of the deployment).
    run_tags: dict[str, str] = Field(default_factory=dict)

    _alerter: Any = PrivateAttr(default=None)
    _context: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from tecl_pipeline.observability.logs import configure_logging, log_context

        configure_logging(
            Path(self.log_dir), redactor=self.alerts.redactor, stderr_level=self.stderr_level
        )
        self._alerter = self.alerts.alerter()
        # Every line logged while the run uses this resource names the run and its session
        # (D7); steps run after resource set-up in the same context, and teardown undoes it.
        run = context.run
        if run is not None and context.instance is not None:
            # A re-execution starts with its parent's tags: not its parent's outcome, leaf
            # or sent alert, which would keep its own failure from being alerted.
            inherited = {tag: "" for tag in OWN_TAGS if run.parent_run_id and run.tags.get(tag)}
            if self.run_tags or inherited:
                tag_run(context.instance, run.run_id, {**self.run_tags, **inherited})
        if run is not None:
            self._context = ExitStack()
            self._context.enter_context(
                log_context(run_id=run.run_id, session=run.tags.get("dagster/partition"))
            )

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._context is not None:
            self._context.close()
            self._context = None

    def alert(
        self,
        kind: str,
        title: str,
        detail: str = "",
        *,
        session: date | None = None,
        run_id: str | None = None,
        severity: Severity = Severity.WARNING,
    ) -> None:
        """Deliver an alert to every sink; never raises into the trading path (C5)."""
        from tecl_pipeline.observability.alerts import Alert

        if self._alerter is None:
            logging.getLogger(__name__).warning("alert without an alert path: %s %s", title, detail)
            return
        self._alerter.send(
            Alert(kind, title, detail, session=session, run_id=run_id, severity=severity)
        )

    def redact_step_log(self, log: logging.Logger) -> logging.Logger:
        """A step's `context.log` with the run's redaction in front of Dagster's own handler:
        what a step logs directly goes to the run's event log, past the project's loggers (S2)."""
        from tecl_pipeline.observability.logs import install_redaction

        install_redaction(log, self.alerts.redactor)
        return log

    def event_sink(
        self,
        *,
        session: date | None = None,
        run_id: str | None = None,
        log: logging.Logger | None = None,
    ) -> EventSink:
        """Where the journal and the secrets provider send their events: `log` (a step's
        `context.log`, so the event is in the run's event log) at the event's level, and
        the alert path, for `run_id` of `session` (S7, D1, D3)."""

        def sink(event: Event) -> None:
            if log is not None:
                log.log(event.severity.log_level, event.text())
            if self._alerter is None:
                logging.getLogger(__name__).warning("event without an alert path: %s", event.text())
                return
            self._alerter.notify(event, session=session, run_id=run_id)

        return sink


class MarketDataResource(CheckedResource):
    """Daily adjusted closes: generated demo data, `DIR/<SYMBOL>.csv` replay, or Alpaca's
    market data (adjustment=all) in paper and live mode."""

    source: Literal["demo", "csv", "alpaca"] = "demo"
    data_dir: str | None = None
    demo_seed: int = DEMO_SEED
    url: str | None = None
    # TECL_DATA_FEED, for bars here and the broker's latest trades (config/settings.py says
    # why it is named on every request).
    feed: str = DataFeed.IEX.value
    api_key: str | None = None
    secret_key: str | None = None
    secret_id: str | None = None
    timeout_seconds: float = 10.0
    # Where the Secrets Manager secret lives (A5), from the settings.
    secrets_region: str | None = None
    secrets_region_var: str | None = None
    secrets_endpoint_url: str | None = None

    @field_validator("feed")
    @classmethod
    def _feed_is_alpacas(cls, value: str) -> str:
        return _data_feed(value)

    @model_validator(mode="after")
    def _csv_needs_a_folder(self) -> "MarketDataResource":
        if self.source == "csv" and not self.data_dir:
            raise ValueError("data_dir: required when source is 'csv' (TECL_DATA_DIR)")
        return self

    _provider: Any = PrivateAttr(default=None)

    def open(self, calendar: TradingCalendar) -> MarketDataSource:
        if self.source == "csv" and self.data_dir:
            return CsvMarketData(Path(self.data_dir))
        if self.source == "alpaca":
            from tecl_pipeline.adapters.alpaca.market_data import AlpacaMarketData

            # One provider for every source opened in the run: the secret is fetched, and
            # its age checked, once, and its client closes with the run.
            if self._provider is None:
                self._provider = _credentials(
                    self.api_key, self.secret_key, _secret_location(self), self.secret_id
                )
            return AlpacaMarketData(
                self._provider, url=self.url, timeout=self.timeout_seconds, feed=self.feed
            )
        return DemoMarketData(calendar, now=_now, seed=self.demo_seed)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        _close(self._provider)
        self._provider = None


class StateResource(CheckedResource):
    """Where the journal lives (`file://` or `s3://`, TECL_STATE_URI) and the machine-local
    directory for what must stay on this machine: session locks and the write spool."""

    state_uri: str
    local_dir: str

    @field_validator("state_uri")
    @classmethod
    def _state_uri_is_supported(cls, value: str) -> str:
        return validate_state_uri(value)

    _s3_client: Any = PrivateAttr(default=None)

    def journal(
        self, on_event: EventSink | None = None, *, read_only: bool = False
    ) -> "JournalStore":
        """The journal store; S3 through a client with timeouts whose retries are the
        journal's, made once per run (a boto3 client loads its service model from disk: ~0.3 s
        each). `read_only`: for readers that are not runs (see `open_journal`)."""
        from tecl_pipeline.adapters.journal_store import open_journal

        if self._s3_client is None and urlsplit(self.state_uri).scheme == "s3":
            from tecl_pipeline.adapters.aws.s3_journal import default_s3_client

            self._s3_client = default_s3_client()
        return open_journal(
            f"{self.state_uri.rstrip('/')}/journal",
            spool_dir=Path(self.local_dir) / "spool",
            s3_client=self._s3_client,
            on_event=on_event,
            read_only=read_only,
        )

    @property
    def lock_dir(self) -> Path:
        return Path(self.local_dir) / "locks"

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        # Its pooled connections close with the run, not whenever garbage collection finds
        # them: a long-lived process (code server, daemon) runs many.
        if self._s3_client is not None:
            self._s3_client.close()
            self._s3_client = None


def _secret_location(resource: "MarketDataResource | BrokerResource") -> dict[str, str]:
    """Where the secret is, as the variables the secrets provider names in its errors."""
    from tecl_pipeline.adapters.secrets_provider import ENDPOINT_VAR

    location = {ENDPOINT_VAR: resource.secrets_endpoint_url or ""}
    if resource.secrets_region and resource.secrets_region_var:
        location[resource.secrets_region_var] = resource.secrets_region
    return location


def _credentials(
    api_key: str | None,
    secret_key: str | None,
    secret_location: dict[str, str],
    secret_id: str | None = None,
    on_event: EventSink | None = None,
) -> "CredentialsProvider":
    """Secrets Manager when a secret id is configured (cached, refreshed after a 401);
    otherwise the pair Dagster resolved from EnvVar, where a refresh reads the variables
    again, so a key rotated while the run waited is picked up (B4, X6)."""
    from tecl_pipeline.trading.credentials import Credentials, EnvCredentials

    if secret_id:
        from tecl_pipeline.adapters.aws.secrets_manager import SecretsManagerCredentials
        from tecl_pipeline.adapters.secrets_provider import SECRET_ID_VAR, credentials_from_env

        provider = credentials_from_env(
            {**secret_location, SECRET_ID_VAR: secret_id}, on_event=on_event
        )
        # Only a secret has a rotation age; a blank id leaves the environment's pair.
        if isinstance(provider, SecretsManagerCredentials):
            provider.check_age()  # S1: an overdue rotation is reported, not fatal
        return provider
    if not api_key or not secret_key:
        raise ConfigError(
            "ALPACA_API_KEY / ALPACA_SECRET_KEY: both must be set for Alpaca in paper or live mode"
        )
    return _RefreshingCredentials(
        Credentials(api_key, secret_key), EnvCredentials(live_environment())
    )


def _close(provider: object) -> None:
    """Close a credentials provider's connections with the run (a Secrets Manager client),
    not whenever garbage collection finds them; the others hold none."""
    close = getattr(provider, "close", None)
    if callable(close):
        close()


class _RefreshingCredentials:
    def __init__(self, first: "Credentials", source: "CredentialsProvider") -> None:
        self._first = first
        self._source = source

    def get(self, *, refresh: bool = False) -> "Credentials":
        return self._source.get(refresh=True) if refresh else self._first


class BrokerResource(CheckedResource):
    """The broker, always through the one Alpaca adapter over HTTP.

    Demo mode without a URL runs an Alpaca-compatible simulator inside the run, on a
    loopback port, serving the same market data, its account kept in `book_path` and its
    clock at the session's decision time. Paper and live talk to Alpaca (or `url`).
    """

    mode: Literal["demo", "paper", "live"] = "demo"
    url: str | None = None
    # Where the broker's latest trades are read: TECL_DATA_URL; else `url` when set (a
    # compatible server serves both), else Alpaca's market data API.
    data_url: str | None = None
    api_key: str | None = None
    secret_key: str | None = None
    secret_id: str | None = None
    book_path: str | None = None
    starting_cash: str = "100000"
    timeout_seconds: float = 10.0
    # First backoff of a retried call; a broker's Retry-After still wins when it is longer.
    retry_base_delay_seconds: float = 0.5
    secrets_region: str | None = None
    secrets_region_var: str | None = None
    secrets_endpoint_url: str | None = None
    market_data_source: ResourceDependency[MarketDataResource]
    observability: ResourceDependency[ObservabilityResource]

    _embedded: Any = PrivateAttr(default=None)
    _provider: Any = PrivateAttr(default=None)

    @field_validator("starting_cash")
    @classmethod
    def _cash_is_a_decimal(cls, value: str) -> str:
        _decimal(value)
        return value

    @field_validator("retry_base_delay_seconds")
    @classmethod
    def _retry_delay_is_usable(cls, value: float) -> float:
        _retry_policy(value)  # the retry policy's own rule: raises ValueError saying why
        return value

    @model_validator(mode="after")
    def _embedded_broker_has_a_book(self) -> "BrokerResource":
        if self.embedded and not self.book_path:
            raise ValueError("book_path: the embedded demo broker needs a file for its account")
        return self

    @property
    def embedded(self) -> bool:
        return self.mode == "demo" and self.url is None

    def _embedded_url(self, session: date) -> str:
        """Start the run's simulator on first use; its market stands at the session's
        decision time (started lazily, so bad market data surface in the asset that reads
        them, as a refusal, rather than as a resource failure)."""
        from tecl_pipeline.simulator import BrokerSimulator, SimulatorServer

        moment = CALENDAR.decision_time(session)
        if self._embedded is None:
            # Set whenever the broker is embedded: checked when the resource was built.
            assert self.book_path is not None
            simulator = BrokerSimulator(
                self.market_data_source.open(CALENDAR),
                CALENDAR,
                starting_cash=Decimal(self.starting_cash),
                now=moment,
                book_path=Path(self.book_path),
            )
            self._embedded = SimulatorServer(simulator).start()
        else:
            self._embedded.simulator.set_clock(moment)
        return self._embedded.url

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
        _close(self._provider)
        self._provider = None

    def _credentials_provider(self) -> "CredentialsProvider":
        """One provider per resource instance: its cache serves every connect of the run,
        so the secret is fetched, and its age checked, once rather than at each step."""
        from tecl_pipeline.simulator.engine import DEMO_API_KEY, DEMO_API_SECRET
        from tecl_pipeline.trading.credentials import Credentials, StaticCredentials

        if self._provider is None:
            if self.mode == "demo" and not (self.api_key or self.secret_id):
                # The simulator's own fixed pair: not a secret, and no real account behind it.
                self._provider = StaticCredentials(Credentials(DEMO_API_KEY, DEMO_API_SECRET))
            else:
                self._provider = _credentials(
                    self.api_key,
                    self.secret_key,
                    _secret_location(self),
                    self.secret_id,
                    self.observability.event_sink(),
                )
        return self._provider

    def connect(self, session: date) -> "AlpacaBroker":
        from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker

        url = self._embedded_url(session) if self.embedded else self.url
        return AlpacaBroker(
            self._credentials_provider(),
            paper=self.mode != "live",
            url=url,
            timeout=self.timeout_seconds,
            retry=_retry_policy(self.retry_base_delay_seconds),
            label="demo broker simulator (embedded)" if self.embedded else "",
            data_url=self.data_url if not self.embedded else url,
            # The feed of the run's market data: one setting for bars and latest trades.
            data_feed=self.market_data_source.feed,
        )


# Failure mode T9 (risk rules).
class TradingPolicyResource(CheckedResource):
    """How targets become orders, and the risk limits checked before any order.

    Amounts are decimal strings: Dagster config has no Decimal, and floats would round.
    """

    cash_reserve: str = "0.005"
    min_trade_notional: str = "1"
    kill_switch: bool = False
    max_order_notional: str | None = None
    max_position_weight: str = "1"
    max_daily_turnover: str | None = None
    # A decision price further than this fraction from the broker's latest trade refuses
    # the session before any order (an unadjusted split, stale or bad data).
    max_price_gap: str = "0.05"
    # How old (by the broker's clock) the latest trade confirming a decision price may be:
    # older refuses the session. 20 minutes admits the 15-minute delayed SIP feed.
    max_price_age_seconds: float = Field(default=1200.0, gt=0, le=86_400, allow_inf_nan=False)
    # How long each phase (sells, then buys) waits for fills before cancelling the rest.
    fill_timeout_seconds: float = 120.0
    poll_interval_seconds: float = 1.0

    @field_validator(
        "cash_reserve",
        "min_trade_notional",
        "max_order_notional",
        "max_position_weight",
        "max_daily_turnover",
        "max_price_gap",
    )
    @classmethod
    def _amount(cls, value: str | None) -> str | None:
        if value is not None:
            _decimal(value)
        return value

    @field_validator("cash_reserve")
    @classmethod
    def _reserve_below_everything(cls, value: str) -> str:
        if Decimal(value) >= 1:
            raise ValueError(f"{value!r} must be below 1")
        return value

    @model_validator(mode="after")
    def _poll_within_timeout(self) -> "TradingPolicyResource":
        if not 0 < self.poll_interval_seconds <= self.fill_timeout_seconds:
            raise ValueError(
                "poll_interval_seconds / fill_timeout_seconds: need 0 < poll interval <= timeout"
            )
        return self

    def policy(self) -> ExecutionPolicy:
        optional = {
            key: None if value is None else Decimal(value)
            for key, value in (
                ("max_order_notional", self.max_order_notional),
                ("max_daily_turnover", self.max_daily_turnover),
            )
        }
        return ExecutionPolicy(
            cash_reserve=Decimal(self.cash_reserve),
            fill_timeout=self.fill_timeout_seconds,
            poll_interval=self.poll_interval_seconds,
            min_trade_notional=Decimal(self.min_trade_notional),
            max_price_gap=Decimal(self.max_price_gap),
            max_price_age=timedelta(seconds=self.max_price_age_seconds),
            risk=RiskLimits(
                kill_switch=self.kill_switch,
                max_position_weight=Decimal(self.max_position_weight),
                **optional,
            ),
        )
