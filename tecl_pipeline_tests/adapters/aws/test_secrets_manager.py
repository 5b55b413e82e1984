"""SecretsManagerCredentials against moto in server mode, with a fault proxy in front of it
for the failures moto cannot produce (A6, S1, S2, S4, S7, X6, B4, C6, R3).

Nothing here can reach real AWS: a module fixture sets dummy AWS credentials and region,
points the AWS config files nowhere, and every client has an explicit loopback endpoint.
Waits go to a fake clock; the jitter is drawn from a seeded `random.Random` whose seed is
printed (R2).
"""

import json
import logging
import random
import socket
import subprocess
import sys
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3.session
import pytest
from alpaca.trading.client import TradingClient
from botocore.config import Config
from moto.server import ThreadedMotoServer

from tecl_pipeline.adapters.alpaca.transport import AlpacaConnection
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
from tecl_pipeline.adapters.aws.secrets_manager import (
    DEFAULT_RETRY,
    SecretsManagerCredentials,
)
from tecl_pipeline.adapters.secrets_provider import credentials_from_env
from tecl_pipeline.common.events import EventKind
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.core.errors import RefusedToTrade
from tecl_pipeline.harness.aws_faults import AwsFaultProxy
from tecl_pipeline.trading.credentials import Credentials, EnvCredentials

REGION = "us-east-1"
TTL = timedelta(minutes=15)
KEY = "PKSMTESTKEY0000001"
SECRET = "sm-secret-VALUE-7f3a9c-never-shown"
ROTATED_KEY = "PKSMROTATEDKEY0002"
ROTATED_SECRET = "sm-rotated-VALUE-b81d2e-never-shown"
VALUES = (KEY, SECRET, ROTATED_KEY, ROTATED_SECRET)
ATTEMPTS = DEFAULT_RETRY.max_attempts


def pair(key: str = KEY, secret: str = SECRET) -> str:
    return json.dumps({"ALPACA_API_KEY": key, "ALPACA_SECRET_KEY": secret})


PAIR = pair()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Dummy AWS settings for the whole module, so nothing can reach or sign for real AWS."""
    nowhere = str(tmp_path_factory.mktemp("aws") / "absent")
    with pytest.MonkeyPatch.context() as mp:
        for var in (
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "TECL_SECRET_ID",
            "TECL_SECRETS_ENDPOINT_URL",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
        ):
            mp.delenv(var, raising=False)
        for var, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": nowhere,
            "AWS_SHARED_CREDENTIALS_FILE": nowhere,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
        }.items():
            mp.setenv(var, value)
        yield


@pytest.fixture(scope="module")
def moto_url(aws_env: None) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def proxy_server(moto_url: str) -> Iterator[AwsFaultProxy]:
    with AwsFaultProxy(moto_url) as proxy:
        yield proxy


@pytest.fixture
def proxy(proxy_server: AwsFaultProxy) -> Iterator[AwsFaultProxy]:
    proxy_server.clear()
    yield proxy_server
    proxy_server.clear()


def make_client(url: str) -> Any:
    """A client like the factory's: explicit endpoint, no retries of botocore's own."""
    return boto3.session.Session().client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=5,
        ),
    )


def count_calls(client: Any) -> Counter[str]:
    """HTTP requests the client sends, by operation (moto server keeps no call counter)."""
    counts: Counter[str] = Counter()

    def on_send(request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        counts[target.rsplit(".", 1)[-1]] += 1

    client.meta.events.register("before-send.secrets-manager", on_send)
    return counts


@pytest.fixture(scope="module")
def admin(moto_url: str) -> Any:
    return make_client(moto_url)


def new_secret(admin: Any, secret_string: str | None = PAIR, **extra: Any) -> str:
    name = f"tecl/alpaca/{uuid.uuid4().hex[:12]}"
    if secret_string is not None:
        extra["SecretString"] = secret_string
    admin.create_secret(Name=name, **extra)
    return name


@pytest.fixture
def secret_id(admin: Any) -> str:
    return new_secret(admin)


class FakeTime:
    """Clock and sleep in one: sleeping advances the clock, and the waits are recorded."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime(datetime.now(UTC))


