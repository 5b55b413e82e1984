"""SecretsManagerCredentials edge cases with a stub client, where moto cannot set the
scene: rotation dates, clocks, callbacks, concurrency, non-AWS failures (S1, A6, C5, C6)."""

import json
import logging
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from tecl_pipeline.adapters.aws.secrets_errors import (
    SecretAccessError,
    SecretConfigError,
    SecretMalformedError,
    SecretUnavailableError,
)
from tecl_pipeline.adapters.aws.secrets_manager import (
    SecretsManagerCredentials,
    parse_secret_string,
)
from tecl_pipeline.common.events import Event, EventKind
from tecl_pipeline.trading.credentials import Credentials

SEED = 7_345_221
KEY = "PKUNITTESTKEY00001"
SECRET = "unit-secret-VALUE-c0ffee-never-shown"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ID = "tecl/alpaca/unit"


def response(key: str = KEY, secret: str = SECRET) -> dict[str, Any]:
    return {"Name": ID, "SecretString": json.dumps({"key_id": key, "secret_key": secret})}


class StubClient:
    """Answers GetSecretValue from a script (the last entry repeats) and DescribeSecret
    from a fixed dict; exceptions in the script are raised."""

    def __init__(self, script: list[Any] | None = None, described: Any = None) -> None:
        self.script = list(script or [response()])
        self.described = described if described is not None else {"CreatedDate": NOW}
        self.calls: Counter[str] = Counter()

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        self.calls["GetSecretValue"] += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return item

    def describe_secret(self, SecretId: str) -> dict[str, Any]:
        self.calls["DescribeSecret"] += 1
        if isinstance(self.described, BaseException):
            raise self.described
        return self.described


