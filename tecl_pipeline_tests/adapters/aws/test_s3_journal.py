"""The S3 journal against a real S3 endpoint: moto in server mode, with a fault proxy in
front where moto cannot produce the failure (AccessDenied, throttling, AWS-style region
redirects, dropped connections, corrupted answers). No test can reach real AWS."""

import json
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tecl_pipeline.adapters.aws.s3_journal import bucket_region_of
from tecl_pipeline.adapters.journal_store import open_journal
from tecl_pipeline.common.events import EventKind
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.core.errors import RefusedToTrade
from tecl_pipeline.harness.s3_faults import FaultProxy
from tecl_pipeline.state.errors import (
    JournalConflictError,
    JournalUnavailableError,
    JournalWriteError,
)
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline.state.journal.records import MAX_RECORD_BYTES, encode_record
from tecl_pipeline_tests.adapters.aws.moto_fixtures import Events, session_record

# Registered here until tecl_pipeline_tests/conftest.py lists it; registering twice is harmless.

PREFIX = "tecl/paper"
D1 = date(2024, 3, 4)
D2 = date(2024, 3, 5)
D3 = date(2024, 3, 6)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def journal_at(
    s3_bucket: str,
    spool_dir: Path,
    journal_events: Events,
    fault_proxy: FaultProxy,
    make_s3_client: Callable[..., Any],
) -> Callable[..., JournalStore]:
    """open_journal on the test bucket, through the proxy unless told otherwise; each S3
    call is tried twice, without waiting between the tries."""

    def make(
        *, endpoint: str | None = None, bucket: str | None = None, **options: Any
    ) -> JournalStore:
        return open_journal(
            f"s3://{bucket or s3_bucket}/{PREFIX}",
            spool_dir=options.pop("spool_dir", spool_dir),
            s3_client=make_s3_client(endpoint or fault_proxy.url),
            on_event=journal_events,
            s3_retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0),
            **options,
        )

    return make


@pytest.fixture
def journal(journal_at) -> JournalStore:
    return journal_at()


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def spooled(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.glob("*.json")) if spool_dir.is_dir() else []


