"""Alpaca API credentials and where they come from (B4, X6, S2).

A `Credentials` value never shows its secret: not in repr/str, so not in logs, run events,
tracebacks with locals, or error messages that format it. Providers hand out a current
pair and fetch a fresh one on `refresh=True`, which the adapters ask for once after the
broker refuses the pair they hold (a rotated key, X6).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from tecl_pipeline.trading.errors import AuthError


class MissingCredentialsError(AuthError):
    """No usable credentials to send: the source lacks them (names the source, never a value)."""


def _mask(key_id: str) -> str:
    # A key id is not the secret, but the first few characters are enough to tell keys
    # apart in a log (paper keys start with "PK"), and showing less leaks less.
    return key_id[:4] + "..." if len(key_id) > 4 else "..."


@dataclass(frozen=True, repr=False)
class Credentials:
    key_id: str
    secret_key: str

    def __post_init__(self) -> None:
        # Only names in these messages: a value passed by mistake must not leak through them.
        for name in ("key_id", "secret_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Credentials.{name} must be a non-empty string")
            if value != value.strip():
                raise ValueError(f"Credentials.{name} has leading or trailing whitespace")

    def __repr__(self) -> str:
        return f"Credentials(key_id={_mask(self.key_id)!r}, secret_key='***')"

    __str__ = __repr__


class CredentialsProvider(Protocol):
    def get(self, *, refresh: bool = False) -> Credentials:
        """The current credentials; `refresh=True` re-reads them from their source."""
        ...


class StaticCredentials:
    """A fixed pair (tests, the local simulator). Refreshing returns the same pair."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def get(self, *, refresh: bool = False) -> Credentials:
        return self._credentials

    def __repr__(self) -> str:
        return f"StaticCredentials({self._credentials!r})"


class EnvCredentials:
    """Credentials from environment variables, read on first use and again on refresh: a
    live mapping (`config.settings.live_environment()`) picks up a rotated pair."""

    def __init__(
        self,
        environ: Mapping[str, str],
        key_var: str = "ALPACA_API_KEY",
        secret_var: str = "ALPACA_SECRET_KEY",
    ) -> None:
        self._environ = environ
        self._key_var = key_var
        self._secret_var = secret_var
        self._cached: Credentials | None = None

    def _read(self, var: str) -> str:
        # Secrets mounted from files often end with a newline; a stray one would be sent
        # in the header and refused as a wrong key, which is hard to diagnose.
        value = (self._environ.get(var) or "").strip()
        if not value:
            raise MissingCredentialsError(
                f"environment variable {var} is not set or is empty; it must hold the "
                "Alpaca API credentials"
            )
        return value

    def get(self, *, refresh: bool = False) -> Credentials:
        if self._cached is None or refresh:
            self._cached = Credentials(self._read(self._key_var), self._read(self._secret_var))
        return self._cached

    def __repr__(self) -> str:
        return f"EnvCredentials(key_var={self._key_var!r}, secret_var={self._secret_var!r})"