def client_error(code: str, status: int, operation: str = "GetSecretValue") -> ClientError:
    body = {
        "Error": {"Code": code, "Message": "stub"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(body, operation)


def provider(client: StubClient, now: list[datetime] | None = None, **options: Any):
    print(f"secrets provider unit seed={SEED}")
    clock_now = now if now is not None else [NOW]
    options.setdefault("sleep", lambda _: None)
    return SecretsManagerCredentials(
        ID, client, clock=lambda: clock_now[0], rng=random.Random(SEED), **options
    )


@pytest.mark.parametrize(
    ("described", "expected_age"),
    [
        ({"CreatedDate": NOW - timedelta(days=400), "LastRotatedDate": NOW - timedelta(days=5)}, 5),
        ({"CreatedDate": NOW - timedelta(days=120)}, 120),
        # botocore gives aware datetimes; a naive one is read as UTC, not local time.
        ({"CreatedDate": (NOW - timedelta(days=2)).replace(tzinfo=None)}, 2),
        # A rotation date in the future (clock skew) is age zero, not negative.
        ({"CreatedDate": NOW + timedelta(hours=2)}, 0),
    ],
)
def test_age_prefers_last_rotated_date_over_created_date(described, expected_age):
    """S1: LastRotatedDate when the secret was ever rotated, CreatedDate otherwise."""
    events: list[tuple[str, str]] = []
    age = provider(
        StubClient(described=described), on_event=lambda e: events.append((e.kind, e.message))
    )
    assert age.check_age() == timedelta(days=expected_age)
    assert [name for name, _ in events] == (
        [EventKind.SECRET_ROTATION_OVERDUE] if expected_age > 90 else []
    )


def test_age_unknown_without_dates_and_max_age_configurable():
    """S1: no dates -> None with an event; max_age is the configured limit."""
    events: list[tuple[str, str]] = []
    on_event = lambda event: events.append((event.kind, event.message))  # noqa: E731
    assert provider(StubClient(described={"Name": ID}), on_event=on_event).check_age() is None
    stale = StubClient(described={"CreatedDate": NOW - timedelta(days=31)})
    age = provider(stale, on_event=on_event, max_age=timedelta(days=30)).check_age()
    assert age == timedelta(days=31)
    assert [name for name, _ in events] == [
        EventKind.SECRET_AGE_UNKNOWN,
        EventKind.SECRET_ROTATION_OVERDUE,
    ]
    assert "31 days" in events[1][1] and "30 days" in events[1][1]


def test_a_failing_alert_callback_never_breaks_the_provider(caplog):
    """C5, S7: the event is logged even when the callback raises; the caller still gets
    the credentials (or the error that caused the event)."""

    def broken(event: Event) -> None:
        raise RuntimeError("alert sink down")

    old = StubClient(described={"CreatedDate": NOW - timedelta(days=365)})
    assert provider(old, on_event=broken).check_age() == timedelta(days=365)
    denied = StubClient([client_error("AccessDeniedException", 400)])
    with pytest.raises(SecretAccessError):
        provider(denied, on_event=broken).get()
    assert caplog.text.count("the on_event callback failed") == 2
    assert (
        EventKind.SECRET_ROTATION_OVERDUE in caplog.text
        and EventKind.SECRET_ACCESS_FAILURE in caplog.text
    )


def test_the_clock_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        provider(StubClient(), now=[NOW.replace(tzinfo=None)]).get()


@pytest.mark.parametrize(
    ("secret_id", "options", "message"),
    [
        ("", {}, "non-empty"),
        (" tecl/alpaca", {}, "whitespace"),
        (ID, {"ttl": timedelta(seconds=-1)}, "ttl"),
        (ID, {"grace": timedelta(seconds=-1)}, "grace"),
    ],
)
def test_bad_construction_arguments_are_refused(secret_id, options, message):
    """C4: a bad secret id or negative durations fail at construction."""
    with pytest.raises(SecretConfigError, match=message):
        SecretsManagerCredentials(secret_id, StubClient(), **options)


def test_a_clock_that_went_backwards_rereads_the_secret():
    """A6: a cache whose age is negative is not trusted as fresh."""
    client = StubClient()
    now = [NOW]
    credentials = provider(client, now=now)
    credentials.get()
    now[0] = NOW - timedelta(minutes=1)
    credentials.get()
    assert client.calls["GetSecretValue"] == 2


def test_zero_ttl_never_serves_from_the_cache():
    client = StubClient()
    credentials = provider(client, ttl=timedelta(0))
    credentials.get()
    credentials.get()
    assert client.calls["GetSecretValue"] == 2


def test_a_bug_in_the_client_propagates_unchanged_and_is_not_retried():
    """C6: only AWS's retryable answers are retried; anything else is not 'unavailable'."""
    client = StubClient([KeyError("bug")])
    with pytest.raises(KeyError):
        provider(client).get()
    assert client.calls["GetSecretValue"] == 1


def test_missing_aws_credentials_are_an_access_error_not_retried():
    """A4, S4: no AWS credentials for the pipeline is configuration: stop, say so."""
    client = StubClient([NoCredentialsError()])
    with pytest.raises(SecretAccessError, match="NoCredentialsError") as caught:
        provider(client).get()
    assert caught.value.code == "NoCredentialsError"
    assert client.calls["GetSecretValue"] == 1


@pytest.mark.parametrize(("code", "status"), [("503", 503), ("SlowDown", 429), ("Odd", 502)])
def test_any_5xx_or_429_is_retried_whatever_its_code(code, status):
    """A6, B8: moto and proxies answer some outages with a bare status (code '503')."""
    waits: list[float] = []
    client = StubClient([client_error(code, status), response()])
    assert provider(client, sleep=waits.append).get() == Credentials(KEY, SECRET)
    assert client.calls["GetSecretValue"] == 2 and len(waits) == 1


def test_unavailable_error_names_the_code_of_the_last_failure():
    client = StubClient([client_error("ThrottlingException", 400)])
    with pytest.raises(SecretUnavailableError) as caught:
        provider(client).get()
    assert caught.value.code == "ThrottlingException"
    assert caught.value.secret_id == ID


def test_concurrent_callers_share_one_read():
    """A6: threads asking at once do not stampede Secrets Manager (one read, one pair)."""

    class SlowClient(StubClient):
        def get_secret_value(self, SecretId: str) -> dict[str, Any]:
            time.sleep(0.05)
            return super().get_secret_value(SecretId)

    client = SlowClient()
    credentials = provider(client)
    results: list[Credentials] = []
    threads = [threading.Thread(target=lambda: results.append(credentials.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == [Credentials(KEY, SECRET)] * 8
    assert client.calls["GetSecretValue"] == 1


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"ALPACA_API_KEY": KEY, "key_id": KEY, "secret_key": SECRET}),
        json.dumps({"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET, "extra": 1}),
    ],
)
def test_parse_accepts_agreeing_duplicates_and_extra_fields(text):
    assert parse_secret_string(ID, text) == Credentials(KEY, SECRET)


def test_parse_refuses_deeply_nested_json_without_crashing():
    with pytest.raises(SecretMalformedError, match="not valid JSON"):
        parse_secret_string(ID, "[" * 100_000 + "]" * 100_000)


def test_botocore_response_bodies_with_a_secret_are_redacted(caplog):
    """S2: the filter on botocore's parser logger (installed by every provider)."""
    provider(StubClient())
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"SecretString": SECRET}).encode()
    logging.getLogger("botocore.parsers").debug("Response body:\n%r", body)
    logging.getLogger("botocore.parsers").debug("Response body:\n%r", b'{"Name": "x"}')
    assert SECRET not in caplog.text
    assert "<redacted" in caplog.text and '{"Name": "x"}' in caplog.text
