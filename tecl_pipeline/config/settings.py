"""Deployment settings read from the environment, validated before anything runs (C4).

The one module that reads the process environment: everything else receives a `Settings`
(or values from it). Only where the pipeline runs and what it talks to lives here. Trading
policy (cash reserve, minimum trade, risk limits) is Dagster resource config, visible and
editable in the UI. Secrets are held as `SecretStr` (never printed) for this process's
redactor and alert path; they reach Dagster resources only as `EnvVar`, so no secret
enters the code location snapshot (S2).
"""

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from tecl_pipeline.common.endpoints import validate_endpoint


class Mode(StrEnum):
    DEMO = "demo"
    PAPER = "paper"
    LIVE = "live"


class DataFeed(StrEnum):
    """Alpaca's stock data feed for bars and latest trades (TECL_DATA_FEED). IEX works on
    every plan; SIP from the last 15 minutes needs the paid plan (the free Basic plan gets
    403 "subscription does not permit querying recent SIP data"); delayed SIP is SIP as of
    15 minutes ago, on every plan."""

    IEX = "iex"
    SIP = "sip"
    DELAYED_SIP = "delayed_sip"


class ConfigError(ValueError):
    """A setting that is missing or malformed; raised before any order, naming the key."""


ENV_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "mode": "TECL_MODE",
        "data_dir": "TECL_DATA_DIR",
        "state_uri": "TECL_STATE_URI",
        "broker_url": "TECL_BROKER_URL",
        "data_url": "TECL_DATA_URL",
        "data_feed": "TECL_DATA_FEED",
        "live_confirm": "TECL_LIVE_CONFIRM",
        "secret_id": "TECL_SECRET_ID",
        "log_dir": "TECL_LOG_DIR",
        "local_dir": "TECL_LOCAL_DIR",
        "alert_file": "TECL_ALERT_FILE",
        "alert_webhook_url": "TECL_ALERT_WEBHOOK_URL",
        "alert_apprise_url": "TECL_APPRISE_URL",
        "alpaca_api_key": "ALPACA_API_KEY",
        "alpaca_secret_key": "ALPACA_SECRET_KEY",
        "secrets_endpoint_url": "TECL_SECRETS_ENDPOINT_URL",
    }
)
# The region of the Secrets Manager secret: the first of these that is set.
REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")
# Environment variables whose values are secrets wherever they appear. The webhook URL is
# one: a Slack incoming-webhook URL is a bearer credential for the channel; so are apprise
# URLs, which carry bot tokens, webhook secrets and mail passwords.
SECRET_ENV_NAMES = frozenset(
    {
        "ALPACA_API_KEY",
        "ALPACA_SECRET_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "TECL_ALERT_WEBHOOK_URL",
        "TECL_APPRISE_URL",
    }
)
SECRET_ENV_SUFFIXES = ("_SECRET", "_SECRET_KEY", "_TOKEN", "_PASSWORD")
# The folder the built-in demo market keeps its own state in (demo_market).
DEMO_DIR = "demo"
# The second switch for live trading: a sentence nobody sets by accident.
LIVE_CONFIRMATION = "I accept that this trades real money"


