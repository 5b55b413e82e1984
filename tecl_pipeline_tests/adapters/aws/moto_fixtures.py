"""A real S3 endpoint for tests: moto in server mode on 127.0.0.1, and a fault proxy.

`moto_server` runs one ThreadedMotoServer per test session on a free loopback port. Every
client the fixtures hand out talks to it by `endpoint_url`, with dummy credentials, and
`aws_sandbox` points the AWS_* environment at it too, so that nothing in a test (not even
a client built from the environment) can reach real AWS or read real credentials.

`serial_moto_server` serves the same in-process moto, one request at a time: S3 decides
each create-only PUT (If-None-Match: *) atomically, and moto's threaded server does not
(two racing PUTs can both pass its existence check), so the races about that promise run
there.

`FaultProxy` is a small HTTP proxy in front of moto for the failures moto cannot produce:
AccessDenied for chosen operations, 503 SlowDown throttling, a region redirect as AWS
sends it, a connection dropped mid-PUT, a response lost after the write landed, and a
corrupted response body. It also records every request it forwards, headers included, so
tests can check what actually went over the wire.

`session_record()` builds a plausible journal record for the state tests.

Register with `pytest_plugins = ["tecl_pipeline_tests.adapters.aws.moto_fixtures"]`.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3.session
import botocore.session
import pytest
from botocore.config import Config

from tecl_pipeline.common.events import Event, EventKind
from tecl_pipeline.harness.s3_faults import FaultProxy
from tecl_pipeline.state.journal.records import SessionRecord

REGION = "us-east-1"


def s3_client(
    endpoint: str,
    *,
    region: str = REGION,
    session: boto3.session.Session | None = None,
) -> Any:
    """A boto3 S3 client for `endpoint` only: dummy credentials, no retries of its own (the
    journal retries, as with the product's client), short timeouts, path-style addressing.
    Pass the `boto_session` fixture as `session` to skip reloading botocore's models."""
    return (session or boto3.session.Session()).client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=2,
            read_timeout=5,
            s3={"addressing_style": "path"},
        ),
    )


class Events:
    """An on_event sink that remembers the events it is sent."""

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.seen.append(event)

    def of(self, kind: EventKind) -> list[str]:
        return [event.message for event in self.seen if event.kind is kind]


@pytest.fixture
def journal_events() -> Events:
    return Events()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 (and the rest of AWS) in server mode on a free loopback port: its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def serial_moto_server(moto_server: str) -> Iterator[str]:
    """moto's backends (the same buckets as `moto_server`) behind a server that handles one
    request at a time, so that a conditional PUT is check-and-write in one step as on S3:
    its URL. Clients' requests still interleave between calls, as they do against S3."""
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=False,
        request_handler=MotoRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def aws_sandbox(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The AWS_* environment pointed at moto with dummy credentials, for one test; no
    profile, config file or instance metadata can supply real ones. Returns moto's URL."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_server


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One boto3 session for the whole run (loading botocore's models once saves ~0.1 s
    per client), blind to the machine's AWS config and credentials files."""
    core = botocore.session.Session()
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    return boto3.session.Session(botocore_session=core, region_name=REGION)


@pytest.fixture
def make_s3_client(aws_sandbox: str, boto_session: boto3.session.Session) -> Callable[..., Any]:
    """make_s3_client(endpoint=moto, *, region): a sandboxed test client."""

    def make(endpoint: str | None = None, *, region: str = REGION) -> Any:
        return s3_client(endpoint or aws_sandbox, region=region, session=boto_session)

    return make


@pytest.fixture
def moto_s3(make_s3_client: Callable[..., Any]) -> Any:
    """A client straight to moto (no proxy): for setting up and inspecting buckets."""
    return make_s3_client()


@pytest.fixture
def s3_bucket(moto_s3: Any) -> str:
    """A fresh, empty bucket in us-east-1, unique to the test (no moto reset needed)."""
    name = f"journal-{uuid.uuid4().hex[:20]}"
    moto_s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def fault_proxy(aws_sandbox: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of moto, started for one test."""
    proxy = FaultProxy(aws_sandbox).start()
    yield proxy
    proxy.stop()


_EPOCH = date(2024, 1, 1)


def session_record(
    session: date,
    run_id: str = "run-1",
    *,
    written_at: datetime | None = None,
    reason: str = "TECL above its 200-day average",
    tecl_qty: str = "12.5",
) -> SessionRecord:
    """A plausible journal record (Decimal money, tz-aware time) for the state tests."""
    return SessionRecord(
        session=session,
        run_id=run_id,
        written_at=written_at or datetime(2024, 1, 1, 21, 0, tzinfo=UTC) + (session - _EPOCH),
        data_source="csv replay",
        broker="simulator",
        leaf="risk-on",
        reason=reason,
        weights={"TECL": Decimal("1")},
        orders=[],
        positions={"TECL": Decimal(tecl_qty)},
        cash=Decimal("12.34"),
        equity=Decimal("10012.34"),
    )
