"""What both back ends share: choosing one from the state URI, the error classes, and the
local spool of records whose write failed (D1, X7)."""

import stat
from datetime import date, timedelta
from pathlib import Path

import pytest

from tecl_pipeline.adapters.aws.s3_journal import S3Journal
from tecl_pipeline.adapters.journal_store import open_journal
from tecl_pipeline.common.events import EventKind, Severity
from tecl_pipeline.config.settings import ConfigError
from tecl_pipeline.core.errors import RefusedToTrade
from tecl_pipeline.state.errors import (
    JournalConflictError,
    JournalError,
    JournalUnavailableError,
    JournalWriteError,
)
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.state.journal.spool import Spool
from tecl_pipeline_tests.adapters.aws.moto_fixtures import Events, session_record

D1 = date(2024, 3, 4)


@pytest.mark.parametrize(
    ("uri", "location"),
    [
        ("s3://journal-bucket/tecl/paper/", "s3://journal-bucket/tecl/paper"),
        ("s3://journal-bucket", "s3://journal-bucket"),
    ],
)
def test_s3_uris_open_an_s3_journal_without_network(uri, location, tmp_path):
    """A1: opening does no I/O (the client is not even touched); preflight does."""
    journal = open_journal(uri, spool_dir=tmp_path, s3_client=object())
    assert isinstance(journal, S3Journal) and isinstance(journal, JournalStore)
    assert journal.location == location


def test_file_uris_open_a_local_journal(tmp_path):
    journal = open_journal((tmp_path / "j").as_uri(), spool_dir=tmp_path / "spool")
    assert isinstance(journal, LocalJournal)
    assert journal.location == (tmp_path / "j").as_uri()


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/journal",
        "s3://",
        "s3://Not_A_Bucket/prefix",
        "file://relative/path",
        "file:///tmp/x?versioned=1",
        "journal",
    ],
)
def test_malformed_state_uris_fail_at_load_naming_the_key(uri, tmp_path):
    """C4: a bad state URI is a ConfigError naming state_uri, before anything runs."""
    with pytest.raises(ConfigError, match="state_uri"):
        open_journal(uri, spool_dir=tmp_path)


def test_a_state_uri_with_credentials_is_refused_without_echoing_them(tmp_path):
    """S2: user info in the URI is refused, and the message does not repeat it."""
    with pytest.raises(ConfigError) as caught:
        open_journal("s3://AKID:hunter2-secret@journal-bucket/p", spool_dir=tmp_path)
    assert "hunter2-secret" not in str(caught.value)


def test_error_classes_say_whether_the_run_may_trade():
    """A4, A5, A9: unavailability (before trading) is a refusal; a failed write (after the
    orders) is a plain error, and a conflict is a kind of failed write."""
    assert issubclass(JournalUnavailableError, RefusedToTrade)
    assert issubclass(JournalUnavailableError, JournalError)
    assert not issubclass(JournalWriteError, RefusedToTrade)
    assert issubclass(JournalConflictError, JournalWriteError)
    error = JournalWriteError("m", action="s3:PutObject", resource="s3://b/k", code="AccessDenied")
    assert (error.action, error.resource, error.code, error.spool_path) == (
        "s3:PutObject",
        "s3://b/k",
        "AccessDenied",
        None,
    )


def test_spool_is_capped_in_bytes_and_drops_the_oldest(tmp_path):
    """X7: over the byte cap the oldest entries go, each with a spool_dropped event."""
    journal_events = Events()
    record = session_record(D1, "run-0")
    one_entry = len(
        Spool(tmp_path / "probe").add("file:///x", record, "e").read_bytes()  # size of one
    )
    spool = Spool(tmp_path / "spool", max_bytes=2 * one_entry + 10, on_event=journal_events)
    paths = [
        spool.add("file:///x", session_record(D1 + timedelta(days=i), f"run-{i}"), "e")
        for i in range(4)
    ]
    assert sorted((tmp_path / "spool").glob("*.json")) == paths[2:]
    assert len(journal_events.of(EventKind.SPOOL_DROPPED)) == 2


def test_spool_files_are_private(tmp_path):
    """S5: spooled records (positions, cash) are readable by their owner only."""
    path = Spool(tmp_path / "spool").add("file:///x", session_record(D1), "e")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700


def test_an_unreadable_spool_file_is_set_aside_not_lost(tmp_path):
    """D1, D3: a damaged spool file does not stop the replay of the others; it is moved
    to spool/quarantine with an event."""
    journal_events = Events()
    journal = open_journal(
        (tmp_path / "j").as_uri(), spool_dir=tmp_path / "spool", on_event=journal_events
    )
    spool = Spool(tmp_path / "spool")
    record = session_record(D1)
    spool.add(journal.location, record, "earlier failure")
    (tmp_path / "spool" / "00000000T000000000000Z-garbage.json").write_text("{ torn")

    assert journal.replay_spool() == 1
    assert journal.records(D1) == [record]
    assert (tmp_path / "spool" / "quarantine" / "00000000T000000000000Z-garbage.json").exists()
    assert journal_events.of(EventKind.QUARANTINE)


def test_replay_only_takes_entries_for_its_own_journal(tmp_path):
    """D1: one spool directory shared by two journals: each replays only its own."""
    spool_dir = tmp_path / "spool"
    mine = open_journal((tmp_path / "mine").as_uri(), spool_dir=spool_dir)
    Spool(spool_dir).add("s3://other-bucket/p", session_record(D1, "theirs"), "e")
    Spool(spool_dir).add(mine.location, session_record(D1, "mine"), "e")

    assert mine.replay_spool() == 1
    assert [r.run_id for r in mine.records(D1)] == ["mine"]
    [left] = spool_dir.glob("*.json")
    assert "theirs" in left.name


def test_a_spool_that_cannot_be_written_is_said_plainly(tmp_path, monkeypatch):
    """D1: if even the spool fails, the error says the record could not be kept."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    journal = open_journal((tmp_path / "j").as_uri(), spool_dir=blocker / "spool")
    monkeypatch.setattr(LocalJournal, "_create", _fail_create)
    with pytest.raises(JournalWriteError, match="could NOT be spooled") as caught:
        journal.append(session_record(D1))
    assert caught.value.spool_path is None


def _fail_create(self: LocalJournal, ref: str, data: bytes) -> None:
    raise OSError(5, "Input/output error")


def test_journal_events_carry_kind_severity_and_the_record_session(tmp_path, monkeypatch):
    """D1: a failed write is a critical `spooled` event and its later replay an info
    `replayed` one, both from the journal and naming the record's session: the alert path
    acts on kind and severity, never on the wording of the message."""
    journal_events = Events()
    journal = open_journal(
        (tmp_path / "j").as_uri(), spool_dir=tmp_path / "spool", on_event=journal_events
    )
    record = session_record(D1, "run-typed")
    with monkeypatch.context() as failing:
        failing.setattr(LocalJournal, "_create", _fail_create)
        with pytest.raises(JournalWriteError):
            journal.append(record)
    assert journal.replay_spool() == 1
    assert journal.records(D1) == [record]
    assert [(e.kind, e.severity, e.source, e.session) for e in journal_events.seen] == [
        (EventKind.SPOOLED, Severity.CRITICAL, "journal", D1),
        (EventKind.REPLAYED, Severity.INFO, "journal", D1),
    ]


def test_open_journal_needs_no_spool_directory_to_exist(tmp_path: Path):
    """The spool directory is created on first use, not at open (A1: no I/O at load)."""
    open_journal("s3://journal-bucket/p", spool_dir=tmp_path / "later", s3_client=object())
    assert not (tmp_path / "later").exists()
