"""Alpaca credentials from AWS Secrets Manager (A6, S1, S2, S4, S7, X6, B4).

`SecretsManagerCredentials` implements `CredentialsProvider`:

- the pair is cached for `ttl`; `get(refresh=True)` re-reads it at once (the broker adapters
  ask for that after a 401/403, so a rotated key is picked up, X6/B4);
- transient failures (throttling, 5xx, connection errors) are retried with bounded,
  jittered backoff under the project's one retry policy (`call_with_retry`, C6);
- when they outlast the retries, a cached pair not older than `grace` (default 2 x ttl)
  is used, with a `secret_stale_cache` event; with no usable cache the provider raises
  `SecretUnavailableError`, a `RefusedToTrade`: the run stops before any order (A6);
- definite refusals (not found, access denied, KMS decryption failure, invalid request)
  are not retried and raise distinct errors naming the secret and the AWS error code,
  each with a `secret_access_failure` event for the alerting path (S4, S7);
- `check_age()` reads the secret's last rotation date and warns through a
  `secret_rotation_overdue` event when it is older than `max_age` (S1).

No secret value is logged, raised or shown in a repr (S2). botocore itself logs every
response body at DEBUG level, which for GetSecretValue is the secret; the provider puts a
filter on botocore's parser logger that redacts those bodies.

The boto3 client should not retry by itself (`Config(retries={"total_max_attempts": 1})`,
as `credentials_from_env` builds it): retries on top of botocore's own would multiply.
"""

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tecl_pipeline.adapters.aws.secrets_errors import (
    SecretAccessDeniedError,
    SecretAccessError,
    SecretConfigError,
    SecretDecryptionError,
    SecretInvalidRequestError,
    SecretMalformedError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from tecl_pipeline.adapters.aws.transient import transient_answer
from tecl_pipeline.common.events import Event, EventKind, EventSink, Severity, emit
from tecl_pipeline.common.retry import RetryableError, RetryPolicy, call_with_retry
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline.trading.credentials import Credentials

log = logging.getLogger(__name__)

_WARNINGS = frozenset(
    {EventKind.SECRET_STALE_CACHE, EventKind.SECRET_ROTATION_OVERDUE, EventKind.SECRET_AGE_UNKNOWN}
)

DEFAULT_TTL = timedelta(minutes=15)
DEFAULT_MAX_AGE = timedelta(days=90)
DEFAULT_RETRY = RetryPolicy(max_attempts=4, base_delay=0.5, deadline=20.0)

# Accepted names for each half of the pair, preferred first.
KEY_FIELDS = ("ALPACA_API_KEY", "key_id")
SECRET_FIELDS = ("ALPACA_SECRET_KEY", "secret_key")
_EXPECTED = (
    f"a JSON object with {KEY_FIELDS[0]} and {SECRET_FIELDS[0]} "
    f"(or {KEY_FIELDS[1]} and {SECRET_FIELDS[1]})"
)

_METHODS = (("GetSecretValue", "get_secret_value"), ("DescribeSecret", "describe_secret"))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _TransientSecretError(RetryableError):
    """A failure worth retrying. Private: it only carries the failure through
    `call_with_retry` and is always turned into a stale-cache fallback or a
    `SecretUnavailableError` before leaving the provider (a broker adapter's retry around
    a credentials fetch would otherwise repeat the whole fetch and its retries)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, repr=False)
class _Cached:
    credentials: Credentials
    fetched_at: datetime


@dataclass(frozen=True)
class _Problem:
    field: str | None
    message: str


class _RedactSecretResponses(logging.Filter):
    """botocore logs each response body at DEBUG ('Response body: ...'); a GetSecretValue
    body is the secret itself. Keep the record, drop the body (S2)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if any(_carries_secret(arg) for arg in args) or _carries_secret(record.msg):
            record.msg = "Response body: <redacted: a Secrets Manager secret value>"
            record.args = ()
        return True


def _carries_secret(value: object) -> bool:
    if isinstance(value, bytes | bytearray):
        return b'"SecretString"' in value or b'"SecretBinary"' in value
    if isinstance(value, str):
        return '"SecretString"' in value or '"SecretBinary"' in value
    return False


def install_botocore_log_redaction() -> None:
    """Idempotent: one redacting filter on botocore's parser logger (S2)."""
    logger = logging.getLogger("botocore.parsers")
    if not any(isinstance(existing, _RedactSecretResponses) for existing in logger.filters):
        logger.addFilter(_RedactSecretResponses())


class SecretsManagerCredentials:
    """The Alpaca pair held in one Secrets Manager secret (see the module docstring).

    `client` is a boto3 `secretsmanager` client (or anything with its `get_secret_value`
    and `describe_secret`); it is first touched by `get()` or `check_age()`, never here.
    `clock` must return timezone-aware datetimes; it times the cache and the secret's age.
    `grace` is how old a cached pair may be and still be used while Secrets Manager is
    unavailable (default 2 x ttl). `on_event` receives an `Event` of a `SECRET_*` kind;
    an exception inside it is logged and otherwise ignored (C5).
    """

    def __init__(
        self,
        secret_id: str,
        client: object,
        *,
        ttl: timedelta = DEFAULT_TTL,
        max_age: timedelta = DEFAULT_MAX_AGE,
        grace: timedelta | None = None,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy = DEFAULT_RETRY,
        rng: random.Random | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        if (
            not isinstance(secret_id, str)
            or not secret_id.strip()
            or secret_id != secret_id.strip()
        ):
            raise SecretConfigError(
                "the Secrets Manager secret id must be a non-empty string without "
                "surrounding whitespace",
                secret_id=str(secret_id),
            )
        grace = 2 * ttl if grace is None else grace
        for name, value in (("ttl", ttl), ("max_age", max_age), ("grace", grace)):
            if value < timedelta(0):
                raise SecretConfigError(f"{name} must not be negative", secret_id=secret_id)
        self._secret_id = secret_id
        self._client = client
        self._ttl = ttl
        self._max_age = max_age
        self._grace = grace
        self._clock = clock
        self._sleep = sleep
        self._retry = retry
        self._rng = rng if rng is not None else random.Random()
        self._on_event = on_event
        self._lock = threading.Lock()
        self._cache: _Cached | None = None
        install_botocore_log_redaction()

    @property
    def secret_id(self) -> str:
        return self._secret_id

    def __repr__(self) -> str:
        cached = "no" if self._cache is None else "yes"
        return (
            f"SecretsManagerCredentials(secret_id={self._secret_id!r}, ttl={self._ttl}, "
            f"cached={cached})"
        )

    # ------------------------------------------------------------------ credentials

    def close(self) -> None:
        """Close the client's connections (a client without `close` has none to close)."""
        close = getattr(self._client, "close", None)
        if callable(close):
            close()

    def get(self, *, refresh: bool = False) -> Credentials:
        """The cached pair while younger than ttl; otherwise (or with `refresh=True`, e.g.
        after the broker refused the cached pair) a fresh read from Secrets Manager."""
        with self._lock:
            now = self._now()
            cached = self._cache
            if cached is not None and not refresh and self._fresh(cached, now, self._ttl):
                return cached.credentials
            try:
                credentials = self._fetch()
            except _TransientSecretError as error:
                return self._fall_back(error, cached, now, refresh=refresh)
            except SecretAccessError as error:
                self._emit(EventKind.SECRET_ACCESS_FAILURE, str(error))
                raise
            except SecretMalformedError as error:
                self._emit(EventKind.SECRET_MALFORMED, str(error))
                raise
            self._cache = _Cached(credentials, now)
            return credentials

    def _fetch(self) -> Credentials:
        # No local here holds the response: a traceback rendered with its locals (as some
        # error reporters do) must not show the secret.
        return _credentials_from(self._secret_id, self._call("GetSecretValue"))

    def _fall_back(
        self, error: _TransientSecretError, cached: _Cached | None, now: datetime, *, refresh: bool
    ) -> Credentials:
        cause = _describe(error)
        if cached is not None and not refresh and self._usable_when_stale(cached, now, self._grace):
            self._emit(
                EventKind.SECRET_STALE_CACHE,
                f"Secrets Manager is unavailable for secret {self._secret_id!r} ({cause}); "
                f"using the cached credentials read {_duration(now - cached.fetched_at)} ago "
                f"(ttl {_duration(self._ttl)}, grace {_duration(self._grace)})",
            )
            return cached.credentials
        if refresh and cached is not None:
            why = (
                "a refresh was asked for (the cached credentials were refused), so the "
                "cache is not used"
            )
        elif cached is not None:
            why = (
                f"the cached credentials are {_duration(now - cached.fetched_at)} old, past "
                f"the {_duration(self._grace)} grace period"
            )
        else:
            why = "no cached credentials to fall back on"
        unavailable = SecretUnavailableError(
            f"Secrets Manager is unavailable for secret {self._secret_id!r} ({cause}); "
            f"{why}; stopping before trading",
            secret_id=self._secret_id,
            code=error.code,
        )
        self._emit(EventKind.SECRET_UNAVAILABLE, str(unavailable))
        raise unavailable from error

    @staticmethod
    def _fresh(cached: _Cached, now: datetime, ttl: timedelta) -> bool:
        # A clock that went backwards makes the age negative: trust nothing then.
        return timedelta(0) <= now - cached.fetched_at < ttl

    @staticmethod
    def _usable_when_stale(cached: _Cached, now: datetime, grace: timedelta) -> bool:
        return timedelta(0) <= now - cached.fetched_at <= grace

    # ------------------------------------------------------------------ rotation age

    def check_age(self) -> timedelta | None:
        """How long since the secret was last rotated (DescribeSecret's LastRotatedDate, or
        its CreatedDate when never rotated), warning with `secret_rotation_overdue` when
        that is more than `max_age` (S1). Never raises for AWS failures: returns None
        (with an event) when the age cannot be read; it is not a reason to stop trading."""
        try:
            described = self._call("DescribeSecret")
        except _TransientSecretError as error:
            self._emit(
                EventKind.SECRET_AGE_UNKNOWN,
                f"could not check the rotation age of secret {self._secret_id!r}: "
                f"{_describe(error)}",
            )
            return None
        except SecretAccessError as error:
            self._emit(EventKind.SECRET_ACCESS_FAILURE, f"{error} (while checking its age)")
            return None
        source = "LastRotatedDate" if described.get("LastRotatedDate") else "CreatedDate"
        stamp = described.get(source)
        if not isinstance(stamp, datetime):
            self._emit(
                EventKind.SECRET_AGE_UNKNOWN,
                f"secret {self._secret_id!r} has neither LastRotatedDate nor CreatedDate; "
                "its rotation age is unknown",
            )
            return None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        age = max(self._now() - stamp, timedelta(0))
        if age > self._max_age:
            self._emit(
                EventKind.SECRET_ROTATION_OVERDUE,
                f"secret {self._secret_id!r} was last rotated {age.days} days ago "
                f"({source} {stamp.astimezone(UTC):%Y-%m-%d}), more than the "
                f"{self._max_age.days} days allowed; rotate the Alpaca key",
            )
        return age

    # ------------------------------------------------------------------ AWS calls

    def _call(self, operation: str) -> Mapping[str, Any]:
        method_name = dict(_METHODS)[operation]

        def attempt() -> Mapping[str, Any]:
            try:
                method = getattr(self._client, method_name)
                return method(SecretId=self._secret_id)
            except Exception as exc:
                translated = self._translate(exc, operation)
                if translated is None:
                    raise
                raise translated from exc

        def on_retry(attempt_no: int, error: BaseException, wait: float) -> None:
            log.warning(
                "Secrets Manager %s for secret %r failed (attempt %d: %s); retrying in %.2f s",
                operation,
                self._secret_id,
                attempt_no,
                error,
                wait,
            )

        return call_with_retry(
            attempt, self._retry, sleep=self._sleep, rng=self._rng, on_retry=on_retry
        )

    def _translate(self, exc: Exception, operation: str) -> Exception | None:
        """A botocore failure as a retryable or a definite error; None for anything else
        (a bug, which propagates unchanged)."""
        from botocore import exceptions as boto_errors  # loaded with the client anyway

        if isinstance(exc, boto_errors.ClientError):
            response = exc.response if isinstance(exc.response, Mapping) else {}
            error = response.get("Error") or {}
            code = str(error.get("Code") or "Unknown")
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if transient_answer(code, status):
                return _TransientSecretError(
                    code, f"{operation} failed with {code} (HTTP {status})"
                )
            return self._refusal(
                operation, code, _short(self._scrub(str(error.get("Message") or "")))
            )
        if isinstance(exc, boto_errors.ConnectionError | boto_errors.HTTPClientError):
            name = type(exc).__name__
            return _TransientSecretError(
                name, f"{operation} failed: {name}: {_short(self._scrub(str(exc)))}"
            )
        if isinstance(exc, boto_errors.BotoCoreError):
            # No AWS credentials, no region, a bad parameter: configuration, not weather.
            name = type(exc).__name__
            return SecretAccessError(
                f"cannot call Secrets Manager {operation} for secret {self._secret_id!r}: "
                f"{name}: {_short(self._scrub(str(exc)))}; check the pipeline's AWS "
                "credentials and region",
                secret_id=self._secret_id,
                code=name,
                operation=operation,
            )
        return None

    def _refusal(self, operation: str, code: str, message: str) -> SecretAccessError:
        action = f"secretsmanager:{operation}"
        kind: type[SecretAccessError]
        if code == "ResourceNotFoundException":
            kind, what, hint = (
                SecretNotFoundError,
                "not found",
                "check the secret id (TECL_SECRET_ID), the AWS account and the region",
            )
        elif code == "AccessDeniedException":
            kind, what, hint = (
                SecretAccessDeniedError,
                "access denied",
                f"the pipeline's IAM identity needs {action} on this secret",
            )
        elif code == "DecryptionFailure":
            kind, what, hint = (
                SecretDecryptionError,
                "could not be decrypted",
                "the pipeline's IAM identity needs kms:Decrypt on the secret's KMS key, and "
                "the key must be enabled",
            )
        elif code == "InvalidRequestException":
            kind, what, hint = (
                SecretInvalidRequestError,
                "request refused",
                "the secret may be marked for deletion (restore it) or not usable in its "
                "current state",
            )
        else:
            kind, what, hint = SecretAccessError, "request refused", f"check {action} access"
        detail = f": {message}" if message else ""
        return kind(
            f"Secrets Manager secret {self._secret_id!r}: {what} ({code} from {operation})"
            f"{detail}; {hint}",
            secret_id=self._secret_id,
            code=code,
            operation=operation,
        )

    # ------------------------------------------------------------------ helpers

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the clock of SecretsManagerCredentials must be timezone-aware")
        return now

    def _scrub(self, text: str) -> str:
        # Before `_short`: a secret cut in half by the clip is no longer recognisable.
        cached = self._cache
        if cached is None:
            return text
        credentials = cached.credentials
        return Redactor.for_credentials(credentials.key_id, credentials.secret_key).redact(text)

    def _emit(self, kind: EventKind, message: str) -> None:
        # What stops the run (no credentials, or the secret refused or unreadable) is
        # critical; a stale cache or an overdue or unknown rotation age is a warning.
        severity = Severity.WARNING if kind in _WARNINGS else Severity.CRITICAL
        emit(self._on_event, Event(kind, severity, "secrets manager", message), log)


def _credentials_from(secret_id: str, response: Mapping[str, Any]) -> Credentials:
    outcome = _read_pair(response)
    del response  # see SecretsManagerCredentials._fetch
    if isinstance(outcome, _Problem):
        raise SecretMalformedError(
            f"Secrets Manager secret {secret_id!r} {outcome.message}; expected {_EXPECTED}",
            secret_id=secret_id,
            field=outcome.field,
        )
    return outcome


def parse_secret_string(secret_id: str, secret_string: str) -> Credentials:
    """The pair in a SecretString, or `SecretMalformedError` naming the bad field (never a
    value). Public for tests and tools that hold the text already."""
    return _credentials_from(secret_id, {"SecretString": secret_string})


def _read_pair(response: Mapping[str, Any]) -> Credentials | _Problem:
    text = response.get("SecretString")
    if text is None:
        if response.get("SecretBinary") is not None:
            return _Problem(None, "holds a binary secret (SecretBinary), not a SecretString")
        return _Problem(None, "has no SecretString")
    if not isinstance(text, str):
        return _Problem(None, "has a SecretString that is not text")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # Only the position: the exception itself carries the whole document (exc.doc).
        return _Problem(
            None, f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        )
    except (ValueError, RecursionError):
        return _Problem(None, "is not valid JSON")
    if not isinstance(data, dict):
        return _Problem(None, f"is a JSON {_json_type(data)}, not an object")
    key_id = _field(data, KEY_FIELDS)
    if isinstance(key_id, _Problem):
        return key_id
    secret_key = _field(data, SECRET_FIELDS)
    if isinstance(secret_key, _Problem):
        return secret_key
    return Credentials(key_id, secret_key)


def _field(data: Mapping[str, object], names: tuple[str, ...]) -> str | _Problem:
    present = [name for name in names if name in data]
    if not present:
        return _Problem(names[0], f"has no {' or '.join(names)} field")
    values = []
    for name in present:
        value = data[name]
        if not isinstance(value, str):
            return _Problem(name, f"field {name} is a JSON {_json_type(value)}, not a string")
        # Like EnvCredentials: a stray newline would be sent and refused as a wrong key.
        value = value.strip()
        if not value:
            return _Problem(name, f"field {name} is empty")
        values.append(value)
    if len(set(values)) > 1:
        return _Problem(names[0], f"fields {' and '.join(present)} disagree; keep only one")
    return values[0]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(message: object, limit: int = 300) -> str:
    text = " ".join(str(message or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: BaseException) -> str:
    notes = "; ".join(getattr(error, "__notes__", ()))
    return f"{error}; {notes}" if notes else str(error)


def _duration(delta: timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    return str(timedelta(seconds=seconds))