@pytest.fixture
def events() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def provider_for(
    fake_time: FakeTime, events: list[tuple[str, str]], seed: int
) -> Callable[..., SecretsManagerCredentials]:
    def make(secret_id: str, client: Any, **options: Any) -> SecretsManagerCredentials:
        options.setdefault("ttl", TTL)
        options.setdefault("clock", fake_time.clock)
        options.setdefault("sleep", fake_time.sleep)
        return SecretsManagerCredentials(
            secret_id,
            client,
            rng=random.Random(seed),
            on_event=lambda event: events.append((event.kind, event.message)),
            **options,
        )

    return make


def names(events: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in events]


def expected_waits(count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [DEFAULT_RETRY.backoff(attempt, rng) for attempt in range(1, count + 1)]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def rendered(error: BaseException) -> str:
    """Everything an error reporter could show: the formatted chain, and the local
    variables of every frame it passed through (causes included), except this test
    module's own frames, which hold the values on purpose."""
    texts = list(traceback.format_exception(error))
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename != __file__:
                texts += [f"{name}={value!r}" for name, value in tb.tb_frame.f_locals.items()]
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


# ---------------------------------------------------------------------------- success, cache


def test_reads_the_pair_and_caches_it_for_ttl(admin, secret_id, provider_for, fake_time, events):
    """A6: one GetSecretValue serves every get() within the ttl."""
    client = make_client(admin.meta.endpoint_url)
    calls = count_calls(client)
    provider = provider_for(secret_id, client)
    assert calls["GetSecretValue"] == 0  # nothing at construction
    first = provider.get()
    fake_time.advance(TTL - timedelta(seconds=1))
    second = provider.get()
    assert first == second == Credentials(KEY, SECRET)
    assert calls["GetSecretValue"] == 1
    assert events == [] and fake_time.sleeps == []


def test_cache_expires_after_ttl(admin, secret_id, provider_for, fake_time):
    """A6: at ttl the pair is read again (and a new version is then seen)."""
    client = make_client(admin.meta.endpoint_url)
    calls = count_calls(client)
    provider = provider_for(secret_id, client)
    provider.get()
    admin.put_secret_value(SecretId=secret_id, SecretString=pair(ROTATED_KEY, ROTATED_SECRET))
    fake_time.advance(TTL)
    assert provider.get() == Credentials(ROTATED_KEY, ROTATED_SECRET)
    assert calls["GetSecretValue"] == 2


def test_refresh_bypasses_the_cache_and_picks_up_a_rotated_version(admin, secret_id, provider_for):
    """X6, B4: after a 401 the adapter asks for refresh=True, which reads the new version
    at once; until then the cached (old) pair is served."""
    client = make_client(admin.meta.endpoint_url)
    calls = count_calls(client)
    provider = provider_for(secret_id, client)
    assert provider.get() == Credentials(KEY, SECRET)
    admin.put_secret_value(SecretId=secret_id, SecretString=pair(ROTATED_KEY, ROTATED_SECRET))
    assert provider.get() == Credentials(KEY, SECRET)
    assert provider.get(refresh=True) == Credentials(ROTATED_KEY, ROTATED_SECRET)
    assert provider.get() == Credentials(ROTATED_KEY, ROTATED_SECRET)
    assert calls["GetSecretValue"] == 2


def test_accepts_key_id_and_secret_key_field_names(admin, provider_for):
    """C4: the alternative field names; surrounding whitespace is stripped."""
    secret_id = new_secret(admin, json.dumps({"key_id": KEY, "secret_key": SECRET + "\n"}))
    provider = provider_for(secret_id, make_client(admin.meta.endpoint_url))
    assert provider.get() == Credentials(KEY, SECRET)


# ---------------------------------------------------------------------------- definite refusals


def test_not_found_is_a_clear_error_and_not_retried(admin, provider_for, fake_time, events):
    """S4, S7: ResourceNotFoundException names the secret and code, is not retried, stops
    trading, and each failure reaches the alerting path."""
    client = make_client(admin.meta.endpoint_url)
    calls = count_calls(client)
    provider = provider_for("tecl/alpaca/does-not-exist", client)
    with pytest.raises(SecretNotFoundError):
        provider.get()
    with pytest.raises(SecretNotFoundError) as caught:
        provider.get()
    error = caught.value
    assert isinstance(error, RefusedToTrade)
    assert "tecl/alpaca/does-not-exist" in str(error)
    assert "ResourceNotFoundException" in str(error)
    assert (error.code, error.operation) == ("ResourceNotFoundException", "GetSecretValue")
    assert calls["GetSecretValue"] == 2  # one per get(): no retries
    assert fake_time.sleeps == []
    assert names(events) == [EventKind.SECRET_ACCESS_FAILURE, EventKind.SECRET_ACCESS_FAILURE]


def test_secret_marked_for_deletion_is_an_invalid_request(admin, provider_for, events):
    """S4: moto's own InvalidRequestException for a secret scheduled for deletion."""
    secret_id = new_secret(admin)
    admin.delete_secret(SecretId=secret_id, RecoveryWindowInDays=7)
    client = make_client(admin.meta.endpoint_url)
    calls = count_calls(client)
    with pytest.raises(SecretInvalidRequestError, match="InvalidRequestException") as caught:
        provider_for(secret_id, client).get()
    assert secret_id in str(caught.value)
    assert "marked for deletion" in str(caught.value)
    assert calls["GetSecretValue"] == 1
    assert names(events) == [EventKind.SECRET_ACCESS_FAILURE]


@pytest.mark.parametrize(
    ("code", "error_type", "hint"),
    [
        ("AccessDeniedException", SecretAccessDeniedError, "secretsmanager:GetSecretValue"),
        ("DecryptionFailure", SecretDecryptionError, "kms:Decrypt"),
        ("InvalidRequestException", SecretInvalidRequestError, "marked for deletion"),
        ("InvalidParameterException", SecretAccessError, "secretsmanager:GetSecretValue"),
    ],
)
def test_definite_refusals_are_distinct_errors_not_retried(
    proxy, secret_id, provider_for, fake_time, events, code, error_type, hint
):
    """S4, A4, S7: access denied and KMS decryption failures (injected by the proxy) name the
    secret, the AWS code and what permission to check; never retried; always alerted."""
    proxy.fail("GetSecretValue", code, message="injected refusal")
    provider = provider_for(secret_id, make_client(proxy.url))
    for _ in range(2):
        with pytest.raises(error_type):
            provider.get()
    with pytest.raises(error_type) as caught:
        provider.get()
    error = caught.value
    assert isinstance(error, RefusedToTrade) and isinstance(error, SecretAccessError)
    assert (error.code, error.secret_id) == (code, secret_id)
    for part in (secret_id, code, hint):
        assert part in str(error)
    assert proxy.calls("GetSecretValue") == 3
    assert fake_time.sleeps == []
    assert (
        names(events) == [EventKind.SECRET_ACCESS_FAILURE] * 3
    )  # S7: repeated failures all visible


def test_a_refusal_is_not_masked_by_an_expired_cache(proxy, secret_id, provider_for, fake_time):
    """A4, S4: revoked access is a definite answer, not an outage: no stale-cache fallback."""
    provider = provider_for(secret_id, make_client(proxy.url))
    provider.get()
    fake_time.advance(TTL + timedelta(seconds=1))
    proxy.fail("GetSecretValue", "AccessDeniedException")
    with pytest.raises(SecretAccessDeniedError):
        provider.get()


# ---------------------------------------------------------------------------- transient failures


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("TooManyRequestsException", 429),
        ("InternalServiceError", 500),
        ("ServiceUnavailable", 503),
        (None, 0),  # the connection closed without an answer
    ],
)
def test_transient_failures_are_retried_with_jittered_backoff(
    proxy, secret_id, provider_for, fake_time, events, seed, code, status
):
    """A6, C6, R2: throttling, 5xx and dropped connections are retried with bounded backoff
    and jitter (reproducible from the printed seed), then the read succeeds."""
    if code is None:
        proxy.drop("GetSecretValue", times=2)
    else:
        proxy.fail("GetSecretValue", code, status=status, times=2)
    provider = provider_for(secret_id, make_client(proxy.url))
    assert provider.get() == Credentials(KEY, SECRET)
    assert proxy.calls("GetSecretValue") == 3
    assert fake_time.sleeps == expected_waits(2, seed)
    assert 0.375 <= fake_time.sleeps[0] <= 0.5 and 0.75 <= fake_time.sleeps[1] <= 1.0
    assert events == []


