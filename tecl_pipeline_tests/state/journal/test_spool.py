"""The local write spool (D1): caps that could never keep a record, the same record
spooled twice in one instant, no spool folder yet, an unreadable spool file that cannot
even be moved aside, and a full disk that takes the spool with the journal: the record
that can be neither written nor spooled is never lost silently; the alert path gets what
it held."""

import errno
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tecl_pipeline.common.events import EventKind
from tecl_pipeline.state.errors import JournalWriteError
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline.state.journal.spool import Spool
from tecl_pipeline_tests.adapters.aws.moto_fixtures import Events, session_record

D1 = date(2024, 3, 4)
LOCATION = "file:///journal"
INSTANT = datetime(2024, 3, 4, 21, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(("files", "size"), [(0, 1000), (10, 0)])
def test_caps_that_could_never_keep_a_record_are_refused(tmp_path, files, size):
    with pytest.raises(ValueError, match="at least 1 file and 1 byte"):
        Spool(tmp_path, max_files=files, max_bytes=size)


def test_the_same_record_spooled_twice_in_one_instant_is_kept_once(tmp_path):
    """D1: a retried spool of the very same entry is not an error and not a second file."""
    spool = Spool(tmp_path / "spool", now=lambda: INSTANT)
    record = session_record(D1)
    first = spool.add(LOCATION, record, "write failed")
    assert spool.add(LOCATION, record, "write failed") == first
    assert [path for path, _ in spool.pending(LOCATION)] == [first]


def test_a_different_entry_under_the_same_name_is_never_overwritten(tmp_path):
    spool = Spool(tmp_path / "spool", now=lambda: INSTANT)
    record = session_record(D1)
    first = spool.add(LOCATION, record, "first error")
    kept = first.read_bytes()
    with pytest.raises(FileExistsError):
        spool.add(LOCATION, record, "another error")
    assert first.read_bytes() == kept


def test_without_a_spool_folder_nothing_is_pending(tmp_path):
    spool = Spool(tmp_path / "never-made")
    assert spool.pending(LOCATION) == []
    assert not (tmp_path / "never-made").exists()


def test_an_unreadable_file_that_cannot_be_moved_aside_is_reported_and_left(tmp_path, monkeypatch):
    """D1, D3: it is not deleted (it may be the only copy of a record), not replayed, and a
    person is told where it is."""
    events = Events()
    folder = tmp_path / "spool"
    folder.mkdir()
    bad = folder / "20240304T210000000000Z-2024-03-04-x.json"
    bad.write_bytes(b"{ not an entry")

    def read_only(src: object, dst: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    assert Spool(folder, on_event=events).pending(LOCATION) == []
    (message,) = events.of(EventKind.QUARANTINE)
    assert str(bad) in message and "Read-only file system" in message and "left in place" in message
    assert bad.read_bytes() == b"{ not an entry"
    assert isinstance(bad, Path)


def test_a_record_neither_written_nor_spooled_is_alerted_with_what_it_held(
    journal: JournalStore, journal_events: Events, monkeypatch: pytest.MonkeyPatch
):
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    record = session_record(D1, "run-full", tecl_qty="7.5")

    with pytest.raises(JournalWriteError, match="could NOT be spooled") as caught:
        journal.append(record)

    assert caught.value.code == "ENOSPC" and caught.value.spool_path is None
    assert journal_events.of(EventKind.SPOOLED) == []
    [lost] = journal_events.of(EventKind.RECORD_LOST)
    assert D1.isoformat() in lost and "run-full" in lost
    assert "No space left on device" in lost and "TECL 7.5" in lost
