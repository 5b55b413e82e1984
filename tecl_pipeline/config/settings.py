"""Deployment settings read from the environment, validated before anything runs (C4).

Only where the pipeline runs and what it talks to lives here. Trading policy (cash reserve,
minimum trade, risk limits) is Dagster resource config, visible and editable in the UI.
Secrets never pass through here: they reach resources through Dagster `EnvVar`.
"""

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from tecl_pipeline.common.endpoints import validate_endpoint


class Mode(StrEnum):
    DEMO = "demo"
    PAPER = "paper"
    LIVE = "live"


class ConfigError(ValueError):
    """A setting that is missing or malformed; raised before any order, naming the key."""


ENV_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "mode": "TECL_MODE",
        "data_dir": "TECL_DATA_DIR",
        "state_uri": "TECL_STATE_URI",
        "broker_url": "TECL_BROKER_URL",
        "data_url": "TECL_DATA_URL",
        "live_confirm": "TECL_LIVE_CONFIRM",
        "secret_id": "TECL_SECRET_ID",
        "log_dir": "TECL_LOG_DIR",
        "local_dir": "TECL_LOCAL_DIR",
    }
)
# The second switch for live trading: a sentence nobody sets by accident.
LIVE_CONFIRMATION = "I accept that this trades real money"


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
    live_confirm: str | None = None
    # Alpaca keys from AWS Secrets Manager instead of ALPACA_API_KEY / ALPACA_SECRET_KEY.
    secret_id: str | None = None
    log_dir: Path | None = None
    local_dir: Path | None = None

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
        parsed = urlsplit(value)
        if parsed.scheme == "s3" and parsed.netloc:
            return value
        if parsed.scheme != "file" or not parsed.path.startswith("/"):
            raise ValueError(f"{value!r} is neither an absolute file:// URI nor s3://BUCKET/PREFIX")
        return value

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, cwd: Path) -> "Settings":
        """Read TECL_* variables; unset or empty means the embedded default."""
        values: dict[str, str] = {
            field: environ[key] for field, key in ENV_KEYS.items() if environ.get(key, "").strip()
        }
        values.setdefault("state_uri", (cwd / ".tecl" / "state").resolve().as_uri())
        values.setdefault("log_dir", str((cwd / ".tecl" / "logs").resolve()))
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_KEYS.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"invalid configuration: {problems}") from None
        if settings.mode is Mode.LIVE and settings.live_confirm != LIVE_CONFIRMATION:
            raise ConfigError(
                "TECL_LIVE_CONFIRM: live trading needs a second switch; set it to "
                f"{LIVE_CONFIRMATION!r} to trade real money"
            )
        return settings