def test_throttled_through_every_retry_without_cache_refuses_to_trade(
    proxy, secret_id, provider_for, fake_time, events, seed
):
    """A6, C6: bounded retries, then SecretUnavailableError (a RefusedToTrade) and an event."""
    proxy.fail("GetSecretValue", "ThrottlingException", message="Rate exceeded")
    provider = provider_for(secret_id, make_client(proxy.url))
    with pytest.raises(SecretUnavailableError) as caught:
        provider.get()
    error = caught.value
    assert isinstance(error, RefusedToTrade)
    assert error.code == "ThrottlingException"
    for part in (secret_id, "ThrottlingException", f"{ATTEMPTS} attempt(s)", "no cached"):
        assert part in str(error)
    assert proxy.calls("GetSecretValue") == ATTEMPTS
    assert fake_time.sleeps == expected_waits(ATTEMPTS - 1, seed)
    assert sum(fake_time.sleeps) < DEFAULT_RETRY.deadline
    assert names(events) == [EventKind.SECRET_UNAVAILABLE]


def test_endpoint_down_without_cache_stops_before_any_broker_client_exists(
    secret_id, provider_for, fake_time, events, seed
):
    """A6, B2: Secrets Manager unreachable and nothing cached: the broker connection fails
    with SecretUnavailableError before it builds a client, and Dagster shows a refusal."""
    from dagster import Failure

    from tecl_pipeline.core.outcomes import Outcome
    from tecl_pipeline.defs.refusals import refusing_to_trade

    provider = provider_for(secret_id, make_client(closed_port_url()))
    built: list[Credentials] = []

    def build(credentials: Credentials) -> TradingClient:
        built.append(credentials)
        return TradingClient(credentials.key_id, credentials.secret_key, paper=True)

    connection = AlpacaConnection(
        build,
        provider,
        timeout=5.0,
        retry=RetryPolicy(max_attempts=3, base_delay=0.1),
        sleep=fake_time.sleep,
        rng=random.Random(seed),
    )
    with pytest.raises(Failure) as caught, refusing_to_trade():
        connection.read("/v2/account", lambda client: client.get_account())
    assert built == []  # no broker client, so no order could have been sent
    assert caught.value.metadata["outcome"].value == Outcome.REFUSED
    assert caught.value.metadata["error"].value == "SecretUnavailableError"
    assert caught.value.description is not None
    assert "EndpointConnectionError" in caught.value.description
    assert len(fake_time.sleeps) == ATTEMPTS - 1  # the provider's retries, not the adapter's
    assert names(events) == [EventKind.SECRET_UNAVAILABLE]