def put_raw(client: Any, bucket: str, key: str, body: bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")


# -- D5: state persisted across sessions -------------------------------------------------


def test_two_runs_read_each_others_records_across_sessions(journal_at, moto_s3, s3_bucket):
    """D5: what run 1 wrote for one session, run 2 (a new process: new client, new store)
    reads as latest_before the next session; sessions without records are skipped."""
    first = journal_at()
    first.preflight()
    assert first.latest_before(D1) is None
    record_1 = session_record(D1, "run-a")
    where = first.append(record_1)
    assert where.startswith(f"s3://{s3_bucket}/{PREFIX}/sessions/2024-03-04/")
    assert where.endswith("-run-a.json")

    second = journal_at()
    assert second.latest_before(D2) == record_1
    assert second.latest_before(D3) == record_1  # D2 has no record yet
    assert second.latest_before(D1) is None
    record_2 = session_record(D2, "run-b")
    second.append(record_2)
    retry = session_record(D2, "run-c", written_at=record_2.written_at + timedelta(minutes=5))
    second.append(retry)

    third = journal_at()
    assert third.records(D2) == [record_2, retry]
    assert third.latest(D2) == retry
    assert third.latest_before(D3) == retry
    assert third.latest_before(D2) == record_1
    assert third.history() == [record_1, retry]
    assert keys(moto_s3, s3_bucket, f"{PREFIX}/sessions/") == sorted(
        [
            f"{PREFIX}/sessions/2024-03-04/20240304T210000000000Z-run-a.json",
            f"{PREFIX}/sessions/2024-03-05/20240305T210000000000Z-run-b.json",
            f"{PREFIX}/sessions/2024-03-05/20240305T210500000000Z-run-c.json",
        ]
    )
    assert first.quarantined == second.quarantined == third.quarantined == []


def test_every_write_is_encrypted_and_create_only(journal, fault_proxy, moto_s3, s3_bucket):
    """S5, D2: every PutObject (records and the preflight probe) carries
    x-amz-server-side-encryption: AES256 and If-None-Match: *, every quarantine CopyObject
    asks for AES256 too, and S3 reports every stored object as AES256-encrypted."""
    journal.preflight()
    journal.append(session_record(D1, "run-a"))
    journal.append(session_record(D2, "run-b"))
    put_raw(moto_s3, s3_bucket, f"{PREFIX}/sessions/2024-03-05/zz-bad.json", b"not json")
    journal.records(D2)  # quarantines the bad one: a CopyObject

    puts = fault_proxy.requests("PutObject")
    copies = fault_proxy.requests("CopyObject")
    assert len(puts) == 3 and len(copies) == 1
    for request in puts:
        assert request.headers["x-amz-server-side-encryption"] == "AES256", request.path
        assert request.headers["if-none-match"] == "*", request.path
    assert copies[0].headers["x-amz-server-side-encryption"] == "AES256"
    stored = keys(moto_s3, s3_bucket)
    assert any("/quarantine/" in key for key in stored)
    for key in stored:
        head = moto_s3.head_object(Bucket=s3_bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256", key


# -- D2 / X5: create-only writes -----------------------------------------------------------


def test_same_key_written_twice_is_a_conflict_and_the_original_stays(
    journal, moto_s3, s3_bucket, spool_dir, journal_events
):
    """D2, X5: a second, different record under the same key gets 412 PreconditionFailed
    from S3 and a JournalConflictError naming s3:PutObject and the key; the original is
    byte-for-byte intact, and the loser is spooled (never silently lost), not replayable."""
    original = session_record(D1, "run-a")
    where = journal.append(original)
    key = where.removeprefix(f"s3://{s3_bucket}/")
    stale = session_record(D1, "run-a", reason="a stale writer's different decision")

    with pytest.raises(JournalConflictError) as caught:
        journal.append(stale)

    error = caught.value
    assert error.code == "PreconditionFailed"
    assert error.action == "s3:PutObject"
    assert key in str(error) and "s3:PutObject" in str(error)
    assert not isinstance(error, RefusedToTrade)  # the orders are already sent
    body = moto_s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert body == encode_record(original)
    assert journal.records(D1) == [original]
    assert error.spool_path is not None
    assert [Path(error.spool_path)] == spooled(spool_dir)

    assert journal.replay_spool() == 0
    assert journal_events.of(EventKind.SPOOL_CONFLICT)
    assert spooled(spool_dir), "a conflicting record stays spooled for a person"


def test_writing_the_same_record_again_is_idempotent(journal, moto_s3, s3_bucket, spool_dir):
    """D1, X3: the identical record appended twice (a re-run of the same step) is one
    object; the second append is not an error and replaces nothing."""
    record = session_record(D1, "run-a")
    assert journal.append(record) == journal.append(record)
    assert len(keys(moto_s3, s3_bucket, f"{PREFIX}/sessions/")) == 1
    assert spooled(spool_dir) == []


def test_concurrent_writers_of_one_key_exactly_one_wins(journal_at, serial_moto_server):
    """X5, D2: writers racing for one key, each with its own client, never both succeed
    and never leave a mixture: one record is stored whole, every other writer gets a
    JournalConflictError. (A HeadObject-then-put check would let several through: the
    server decides each PUT alone, as S3 does, but the writers' calls interleave.)"""
    writers = 6
    barrier = threading.Barrier(writers)
    stores = [journal_at(endpoint=serial_moto_server) for _ in range(writers)]
    outcomes: dict[int, str] = {}

    def write(i: int) -> None:
        barrier.wait()
        try:
            stores[i].append(session_record(D1, "run-a", reason=f"writer {i}"))
            outcomes[i] = "ok"
        except JournalConflictError:
            outcomes[i] = "conflict"
        except Exception as exc:  # named in the failure rather than lost with the thread
            outcomes[i] = repr(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [i for i, outcome in outcomes.items() if outcome == "ok"]
    assert sorted(outcomes.values()) == ["conflict"] * (writers - 1) + ["ok"], outcomes
    [stored] = journal_at().records(D1)
    assert stored.reason == f"writer {winners[0]}"


def test_lost_answer_after_a_landed_put_is_not_a_conflict(journal, fault_proxy, spool_dir):
    """D1, X5: the connection drops after S3 stored the record; the journal retries, S3 says
    412 (the key exists), the journal reads it back, finds its own bytes, and succeeds."""
    fault_proxy.inject("PutObject", "drop_after_forward", times=1, key_contains="/sessions/")
    record = session_record(D1, "run-a")

    journal.append(record)

    assert [r.fault for r in fault_proxy.requests("PutObject")] == ["drop_after_forward", None]
    assert journal.records(D1) == [record]
    assert spooled(spool_dir) == []


# -- D1: verified, atomic writes; spool and replay ----------------------------------------


def test_verify_after_write_catches_a_bad_read_back_and_spools(journal, fault_proxy, spool_dir):
    """D1: the record is read back after the PUT; when what comes back differs, the write
    is not trusted: JournalWriteError (ReadBackMismatch), record spooled; the replay
    verifies again and then removes the spool file."""
    fault_proxy.inject("GetObject", "corrupt_body", times=1, key_contains="/sessions/")
    record = session_record(D1, "run-a")

    with pytest.raises(JournalWriteError) as caught:
        journal.append(record)

    assert caught.value.code == "ReadBackMismatch"
    assert len(spooled(spool_dir)) == 1
    assert journal.replay_spool() == 1
    assert spooled(spool_dir) == []
    assert journal.records(D1) == [record]


def test_access_denied_on_put_is_named_spooled_and_replayed_later(
    journal, fault_proxy, spool_dir, journal_events, s3_bucket
):
    """A4, D1: AccessDenied on PutObject gives a JournalWriteError naming s3:PutObject, the
    bucket/key and AccessDenied; the record is spooled (event), not visible to readers,
    kept through a replay that still fails, and written by the replay after the fix."""
    denied = fault_proxy.inject("PutObject", "access_denied", key_contains="/sessions/")
    record = session_record(D1, "run-a")

    with pytest.raises(JournalWriteError) as caught:
        journal.append(record)

    message = str(caught.value)
    assert "s3:PutObject" in message and "AccessDenied" in message
    assert f"s3://{s3_bucket}/{PREFIX}/sessions/2024-03-04/" in message
    assert caught.value.action == "s3:PutObject" and caught.value.code == "AccessDenied"
    assert caught.value.spool_path is not None
    assert [Path(caught.value.spool_path)] == spooled(spool_dir)
    assert journal_events.of(EventKind.SPOOLED)
    assert journal.records(D1) == []

    assert journal.replay_spool() == 0
    assert journal_events.of(EventKind.SPOOL_REPLAY_FAILED) and len(spooled(spool_dir)) == 1

    fault_proxy.clear()
    assert journal.replay_spool() == 1
    assert spooled(spool_dir) == []
    assert journal_events.of(EventKind.REPLAYED)
    assert journal.records(D1) == [record]
    assert denied.injected >= 2


def test_throttling_is_retried_a_bounded_number_of_times(journal, fault_proxy, spool_dir):
    """C6, A9, B1: 503 SlowDown is retried under the project's retry policy, at most
    max_attempts (2 here) times; then the run ends cleanly: JournalWriteError, spooled."""
    fault_proxy.inject("PutObject", "slow_down", key_contains="/sessions/")
    started = time.monotonic()

    with pytest.raises(JournalWriteError) as caught:
        journal.append(session_record(D1, "run-a"))

    assert time.monotonic() - started < 10
    assert caught.value.code == "SlowDown"
    assert len(fault_proxy.requests("PutObject")) == 2
    assert len(spooled(spool_dir)) == 1


def test_brief_throttling_is_absorbed_by_retries(journal, fault_proxy, spool_dir):
    """C6, B1: one SlowDown, then success: the append succeeds after one retry."""
    fault_proxy.inject("PutObject", "slow_down", times=1, key_contains="/sessions/")
    record = session_record(D1, "run-a")
    journal.append(record)
    assert len(fault_proxy.requests("PutObject")) == 2
    assert journal.records(D1) == [record]
    assert spooled(spool_dir) == []


def test_connection_dropped_mid_put_leaves_nothing_half_written(
    journal, fault_proxy, moto_s3, s3_bucket, spool_dir
):
    """D1: every attempt loses its connection halfway through the body: S3 stores nothing
    (readers see no object, whole or partial), the record is spooled, JournalWriteError."""
    fault_proxy.inject("PutObject", "drop_mid_put", key_contains="/sessions/")
    record = session_record(D1, "run-a")

    with pytest.raises(JournalWriteError) as caught:
        journal.append(record)

    assert caught.value.action == "s3:PutObject"
    assert keys(moto_s3, s3_bucket, f"{PREFIX}/sessions/") == []
    assert journal.records(D1) == []
    assert len(spooled(spool_dir)) == 1
    fault_proxy.clear()
    assert journal.replay_spool() == 1
    assert journal.records(D1) == [record]


def test_one_dropped_put_is_retried(journal, fault_proxy, spool_dir):
    """D1: a single connection drop mid-PUT is retried by the client and succeeds."""
    fault_proxy.inject("PutObject", "drop_mid_put", times=1, key_contains="/sessions/")
    record = session_record(D1, "run-a")
    journal.append(record)
    assert journal.records(D1) == [record]
    assert spooled(spool_dir) == []


def test_spool_is_capped_and_drops_the_oldest_with_an_event(
    journal_at, fault_proxy, spool_dir, journal_events
):
    """X7: with the journal down, the spool keeps at most N files; the oldest go first,
    each with a spool_dropped event; the newest records survive and replay."""
    journal = journal_at(spool_max_files=2)
    fault_proxy.inject("PutObject", "access_denied", key_contains="/sessions/")
    records = [session_record(D1 + timedelta(days=i), f"run-{i}") for i in range(4)]
    for record in records:
        with pytest.raises(JournalWriteError):
            journal.append(record)

    assert len(spooled(spool_dir)) == 2
    dropped = journal_events.of(EventKind.SPOOL_DROPPED)
    assert len(dropped) == 2 and "run-0" in dropped[0] and "run-1" in dropped[1]
    fault_proxy.clear()
    assert journal.replay_spool() == 2
    assert [journal.latest(r.session) for r in records] == [None, None, *records[2:]]


# -- D3: corrupted or malformed objects -----------------------------------------------------


def test_corrupted_objects_are_quarantined_not_deleted_and_reads_go_on(
    journal, moto_s3, s3_bucket, journal_events
):
    """D3: a non-JSON object, a JSON object failing the schema and a record filed under
    the wrong session are each copied to <prefix>/quarantine/<key below prefix> (same
    bytes, encrypted), removed from sessions/, excluded, listed in `quarantined`, and
    reported by a quarantine event; the good record is still returned."""
    good = session_record(D1, "run-a")
    journal.append(good)
    folder = f"{PREFIX}/sessions/2024-03-04"
    bad = {
        f"{folder}/20240304T220000000000Z-garbage.json": b"\x00\xffnot json at all",
        f"{folder}/20240304T220100000000Z-schema.json": json.dumps({"schema_version": 1}).encode(),
        f"{folder}/20240304T220200000000Z-misfiled.json": encode_record(session_record(D2)),
    }
    for key, body in bad.items():
        put_raw(moto_s3, s3_bucket, key, body)

    assert journal.records(D1) == [good]

    assert sorted(journal.quarantined) == sorted(f"s3://{s3_bucket}/{key}" for key in bad)
    assert len(journal_events.of(EventKind.QUARANTINE)) == 3
    assert all("quarantined to" in message for message in journal_events.of(EventKind.QUARANTINE))
    for key, body in bad.items():
        copy = key.replace(f"{PREFIX}/sessions/", f"{PREFIX}/quarantine/sessions/")
        stored = moto_s3.get_object(Bucket=s3_bucket, Key=copy)
        assert stored["Body"].read() == body
        assert stored["ServerSideEncryption"] == "AES256"
    assert keys(moto_s3, s3_bucket, f"{folder}/") == [f"{folder}/20240304T210000000000Z-run-a.json"]
    assert journal.latest(D1) == good
    assert len(journal_events.of(EventKind.QUARANTINE)) == 3  # moved once, not again on every read


def test_quarantine_never_deletes_what_it_could_not_copy(
    journal, fault_proxy, moto_s3, s3_bucket, journal_events
):
    """D3: CopyObject denied: the bad object stays where it is (excluded, reported);
    once the copy works but DeleteObject is denied, the copy exists and the original is
    kept; a later read neither copies it again nor returns it."""
    key = f"{PREFIX}/sessions/2024-03-04/20240304T220000000000Z-garbage.json"
    put_raw(moto_s3, s3_bucket, key, b"{ truncated")
    fault_proxy.inject("CopyObject", "access_denied")
    fault_proxy.inject("DeleteObject", "access_denied")

    assert journal.records(D1) == []
    assert "could NOT be quarantined" in journal_events.of(EventKind.QUARANTINE)[0]
    assert keys(moto_s3, s3_bucket) == [key]

    fault_proxy.clear()
    fault_proxy.inject("DeleteObject", "access_denied")
    assert journal.records(D1) == []
    copy = f"{PREFIX}/quarantine/sessions/2024-03-04/20240304T220000000000Z-garbage.json"
    assert keys(moto_s3, s3_bucket) == sorted([copy, key])
    assert "original could not be removed" in journal_events.of(EventKind.QUARANTINE)[1]
    assert "s3:DeleteObject" in journal_events.of(EventKind.QUARANTINE)[1]

    assert journal.records(D1) == []
    assert len(fault_proxy.requests("CopyObject")) == 2  # the denied one and one real copy


def test_an_oversized_object_is_quarantined_without_being_downloaded(
    journal, fault_proxy, moto_s3, s3_bucket
):
    """D3, C8: an object larger than any record is quarantined on its listed size alone."""
    key = f"{PREFIX}/sessions/2024-03-04/20240304T220000000000Z-huge.json"
    put_raw(moto_s3, s3_bucket, key, b" " * (MAX_RECORD_BYTES + 1))

    assert journal.records(D1) == []
    assert journal.quarantined == [f"s3://{s3_bucket}/{key}"]
    assert fault_proxy.requests("GetObject") == []


def test_a_record_from_a_newer_schema_stops_trading_and_is_not_quarantined(
    journal, moto_s3, s3_bucket
):
    """D3: schema_version 3 is not garbage, it is a newer pipeline's record: refuse to
    trade on a view that would skip it, and leave it where it is."""
    key = f"{PREFIX}/sessions/2024-03-04/20240304T220000000000Z-future.json"
    raw = json.loads(encode_record(session_record(D1)))
    put_raw(moto_s3, s3_bucket, key, json.dumps({**raw, "schema_version": 3}).encode())

    with pytest.raises(JournalUnavailableError, match="schema_version 3"):
        journal.latest_before(D2)
    assert journal.quarantined == []
    assert keys(moto_s3, s3_bucket) == [key]


# -- A4, A5, A8, A9: preflight before trading ----------------------------------------------


def test_preflight_passes_and_leaves_no_probe_behind(journal, moto_s3, s3_bucket):
    """A4, A9: preflight proves read and write with a probe object, then removes it."""
    journal.preflight()
    assert keys(moto_s3, s3_bucket) == []


def test_preflight_makes_only_calls_the_pipeline_policy_grants(journal, fault_proxy, s3_bucket):
    """S3: preflight locates the bucket with GetBucketLocation (s3:GetBucketLocation), never
    HeadBucket (authorised as s3:ListBucket with no s3:prefix, which the template's policy
    refuses), then writes, reads and deletes a probe under <prefix>/preflight/ only."""
    journal.preflight()
    seen = fault_proxy.requests()
    assert [r.operation for r in seen] == [
        "GetBucketLocation",
        "PutObject",
        "GetObject",
        "DeleteObject",
    ]
    (locate, *objects) = seen
    assert locate.method == "GET" and locate.path.startswith(f"/{s3_bucket}?location")
    assert all(r.path.startswith(f"/{s3_bucket}/{PREFIX}/preflight/") for r in objects)


@pytest.mark.parametrize(
    ("constraint", "region"),
    [(None, "us-east-1"), ("", "us-east-1"), ("EU", "eu-west-1"), ("eu-west-1", "eu-west-1")],
)
def test_location_constraint_names_the_bucket_region(constraint, region):
    """A5: S3 reports us-east-1 as no LocationConstraint and eu-west-1 (legacy) as "EU"."""
    assert bucket_region_of(constraint) == region


def test_preflight_names_a_missing_bucket(journal_at, s3_bucket):
    """A5: a bucket that does not exist: RefusedToTrade naming the bucket, NoSuchBucket."""
    journal = journal_at(bucket=f"{s3_bucket}-missing")
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert isinstance(caught.value, RefusedToTrade)
    assert caught.value.code == "NoSuchBucket"
    assert f"{s3_bucket}-missing" in str(caught.value)


def test_preflight_detects_a_bucket_in_another_region(journal_at, make_s3_client, aws_sandbox):
    """A5 (moto natively): the bucket lives in eu-west-1, the client is set to us-east-1;
    moto answers GetBucketLocation with eu-west-1, and preflight refuses, naming both."""
    bucket = "journal-eu-west-1-bucket"
    make_s3_client(region="eu-west-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    journal = journal_at(endpoint=aws_sandbox, bucket=bucket)
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert caught.value.code == "BucketRegionMismatch"
    assert "eu-west-1" in str(caught.value) and "us-east-1" in str(caught.value)


def test_preflight_names_the_region_of_an_aws_style_redirect(journal, fault_proxy):
    """A5 (as AWS answers, via the proxy): 301 PermanentRedirect with x-amz-bucket-region;
    botocore's own one-time redirect meets the same answer, and preflight names it."""
    fault_proxy.inject("*", "wrong_region", region="ap-southeast-2")
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert caught.value.code == "PermanentRedirect"
    assert "ap-southeast-2" in str(caught.value)


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("GetBucketLocation", "s3:GetBucketLocation"),
        ("PutObject", "s3:PutObject"),
        ("GetObject", "s3:GetObject"),
    ],
)
def test_preflight_names_the_denied_action(journal, fault_proxy, s3_bucket, operation, action):
    """A4: AccessDenied on any call preflight makes: RefusedToTrade naming the IAM action,
    the resource and AccessDenied."""
    fault_proxy.inject(operation, "access_denied")
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert caught.value.code == "AccessDenied"
    assert action in str(caught.value) and f"s3://{s3_bucket}" in str(caught.value)


def test_preflight_names_an_unreachable_endpoint(journal_at):
    """A8: nothing listens at the endpoint: RefusedToTrade naming it, quickly."""
    with pytest.raises(JournalUnavailableError) as caught:
        journal_at(endpoint="http://127.0.0.1:9").preflight()
    assert caught.value.code == "EndpointConnectionError"
    assert "127.0.0.1:9" in str(caught.value) and "unreachable" in str(caught.value)


def test_preflight_fails_closed_while_s3_throttles(journal, fault_proxy):
    """A9: S3 answers 503 SlowDown to every attempt: bounded retries, then a refusal."""
    fault_proxy.inject("GetBucketLocation", "slow_down")
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert caught.value.code == "SlowDown"
    assert "throttling or unavailable" in str(caught.value)
    assert len(fault_proxy.requests("GetBucketLocation")) == 2


def test_preflight_refuses_plain_http_to_a_remote_endpoint(s3_bucket, spool_dir, make_s3_client):
    """S5: a client whose endpoint is plain http to another host is refused before any
    request is made (signed requests and records must not cross a network in clear)."""
    journal = open_journal(
        f"s3://{s3_bucket}", spool_dir=spool_dir, s3_client=make_s3_client("http://s3.example.com")
    )
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert caught.value.code == "InsecureEndpoint"


def test_readers_that_never_preflight_refuse_plain_http_too(s3_bucket, spool_dir, make_s3_client):
    """S5 for `tecl status` and live_performance, which read without a preflight: no request
    goes to a plain-http endpoint on another host."""
    journal = open_journal(
        f"s3://{s3_bucket}",
        spool_dir=spool_dir,
        s3_client=make_s3_client("http://s3.example.com"),
        read_only=True,
    )
    with pytest.raises(JournalUnavailableError) as caught:
        journal.history()
    assert caught.value.code == "InsecureEndpoint"
    assert "s3.example.com" in str(caught.value) and "not https" in str(caught.value)


def test_preflight_refuses_when_the_spool_is_not_writable(journal_at, tmp_path):
    """D1: if a failed write could not be spooled, the run must not trade."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalUnavailableError, match="spool"):
        journal_at(spool_dir=blocker / "spool").preflight()


def test_reads_that_fail_refuse_to_trade(journal, fault_proxy):
    """A4, A9: a journal that cannot be listed gives no state to trade on: refusal naming
    s3:ListBucket, never an empty (falsely clean) history."""
    fault_proxy.inject("ListObjectsV2", "access_denied")
    with pytest.raises(JournalUnavailableError) as caught:
        journal.latest_before(D2)
    assert "s3:ListBucket" in str(caught.value) and caught.value.code == "AccessDenied"


def test_errors_never_carry_credentials(s3_bucket, spool_dir, fault_proxy, journal_events):
    """S2: the secret key appears in no error message or event, even when every call is
    denied."""
    secret = "SECRETKEY-must-not-leak-0123456789"
    import boto3.session
    from botocore.config import Config

    client = boto3.session.Session(
        aws_access_key_id="AKIDTESTING", aws_secret_access_key=secret, region_name="us-east-1"
    ).client(
        "s3",
        endpoint_url=fault_proxy.url,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    journal = open_journal(
        f"s3://{s3_bucket}/{PREFIX}", spool_dir=spool_dir, s3_client=client, on_event=journal_events
    )
    fault_proxy.inject("*", "access_denied")
    messages = []
    for attempt in (journal.preflight, lambda: journal.append(session_record(D1))):
        with pytest.raises((JournalUnavailableError, JournalWriteError)) as caught:
            attempt()
        messages.append(repr(caught.value) + str(caught.value.__cause__))
    messages += [event.message for event in journal_events.seen]
    assert messages and not [m for m in messages if secret in m]


def test_the_default_client_leaves_every_retry_to_the_journals_policy(
    aws_sandbox, s3_bucket, spool_dir, fault_proxy, monkeypatch
):
    """C6: one retry policy: the client made from the environment does not retry by itself,
    so a call S3 keeps throttling is sent as often as the journal's policy allows, not that
    many times botocore's own attempts."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", fault_proxy.url)
    fault_proxy.inject("GetBucketLocation", "slow_down")
    journal = open_journal(
        f"s3://{s3_bucket}/{PREFIX}",
        spool_dir=spool_dir,
        s3_retry=RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0),
    )
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert caught.value.code == "SlowDown"
    assert len(fault_proxy.requests("GetBucketLocation")) == 3


def test_open_journal_without_a_client_uses_the_sandboxed_environment(
    aws_sandbox, s3_bucket, spool_dir
):
    """The default client (made from the environment, retries left to the journal) reaches
    moto through AWS_ENDPOINT_URL: the sandbox holds, and the default works."""
    journal = open_journal(f"s3://{s3_bucket}/{PREFIX}", spool_dir=spool_dir)
    journal.preflight()
    record = session_record(D1)
    journal.append(record)
    assert journal.latest(D1) == record
    assert journal.location == f"s3://{s3_bucket}/{PREFIX}"
