"""A full disk takes the spool with the journal (D1): the record that can be neither written
nor spooled is never lost silently; the alert path gets what it held."""

import errno
import os
from datetime import date

import pytest

from tecl_pipeline.common.events import EventKind
from tecl_pipeline.state.errors import JournalWriteError
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline_tests.state.moto_fixtures import Events, session_record

D1 = date(2024, 3, 4)


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