def test_unavailable_with_a_recent_cache_uses_it_and_says_so(
    proxy, secret_id, provider_for, fake_time, events
):
    """A6: past the ttl but within the grace period (2 x ttl) an outage falls back to the
    cached pair with a secret_stale_cache event; past the grace period it stops."""
    provider = provider_for(secret_id, make_client(proxy.url))
    provider.get()
    fake_time.advance(TTL + timedelta(minutes=1))
    proxy.fail("*", "ServiceUnavailable", status=503)
    assert provider.get() == Credentials(KEY, SECRET)
    assert proxy.calls("GetSecretValue") == 1 + ATTEMPTS
    assert names(events) == [EventKind.SECRET_STALE_CACHE]
    assert secret_id in events[0][1] and "ServiceUnavailable" in events[0][1]

    fake_time.advance(TTL)  # now older than 2 x ttl
    with pytest.raises(SecretUnavailableError, match="grace period"):
        provider.get()
    assert names(events) == [EventKind.SECRET_STALE_CACHE, EventKind.SECRET_UNAVAILABLE]

    proxy.clear()  # the service is back: a normal read, no more events
    assert provider.get() == Credentials(KEY, SECRET)
    assert names(events) == [EventKind.SECRET_STALE_CACHE, EventKind.SECRET_UNAVAILABLE]


