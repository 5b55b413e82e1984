"""The S3 journal's rarer paths, against moto behind the fault proxy: a preflight probe
that reads back wrong or cannot be written for an unexpected reason, objects that vanish
between listing and reading or quarantining, a second bad object under a name already
quarantined, and a quarantine that cannot even look at the object."""

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tecl_pipeline.adapters.aws.s3_journal import S3Journal
from tecl_pipeline.adapters.journal_store import open_journal
from tecl_pipeline.common.events import EventKind
from tecl_pipeline.harness.s3_faults import FaultProxy
from tecl_pipeline.state.errors import JournalUnavailableError
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline_tests.adapters.aws.moto_fixtures import Events, session_record

PREFIX = "tecl/edges"
D1 = date(2024, 3, 4)
FOLDER = f"{PREFIX}/sessions/2024-03-04"
GARBAGE = f"{FOLDER}/20240304T220000000000Z-garbage.json"


@pytest.fixture
def journal(
    s3_bucket: str,
    tmp_path: Path,
    journal_events: Events,
    fault_proxy: FaultProxy,
    make_s3_client: Callable[..., Any],
) -> JournalStore:
    return open_journal(
        f"s3://{s3_bucket}/{PREFIX}",
        spool_dir=tmp_path / "spool",
        s3_client=make_s3_client(fault_proxy.url),
        on_event=journal_events,
    )


def put_raw(client: Any, bucket: str, key: str, body: bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")


def keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


# -- preflight ---------------------------------------------------------------------------


def test_a_probe_that_reads_back_differently_refuses_to_trade(journal, fault_proxy, moto_s3):
    """A4, D1: the bucket answers, but not with what was written: not a usable journal."""
    fault_proxy.inject("GetObject", "corrupt_body", key_contains="/preflight/")
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert caught.value.code == "ReadBackMismatch"
    assert "probe read back differently" in str(caught.value)


def test_an_unexpected_failure_of_the_probe_is_named_as_it_is(journal, fault_proxy, s3_bucket):
    """A4: a failure that fits no known cause is still a refusal naming the action, the
    object and S3's code, not a guess."""
    fault_proxy.inject("PutObject", "no_such_bucket")
    with pytest.raises(JournalUnavailableError) as caught:
        journal.preflight()
    assert caught.value.code == "NoSuchBucket" and caught.value.action == "s3:PutObject"
    assert f"s3://{s3_bucket}/{PREFIX}/preflight/" in str(caught.value)
    assert "the journal cannot be used" in str(caught.value)


# -- races with other readers ----------------------------------------------------------------


def test_a_record_deleted_between_listing_and_reading_is_skipped(
    journal, moto_s3, s3_bucket, monkeypatch
):
    first, second = session_record(D1, "run-a"), session_record(D1, "run-b")
    journal.append(first)
    journal.append(second)
    real_refs = S3Journal._session_refs

    def listed_then_moved(self: S3Journal, session: date):
        refs = real_refs(self, session)
        moto_s3.delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{refs[1][0]}")
        return refs

    monkeypatch.setattr(S3Journal, "_session_refs", listed_then_moved)
    assert journal.records(D1) == [first]
    assert journal.quarantined == []


def test_a_bad_object_another_reader_moved_first_is_not_reported(
    journal, moto_s3, s3_bucket, journal_events, monkeypatch
):
    put_raw(moto_s3, s3_bucket, GARBAGE, b"{ not a record")
    real_read = S3Journal._read

    def read_then_moved(self: S3Journal, ref: str) -> bytes:
        data = real_read(self, ref)
        moto_s3.delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{ref}")
        return data

    monkeypatch.setattr(S3Journal, "_read", read_then_moved)
    assert journal.records(D1) == []
    assert journal.quarantined == [] and journal_events.of(EventKind.QUARANTINE) == []
    assert keys(moto_s3, s3_bucket) == []


# -- quarantine ------------------------------------------------------------------------------


def test_a_second_bad_object_of_the_same_name_is_kept_beside_the_first(journal, moto_s3, s3_bucket):
    """D3: quarantine never overwrites: a later, different bad object of the same name gets
    its own copy, and both sets of bytes are kept."""
    put_raw(moto_s3, s3_bucket, GARBAGE, b"first")
    assert journal.records(D1) == []
    put_raw(moto_s3, s3_bucket, GARBAGE, b"second")
    assert journal.records(D1) == []

    kept = keys(moto_s3, s3_bucket, f"{PREFIX}/quarantine/")
    assert len(kept) == 2 and kept[0].endswith("-garbage.json")
    bodies = sorted(moto_s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in kept)
    assert bodies == [b"first", b"second"]
    assert keys(moto_s3, s3_bucket, f"{FOLDER}/") == []


def test_a_quarantine_that_cannot_look_at_the_object_leaves_it_and_says_so(
    journal, fault_proxy, moto_s3, s3_bucket, journal_events
):
    """D3: HeadObject denied: nothing is copied or deleted, the object is excluded from the
    read, and the alert says it could not be quarantined."""
    put_raw(moto_s3, s3_bucket, GARBAGE, b"{ truncated")
    fault_proxy.inject("HeadObject", "access_denied")

    assert journal.records(D1) == []
    (message,) = journal_events.of(EventKind.QUARANTINE)
    assert "could NOT be quarantined" in message and "AccessDenied" in message
    assert keys(moto_s3, s3_bucket) == [GARBAGE]
    assert fault_proxy.requests("CopyObject") == [] and fault_proxy.requests("DeleteObject") == []