def one_line(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """A validation error as one line, each problem under the name a person sets (`names`
    maps a field to its variable)."""
    problems = []
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        field = str(err["loc"][0]) if err["loc"] else ""
        name = (names or {}).get(field, field)
        problems.append(f"{name}: {message}" if name else message)
    return "; ".join(problems)


def validate_state_uri(value: str) -> str:
    """An absolute `file://` URI or `s3://BUCKET/PREFIX`: where the journal can live. The one
    check of its shape, for the settings and for every journal opened."""
    parsed = urlsplit(value)
    if "@" in parsed.netloc:
        # Never echo it: a user-info part may carry a secret.
        raise ValueError("must not contain a user name or password")
    if parsed.query or parsed.fragment:
        # Not echoed either: a query is where a presigned URL keeps its signature.
        raise ValueError("must not have a query or fragment")
    if parsed.scheme == "s3" and parsed.netloc:
        return value
    if (
        parsed.scheme != "file"
        or parsed.netloc.lower() not in ("", "localhost")
        or not parsed.path.startswith("/")
    ):
        raise ValueError(f"{value!r} is neither an absolute file:///DIR URI nor s3://BUCKET/PREFIX")
    return value


def demo_market(environ: Mapping[str, str]) -> bool:
    """Whether `environ` runs the built-in demo market: demo mode (the default) without a
    data folder. Its account, journal, logs and Dagster instance default to `demo` folders
    of their own, so that no run on CSV or real data ever starts from the demo's positions,
    nor shows the demo's sessions beside its own."""
    mode = environ.get(ENV_KEYS["mode"], "").strip() or Mode.DEMO.value
    return mode == Mode.DEMO.value and not environ.get(ENV_KEYS["data_dir"], "").strip()


def live_environment() -> Mapping[str, str]:
    """The process environment as it is at each read, for the one reader that must see a
    value change under it: credentials re-read on refresh, so a key rotated while a run
    waited is picked up (B4, X6)."""
    return os.environ


def local_state_dir(state_uri: str) -> Path | None:
    """The directory a `file://` state URI names, percent-decoded (`%20` is a space), or
    None for `s3://`. The one reading of the URI: the journal, the session locks, the spool
    and the demo account must all land under the same folder (`Path.as_uri()` encodes a
    space, so even the default URI of a folder with a space in its name has one)."""
    parts = urlsplit(state_uri)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode = Mode.DEMO
    data_dir: Path | None = None
    state_uri: str
    broker_url: str | None = None
    data_url: str | None = None
    data_feed: DataFeed = DataFeed.IEX
    live_confirm: str | None = None
    # Alpaca keys from AWS Secrets Manager instead of ALPACA_API_KEY / ALPACA_SECRET_KEY.
    secret_id: str | None = None
    log_dir: Path | None = None
    local_dir: Path | None = None
    # The alert file; without it, <logs_dir>/alerts.jsonl.
    alert_file: Path | None = None
    alert_webhook_url: SecretStr | None = None
    # Apprise URL(s) of the optional apprise alert sink, https forms only (checked when the
    # alert resource is built: observability/apprise_sink.py).
    alert_apprise_url: SecretStr | None = None
    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    aws_region: str | None = None
    # Which of REGION_VARS set `aws_region`: a region error names the variable to fix.
    aws_region_var: str | None = None
    secrets_endpoint_url: str | None = None
    # Every secret-looking variable's value, for the redactor (S2): the names above and
    # any ending in SECRET_ENV_SUFFIXES.
    secret_values: tuple[SecretStr, ...] = ()

    @field_validator("broker_url", "data_url")
    @classmethod
    def _safe_url(cls, value: str | None) -> str | None:
        return None if value is None else validate_endpoint(value, "endpoint")

    @field_validator("data_dir")
    @classmethod
    def _data_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory of <SYMBOL>.csv files")
        return value

    @field_validator("state_uri")
    @classmethod
    def _state_uri_is_supported(cls, value: str) -> str:
        return validate_state_uri(value)

    @property
    def machine_dir(self) -> Path:
        """This machine's own state (session locks, write spool, demo account): TECL_LOCAL_DIR,
        else the state directory itself for file:// state, else ./.tecl/local."""
        if self.local_dir is not None:
            return self.local_dir
        return local_state_dir(self.state_uri) or Path.cwd() / ".tecl" / "local"

    @property
    def logs_dir(self) -> Path:
        """Local logs and the alert file; beside the machine's state when none is configured."""
        return self.log_dir or self.machine_dir.parent / "logs"

    @property
    def has_alpaca_keys(self) -> bool:
        return self.alpaca_api_key is not None

    @classmethod
    def read(cls) -> "Settings":
        """This process's settings: the environment, relative to the working directory."""
        return cls.from_env(os.environ, cwd=Path.cwd())

    @classmethod
    def read_alerting(cls) -> "Settings":
        """Only the alert sinks and the secrets to redact, every other value at its default:
        what a process still needs to report that the rest of its settings are wrong."""
        alerting = {
            ENV_KEYS[field] for field in ("alert_file", "alert_webhook_url", "alert_apprise_url")
        }
        others = set(ENV_KEYS.values()) - alerting - SECRET_ENV_NAMES
        return cls.from_env(
            {k: v for k, v in os.environ.items() if k not in others}, cwd=Path.cwd()
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, cwd: Path) -> "Settings":
        """Read the variables of ENV_KEYS; unset or empty means the embedded default."""
        values: dict[str, object] = {
            field: environ[key] for field, key in ENV_KEYS.items() if environ.get(key, "").strip()
        }
        root = cwd / ".tecl" / DEMO_DIR if demo_market(environ) else cwd / ".tecl"
        values.setdefault("state_uri", (root / "state").resolve().as_uri())
        values.setdefault("log_dir", str((root / "logs").resolve()))
        region = next((var for var in REGION_VARS if environ.get(var, "").strip()), None)
        if region is not None:
            values["aws_region"] = environ[region].strip()
            values["aws_region_var"] = region
        values["secret_values"] = tuple(
            value
            for name, value in environ.items()
            if value and (name in SECRET_ENV_NAMES or name.upper().endswith(SECRET_ENV_SUFFIXES))
        )
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(f"invalid configuration: {one_line(exc, ENV_KEYS)}") from None
        if settings.mode is Mode.LIVE and settings.live_confirm != LIVE_CONFIRMATION:
            raise ConfigError(
                "TECL_LIVE_CONFIRM: live trading needs a second switch; set it to "
                f"{LIVE_CONFIRMATION!r} to trade real money"
            )
        return settings