def test_refresh_during_an_outage_does_not_reuse_the_refused_pair(
    proxy, secret_id, provider_for, events
):
    """X6, A6: refresh=True means the broker refused the cached pair; serving it again
    would only be refused again, so an outage then stops with a clear reason."""
    provider = provider_for(secret_id, make_client(proxy.url))
    provider.get()
    proxy.fail("GetSecretValue", "ThrottlingException")
    with pytest.raises(SecretUnavailableError, match="refresh was asked for"):
        provider.get(refresh=True)
    assert names(events) == [EventKind.SECRET_UNAVAILABLE]


# ---------------------------------------------------------------------------- malformed secrets


@pytest.mark.parametrize(
    ("secret_string", "field", "problem"),
    [
        (SECRET, None, "not valid JSON"),
        ("{" + json.dumps(SECRET), None, "not valid JSON"),
        (json.dumps([KEY, SECRET]), None, "JSON array"),
        (json.dumps(SECRET), None, "JSON string"),
        (json.dumps({"ALPACA_SECRET_KEY": SECRET}), "ALPACA_API_KEY", "no ALPACA_API_KEY"),
        (json.dumps({"ALPACA_API_KEY": KEY}), "ALPACA_SECRET_KEY", "no ALPACA_SECRET_KEY"),
        (
            json.dumps({"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": 42}),
            "ALPACA_SECRET_KEY",
            "number",
        ),
        (
            json.dumps({"ALPACA_API_KEY": " ", "ALPACA_SECRET_KEY": SECRET}),
            "ALPACA_API_KEY",
            "empty",
        ),
        (
            json.dumps({"ALPACA_API_KEY": KEY, "key_id": ROTATED_KEY, "secret_key": SECRET}),
            "ALPACA_API_KEY",
            "disagree",
        ),
    ],
)
def test_malformed_secret_is_a_clear_error_naming_the_field_not_the_value(
    admin, provider_for, events, secret_string, field, problem
):
    """C4, S2: a secret without the expected JSON names the secret and the field, never a
    value, and is reported (secret_malformed)."""
    secret_id = new_secret(admin, secret_string)
    with pytest.raises(SecretMalformedError) as caught:
        provider_for(secret_id, make_client(admin.meta.endpoint_url)).get()
    error = caught.value
    assert isinstance(error, RefusedToTrade)
    assert (error.secret_id, error.field) == (secret_id, field)
    assert secret_id in str(error) and problem in str(error)
    assert error.__cause__ is None  # a JSON error would carry the whole document
    for value in VALUES:
        assert value not in rendered(error)
    assert names(events) == [EventKind.SECRET_MALFORMED]


def test_binary_secret_is_malformed(admin, provider_for):
    """C4: a SecretBinary is not the JSON pair."""
    secret_id = new_secret(admin, None, SecretBinary=pair().encode())
    with pytest.raises(SecretMalformedError, match="binary"):
        provider_for(secret_id, make_client(admin.meta.endpoint_url)).get()


# ---------------------------------------------------------------------------- rotation age


def test_age_from_created_date_warns_only_past_max_age(admin, secret_id, provider_for, events):
    """S1: never rotated, so the age counts from CreatedDate; past max_age (90 days) it is a
    secret_rotation_overdue warning naming the days, not an error."""
    created = admin.describe_secret(SecretId=secret_id)["CreatedDate"]
    now = [created + timedelta(days=89, hours=23)]
    provider = provider_for(secret_id, make_client(admin.meta.endpoint_url), clock=lambda: now[0])
    assert provider.check_age() == timedelta(days=89, hours=23)
    assert events == []
    now[0] = created + timedelta(days=100, hours=1)
    assert provider.check_age() == timedelta(days=100, hours=1)
    assert names(events) == [EventKind.SECRET_ROTATION_OVERDUE]
    assert "100 days" in events[0][1] and secret_id in events[0][1] and "90 days" in events[0][1]
    assert provider.get() == Credentials(KEY, SECRET)  # still usable


def test_age_follows_the_last_rotation(admin, secret_id, provider_for, fake_time, events):
    """S1: after RotateSecret the age counts from LastRotatedDate, not CreatedDate."""
    admin.rotate_secret(SecretId=secret_id)
    described = admin.describe_secret(SecretId=secret_id)
    assert "LastRotatedDate" in described
    fake_time.now = described["LastRotatedDate"] + timedelta(days=3)
    assert provider_for(secret_id, make_client(admin.meta.endpoint_url)).check_age() == (
        timedelta(days=3)
    )
    assert events == []


def test_age_check_failures_are_events_not_errors(proxy, secret_id, provider_for, events):
    """S1, S7: a denied DescribeSecret is an access-failure event and an unknown age; a
    throttled one, after its retries, an age-unknown event. Neither stops the run."""
    provider = provider_for(secret_id, make_client(proxy.url))
    proxy.fail("DescribeSecret", "AccessDeniedException", times=1)
    assert provider.check_age() is None
    proxy.fail("DescribeSecret", "ThrottlingException")
    assert provider.check_age() is None
    assert names(events) == [EventKind.SECRET_ACCESS_FAILURE, EventKind.SECRET_AGE_UNKNOWN]
    assert "secretsmanager:DescribeSecret" in events[0][1]
    assert proxy.calls("DescribeSecret") == 1 + ATTEMPTS


# ---------------------------------------------------------------------------- S2: no leaks


def test_no_secret_value_in_logs_errors_reprs_or_events(
    admin, proxy, provider_for, fake_time, events, caplog
):
    """S2: across success, rotation, stale cache, outage, refusal and malformed secrets,
    no key or secret value appears in any log record (botocore's DEBUG included), error
    message, traceback with locals, repr or alert event."""
    secret_id = new_secret(admin)
    shown: list[str] = []
    caplog.set_level(logging.DEBUG)  # botocore logs response bodies at DEBUG
    provider = provider_for(secret_id, make_client(proxy.url))
    credentials = provider.get()
    shown += [repr(provider), repr(credentials), str(credentials), f"{credentials}"]
    with caplog.at_level(logging.WARNING):  # the test's own write is not under test
        admin.put_secret_value(SecretId=secret_id, SecretString=pair(ROTATED_KEY, ROTATED_SECRET))
    shown.append(repr(provider.get(refresh=True)))

    fake_time.advance(TTL + timedelta(seconds=1))
    proxy.fail("*", "ThrottlingException", message="Rate exceeded")
    provider.get()  # stale cache
    fake_time.advance(2 * TTL)
    with pytest.raises(SecretUnavailableError) as unavailable:
        provider.get()
    proxy.clear()
    proxy.fail("GetSecretValue", "AccessDeniedException", times=1)
    with pytest.raises(SecretAccessDeniedError) as denied:
        provider.get()
    with caplog.at_level(logging.WARNING):
        half = new_secret(admin, json.dumps({"ALPACA_SECRET_KEY": SECRET}))
        raw = new_secret(admin, SECRET)
    malformed = []
    for bad in (half, raw):
        with pytest.raises(SecretMalformedError) as caught:
            provider_for(bad, make_client(proxy.url)).get()
        malformed.append(caught.value)

    shown += [rendered(error) for error in (unavailable.value, denied.value, *malformed)]
    shown += [repr(provider), caplog.text, *(record.getMessage() for record in caplog.records)]
    shown += [message for _, message in events]
    assert EventKind.SECRET_STALE_CACHE in names(
        events
    ) and EventKind.SECRET_ACCESS_FAILURE in names(events)
    for text in shown:
        for value in VALUES:
            assert value not in text
    assert "Response body: <redacted" in caplog.text  # botocore did log the bodies


def test_a_value_echoed_by_the_server_is_scrubbed_from_our_messages(
    proxy, secret_id, provider_for, fake_time, events
):
    """S2: cheap insurance, as in the broker adapter: should an error message from AWS ever
    contain a cached value, our error and alert event show *** instead. (The botocore
    exception kept as the cause is AWS's own text and is not rewritten.)"""
    provider = provider_for(secret_id, make_client(proxy.url))
    provider.get()
    fake_time.advance(TTL)
    proxy.fail("GetSecretValue", "AccessDeniedException", message=f"not for {SECRET} / {KEY}")
    with pytest.raises(SecretAccessDeniedError) as caught:
        provider.get()
    for text in (str(caught.value), repr(caught.value), events[0][1]):
        assert SECRET not in text and KEY not in text
        assert "not for *** / ***" in text


def test_an_echoed_value_is_masked_before_the_message_is_clipped(
    proxy, secret_id, provider_for, fake_time, events
):
    """S2: a long AWS message with the cached secret percent-encoded (either hex case)
    where the provider clips messages: masked first, so no prefix of it is left."""
    provider = provider_for(secret_id, make_client(proxy.url))
    provider.get()
    fake_time.advance(TTL)
    encoded = "".join(f"%{b:02x}" if i % 2 else f"%{b:02X}" for i, b in enumerate(SECRET.encode()))
    proxy.fail("GetSecretValue", "AccessDeniedException", message="x" * 270 + " " + encoded)
    with pytest.raises(SecretAccessDeniedError) as caught:
        provider.get()
    for text in (str(caught.value), events[0][1]):
        assert "xxx ***" in text, text
        assert encoded[:6] not in text, text


# ---------------------------------------------------------------------------- the factory


def test_factory_uses_secrets_manager_when_a_secret_id_is_set(proxy, secret_id, seed):
    """A1, A6: TECL_SECRET_ID selects Secrets Manager; the boto3 client is built lazily
    (nothing sent before get()), and it does not retry on its own: the throttled calls
    are exactly the provider's policy, not multiplied by botocore's."""
    environ = {"TECL_SECRET_ID": secret_id, "AWS_REGION": REGION}
    environ["TECL_SECRETS_ENDPOINT_URL"] = proxy.url
    waits: list[float] = []
    provider = credentials_from_env(environ, sleep=waits.append, rng=random.Random(seed))
    assert isinstance(provider, SecretsManagerCredentials)
    assert proxy.calls() == 0
    assert provider.get() == Credentials(KEY, SECRET)
    assert proxy.calls("GetSecretValue") == 1
    proxy.fail("GetSecretValue", "ThrottlingException")
    with pytest.raises(SecretUnavailableError):
        provider.get(refresh=True)
    assert proxy.calls("GetSecretValue") == 1 + ATTEMPTS
    assert len(waits) == ATTEMPTS - 1


def test_factory_falls_back_to_environment_variables():
    """C4: without TECL_SECRET_ID the pair comes from ALPACA_API_KEY/ALPACA_SECRET_KEY."""
    provider = credentials_from_env({"ALPACA_API_KEY": KEY, "ALPACA_SECRET_KEY": SECRET})
    assert isinstance(provider, EnvCredentials)
    assert provider.get() == Credentials(KEY, SECRET)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TECL_SECRET_ID": "tecl/alpaca"}, "AWS_REGION"),
        (
            {
                "TECL_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf",
                "AWS_REGION": "us-east-1",
            },
            "eu-west-1",
        ),
        (
            {
                "TECL_SECRET_ID": "tecl/alpaca",
                "AWS_DEFAULT_REGION": REGION,
                "TECL_SECRETS_ENDPOINT_URL": "http://secrets.example.com",
            },
            "plain http",
        ),
    ],
)
def test_factory_rejects_missing_region_region_mismatch_and_plain_http(environ, message):
    """C4, A5, S5: configuration problems fail at once, before any call, naming the key."""
    with pytest.raises(SecretConfigError, match=message) as caught:
        credentials_from_env(environ)
    assert isinstance(caught.value, RefusedToTrade)


def test_factory_takes_the_region_from_the_arn():
    """A5: a full ARN carries its region; no AWS_REGION needed."""
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf"
    provider = credentials_from_env({"TECL_SECRET_ID": arn})
    assert isinstance(provider, SecretsManagerCredentials)
    assert "eu-west-1" in repr(provider._client)


def test_import_and_construction_load_no_aws_sdk():
    """A1: importing the package and building a provider import neither boto3 nor botocore."""
    code = (
        "import sys; from tecl_pipeline.adapters.secrets_provider import credentials_from_env; "
        "credentials_from_env({'TECL_SECRET_ID': 'x', 'AWS_REGION': 'us-east-1'}); "
        "print(','.join(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""
