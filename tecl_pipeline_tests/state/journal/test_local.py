"""The local (file://) journal: the same promises as S3 where they apply, and its rarer
paths: races with other readers and writers, a key that is already taken, and file-system
failures while listing, reading and quarantining."""

import errno
import json
import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import tecl_pipeline.state.journal.local as local_journal_module
from tecl_pipeline.adapters.journal_store import open_journal
from tecl_pipeline.common.events import Event, EventKind
from tecl_pipeline.core.errors import RefusedToTrade
from tecl_pipeline.state.errors import (
    JournalConflictError,
    JournalUnavailableError,
    JournalWriteError,
)
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.state.journal.records import (
    SessionRecord,
    encode_record,
    record_basis,
    record_name,
)
from tecl_pipeline.state.journal.spool import Spool
from tecl_pipeline_tests.adapters.aws.moto_fixtures import session_record

D1 = date(2024, 3, 4)
D2 = date(2024, 3, 5)
D3 = date(2024, 3, 6)


def spooled(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.glob("*.json")) if spool_dir.is_dir() else []


def session_files(root: Path, session: date) -> list[str]:
    folder = root / "sessions" / session.isoformat()
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_runs_read_each_others_records_across_sessions(root, spool_dir):
    """D5: records written by one store are read by a fresh one (a later run) as the
    latest before the next session; days without records are skipped."""
    first = open_journal(root.as_uri(), spool_dir=spool_dir)
    first.preflight()
    record_1 = session_record(D1, "run-a")
    where = first.append(record_1)
    assert Path(where) == root / "sessions" / "2024-03-04" / "20240304T210000000000Z-run-a.json"
    assert first.location == root.as_uri()

    second = open_journal(root.as_uri(), spool_dir=spool_dir)
    assert second.latest_before(D3) == record_1
    assert second.latest_before(D1) is None
    record_3 = session_record(D3, "run-b")
    second.append(record_3)
    assert open_journal(root.as_uri(), spool_dir=spool_dir).latest_before(D3 + timedelta(1)) == (
        record_3
    )


def test_history_is_the_last_record_of_each_session_oldest_first(journal, root):
    """What `tecl status` and live_performance read: one record per session (a re-run's
    later record wins), sessions in date order whatever order they were written in."""
    assert journal.history() == []
    later = session_record(D3, "run-c")
    journal.append(later)
    first = session_record(D1, "run-a")
    journal.append(first)
    retry = session_record(D1, "run-b", written_at=first.written_at + timedelta(minutes=5))
    journal.append(retry)
    (root / "sessions" / "not-a-day").mkdir()
    assert journal.history() == [retry, later]


def test_the_legacy_constructor_still_works(root):
    """D5: LocalJournal(root), as the Dagster layer builds it today, reads and writes."""
    journal = LocalJournal(root)
    record = session_record(D1)
    assert Path(journal.append(record)).is_file()
    assert journal.records(D1) == [record]
    assert journal.latest(D1) == record
    assert isinstance(journal, JournalStore)


def test_same_name_twice_is_a_conflict_and_the_original_stays(journal, root, spool_dir):
    """D2, X5: link() refuses to replace: a different record under the same name is a
    JournalConflictError (spooled, not lost); the original is byte-for-byte intact."""
    original = session_record(D1, "run-a")
    where = Path(journal.append(original))
    with pytest.raises(JournalConflictError) as caught:
        journal.append(session_record(D1, "run-a", reason="stale"))
    assert str(where) in str(caught.value)
    assert where.read_bytes() == encode_record(original)
    assert len(spooled(spool_dir)) == 1
    assert journal.append(original) == str(where)  # identical: idempotent, no error


def test_failure_mid_write_leaves_nothing_visible_and_spools(
    journal, root, spool_dir, journal_events, monkeypatch
):
    """D1: the disk fails while the record is being written (fsync: ENOSPC): no file,
    whole or partial, appears under sessions/, no temporary is left behind, the record is
    spooled, JournalWriteError names the path and ENOSPC; the replay writes it."""
    real_fsync = os.fsync
    failures = iter([True])

    def failing_fsync(fd: int) -> None:
        if next(failures, False):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    record = session_record(D1, "run-a")
    with pytest.raises(JournalWriteError) as caught:
        journal.append(record)

    assert caught.value.code == "ENOSPC"
    assert str(root / "sessions" / "2024-03-04") in str(caught.value)
    assert session_files(root, D1) == []
    assert journal.records(D1) == []
    assert len(spooled(spool_dir)) == 1 and journal_events.of(EventKind.SPOOLED)
    assert journal.replay_spool() == 1
    assert journal.records(D1) == [record]
    assert spooled(spool_dir) == []


def test_a_crashed_writers_temporary_is_never_read(journal, root):
    """D1: a temporary left by a writer killed mid-write is not a record."""
    record = session_record(D1)
    journal.append(record)
    folder = root / "sessions" / "2024-03-04"
    (folder / ".20240304T220000000000Z-dead.json.0123abcd.tmp").write_bytes(b'{"half": ')
    assert journal.records(D1) == [record]
    assert journal.quarantined == []


def test_verify_after_write_catches_a_bad_read_back(journal, spool_dir, monkeypatch):
    """D1: when the record does not read back as written, the write is not trusted:
    JournalWriteError (ReadBackMismatch), spooled; the replay verifies and succeeds."""
    real_read = LocalJournal._read
    corrupt = iter([True])

    def flaky_read(self: LocalJournal, ref: str) -> bytes:
        data = real_read(self, ref)
        return data[:-3] if next(corrupt, False) else data

    monkeypatch.setattr(LocalJournal, "_read", flaky_read)
    record = session_record(D1)
    with pytest.raises(JournalWriteError) as caught:
        journal.append(record)
    assert caught.value.code == "ReadBackMismatch"
    assert journal.replay_spool() == 1
    assert journal.records(D1) == [record]


def test_corrupted_files_are_quarantined_and_reads_go_on(journal, root, journal_events):
    """D3: garbage, a schema failure and a misfiled record are moved (link, then unlink)
    to <root>/quarantine/sessions/..., byte-for-byte, excluded, listed and reported."""
    good = session_record(D1, "run-a")
    journal.append(good)
    folder = root / "sessions" / "2024-03-04"
    bad = {
        "20240304T220000000000Z-garbage.json": b"\x00\xff{{{",
        "20240304T220100000000Z-schema.json": json.dumps({"schema_version": 1}).encode(),
        "20240304T220200000000Z-misfiled.json": encode_record(session_record(D2)),
    }
    for name, body in bad.items():
        (folder / name).write_bytes(body)

    assert journal.records(D1) == [good]

    assert sorted(journal.quarantined) == sorted(str(folder / name) for name in bad)
    assert len(journal_events.of(EventKind.QUARANTINE)) == 3
    for name, body in bad.items():
        assert (root / "quarantine" / "sessions" / "2024-03-04" / name).read_bytes() == body
    assert session_files(root, D1) == ["20240304T210000000000Z-run-a.json"]
    assert journal.latest(D1) == good
    assert len(journal_events.of(EventKind.QUARANTINE)) == 3


def test_a_second_bad_file_of_the_same_name_does_not_replace_the_first(journal, root):
    """D3: quarantine never overwrites: a later bad file of the same name is kept too."""
    folder = root / "sessions" / "2024-03-04"
    folder.mkdir(parents=True)
    name = "20240304T220000000000Z-garbage.json"
    (folder / name).write_bytes(b"first")
    journal.records(D1)
    (folder / name).write_bytes(b"second")
    journal.records(D1)
    kept = sorted(
        p.read_bytes() for p in (root / "quarantine" / "sessions" / "2024-03-04").iterdir()
    )
    assert kept == [b"first", b"second"]


def test_a_record_from_a_newer_schema_stops_trading(journal, root):
    """D3: a newer pipeline's record is refused (upgrade first), not quarantined."""
    folder = root / "sessions" / "2024-03-04"
    folder.mkdir(parents=True)
    raw = json.loads(encode_record(session_record(D1)))
    (folder / "x.json").write_text(json.dumps({**raw, "schema_version": 3}))
    with pytest.raises(JournalUnavailableError, match="newer"):
        journal.latest_before(D2)
    assert (folder / "x.json").exists()


def test_a_record_of_the_first_schema_still_reads_without_prices(journal, root):
    """D5 across an upgrade: a version-1 record (no prices, no residuals) written before is
    read, not quarantined, and is the previous session of the next run."""
    folder = root / "sessions" / "2024-03-04"
    folder.mkdir(parents=True)
    raw = json.loads(encode_record(session_record(D1)))
    for added in ("prices", "residuals", "first_session", "first_equity", "peak_equity"):
        del raw[added]
    (folder / "20240304T210000000000Z-old.json").write_text(
        json.dumps({**raw, "schema_version": 1})
    )
    record = journal.latest_before(D2)
    assert record is not None and record.schema_version == 1
    assert record.prices == {} and record.residuals == {}
    assert record_basis(record) is None
    assert record.positions == session_record(D1).positions
    assert journal.quarantined == []


def test_a_first_schema_record_spooled_before_an_upgrade_replays_byte_for_byte(
    root, spool_dir, journal_events
):
    """D1 across an upgrade: a version-1 record spooled by the old pipeline, whose write had
    in fact landed, replays as the same bytes: no false conflict, and no field a version-1
    host would reject (it forbids unknown ones, and would quarantine the record)."""
    old = session_record(D1, "before-upgrade").model_copy(update={"schema_version": 1})
    landed = encode_record(old)
    assert set(json.loads(landed)) == set(SessionRecord.model_fields) - {
        "prices",
        "residuals",
        "first_session",
        "first_equity",
        "peak_equity",
    }
    folder = root / "sessions" / D1.isoformat()
    folder.mkdir(parents=True)
    (folder / record_name(old)).write_bytes(landed)
    Spool(spool_dir).add(root.as_uri(), old, "the answer was lost")

    journal = open_journal(root.as_uri(), spool_dir=spool_dir, on_event=journal_events)
    assert journal.replay_spool() == 1
    assert [p.read_bytes() for p in folder.iterdir()] == [landed]
    assert journal_events.of(EventKind.SPOOL_CONFLICT) == []


def test_what_a_run_trades_on_is_judged_whole_even_behind_a_newer_good_record(
    journal, root, journal_events
):
    """D3: the previous session's record is read with every object of the session, not
    only the newest: garbage written before a re-run's good record is still quarantined and
    alerted, and a newer pipeline's record anywhere in it still stops the run."""
    first = session_record(D1, "run-a")
    journal.append(first)
    folder = root / "sessions" / D1.isoformat()
    garbage = folder / "20240304T210100000000Z-garbage.json"
    garbage.write_text("not a record")
    rerun = session_record(D1, "run-b", written_at=first.written_at + timedelta(minutes=5))
    journal.append(rerun)

    assert journal.latest_before(D2) == rerun
    assert not garbage.exists() and journal_events.of(EventKind.QUARANTINE)

    raw = json.loads(encode_record(first))
    (folder / "20240304T210200000000Z-newer.json").write_text(
        json.dumps({**raw, "run_id": "newer", "schema_version": 3})
    )
    late = session_record(D1, "run-c", written_at=first.written_at + timedelta(minutes=9))
    journal.append(late)
    with pytest.raises(JournalUnavailableError, match="newer"):
        journal.latest_before(D2)


def test_a_reader_opened_read_only_moves_nothing_and_names_what_it_skipped(root, spool_dir):
    """`tecl status` reads: an invalid object stays for the next run to quarantine and alert
    on; writing through such a reader is refused."""
    writer = open_journal(root.as_uri(), spool_dir=spool_dir)
    good = session_record(D1)
    writer.append(good)
    bad = root / "sessions" / D2.isoformat() / "20240305T210000000000Z-x.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("not a record")

    reader = open_journal(root.as_uri(), spool_dir=spool_dir, read_only=True)
    assert reader.history() == [good]
    assert bad.exists() and not (root / "quarantine").exists()
    assert list(reader.invalid) == [str(bad)] and "not JSON" in reader.invalid[str(bad)]
    assert reader.quarantined == []
    with pytest.raises(RuntimeError, match="read only"):
        reader.append(session_record(D2))
    with pytest.raises(RuntimeError, match="read only"):
        reader.preflight()  # it writes a probe
    assert not (root / ".preflight").exists() and not spool_dir.exists()


def test_preflight_leaves_no_probe_and_names_an_unusable_root(tmp_path, spool_dir):
    """A4, A9: preflight writes and removes a probe; a root that cannot be a directory
    is a RefusedToTrade naming the path and the OS error."""
    good = tmp_path / "good"
    open_journal(good.as_uri(), spool_dir=spool_dir).preflight()
    assert list(good.iterdir()) == []

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalUnavailableError) as caught:
        open_journal((blocker / "journal").as_uri(), spool_dir=spool_dir).preflight()
    assert isinstance(caught.value, RefusedToTrade)
    assert str(blocker / "journal") in str(caught.value)
    assert caught.value.code in ("ENOTDIR", "EEXIST")


def test_a_journal_that_cannot_be_listed_refuses_to_trade(journal, monkeypatch):
    """A4: an unreadable journal is a refusal naming the folder, never an empty history."""
    journal.append(session_record(D1))

    def denied(self: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(JournalUnavailableError) as caught:
        journal.latest_before(D2)
    assert caught.value.code == "EACCES"


def test_a_failing_event_sink_never_fails_the_journal(root, spool_dir, capsys):
    """C5, D3: the alert path raising does not turn a quarantine into a crash; the event
    still reaches stderr."""

    def broken_sink(event: Event) -> None:
        raise RuntimeError("alert sink down")

    journal = open_journal(root.as_uri(), spool_dir=spool_dir, on_event=broken_sink)
    folder = root / "sessions" / "2024-03-04"
    folder.mkdir(parents=True)
    (folder / "bad.json").write_bytes(b"nope")
    assert journal.records(D1) == []
    assert "quarantine" in capsys.readouterr().err


def test_without_a_spool_a_failed_write_says_it_was_not_kept(root, monkeypatch):
    """D1: the legacy LocalJournal(root) has no spool; its error says so plainly."""

    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "link", no_link)
    with pytest.raises(JournalWriteError, match="NOT spooled") as caught:
        LocalJournal(root).append(session_record(D1))
    assert caught.value.spool_path is None and caught.value.code == "EROFS"


def test_store_protocol_is_met(journal: JournalStore):
    """The file back end meets JournalStore, checked at runtime."""
    assert isinstance(journal, JournalStore)
    assert journal.quarantined == []


def key_path(root: Path, record) -> Path:
    """Where `record` goes below `root`: the key a create-only write must find free."""
    return root / "sessions" / record.session.isoformat() / record_name(record)


def newer_schema(record) -> bytes:
    raw = json.loads(encode_record(record))
    return json.dumps({**raw, "schema_version": 99}).encode()


# -- races with other readers ------------------------------------------------------------


def test_a_record_removed_between_listing_and_reading_is_skipped(journal, root, monkeypatch):
    """D3: another reader may move a file after this one listed it: nothing to read,
    nothing wrong; the other records are still returned and nothing is quarantined."""
    first, second = session_record(D1, "run-a"), session_record(D1, "run-b")
    journal.append(first)
    journal.append(second)
    real_refs = LocalJournal._session_refs

    def listed_then_moved(self: LocalJournal, session):
        refs = real_refs(self, session)
        (root / refs[1][0]).unlink()
        return refs

    monkeypatch.setattr(LocalJournal, "_session_refs", listed_then_moved)
    assert journal.records(D1) == [first]
    assert journal.quarantined == []


def test_a_bad_file_quarantined_by_another_reader_is_neither_kept_nor_reported(
    journal, root, journal_events, monkeypatch
):
    """D3: the bad file is gone by the time this reader would quarantine it (another
    reader did): excluded, no quarantine of ours, no alert."""
    folder = root / "sessions" / D1.isoformat()
    folder.mkdir(parents=True)
    (folder / "20240304T220000000000Z-garbage.json").write_bytes(b"\x00 not json")
    real_read = LocalJournal._read

    def read_then_moved(self: LocalJournal, ref: str) -> bytes:
        data = real_read(self, ref)
        (root / ref).unlink()
        return data

    monkeypatch.setattr(LocalJournal, "_read", read_then_moved)
    assert journal.records(D1) == []
    assert journal.quarantined == []
    assert journal_events.of(EventKind.QUARANTINE) == []
    assert not (root / "quarantine").exists() or not any((root / "quarantine").rglob("*.json"))


def test_a_file_that_cannot_be_removed_after_quarantine_is_reported_once(
    journal, root, journal_events, monkeypatch
):
    """D3: the copy under quarantine/ is made; when the original cannot be removed the
    alert says so, the file is still excluded from reads, and a second read does not
    alert again."""
    folder = root / "sessions" / D1.isoformat()
    folder.mkdir(parents=True)
    bad = folder / "20240304T220000000000Z-garbage.json"
    bad.write_bytes(b"{{{")
    real_unlink = Path.unlink

    def stuck(self: Path, missing_ok: bool = False) -> None:
        if self == bad:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", stuck)
    assert journal.records(D1) == []
    assert journal.records(D1) == []

    (message,) = journal_events.of(EventKind.QUARANTINE)
    assert "could not be removed" in message and "Permission denied" in message
    assert journal.quarantined == [str(bad)]
    assert (root / "quarantine" / "sessions" / D1.isoformat() / bad.name).read_bytes() == b"{{{"
    assert bad.exists()


def test_folders_under_sessions_that_are_not_dates_are_ignored(journal, root):
    """D5: a stray folder (notes, a backup) is not a session and breaks nothing."""
    record = session_record(D1)
    journal.append(record)
    (root / "sessions" / "notes").mkdir()
    (root / "sessions" / "2024-13-45").mkdir()
    assert journal.latest_before(D2) == record


# -- a key that is already taken -----------------------------------------------------------


def test_garbage_on_the_records_key_is_quarantined_and_the_record_written(
    journal, root, journal_events
):
    """D1, D3: garbage squatting on the key is not a record to protect: it is kept under
    quarantine/ and the record is written and verified."""
    record = session_record(D1)
    target = key_path(root, record)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"half a record {")

    assert Path(journal.append(record)) == target
    assert target.read_bytes() == encode_record(record)
    assert journal.records(D1) == [record]
    assert len(journal_events.of(EventKind.QUARANTINE)) == 1
    kept = root / "quarantine" / "sessions" / D1.isoformat() / target.name
    assert kept.read_bytes() == b"half a record {"


def test_a_newer_schema_record_on_the_key_is_a_conflict_and_stays(journal, root, spool_dir):
    """X5: a record of a newer pipeline holds the key: never overwritten nor quarantined;
    ours is refused as a conflict and spooled, not lost."""
    record = session_record(D1)
    target = key_path(root, record)
    target.parent.mkdir(parents=True)
    theirs = newer_schema(record)
    target.write_bytes(theirs)

    with pytest.raises(JournalConflictError) as caught:
        journal.append(record)
    assert caught.value.code == "PreconditionFailed"
    assert caught.value.spool_path is not None and Path(caught.value.spool_path).is_file()
    assert target.read_bytes() == theirs


def test_a_writer_that_takes_the_key_after_the_quarantine_wins(journal, root, monkeypatch):
    """X5: between quarantining the garbage and writing, another writer took the key:
    its record stays, ours is a conflict."""
    record = session_record(D1)
    theirs = encode_record(session_record(D1, reason="another run's reason"))
    target = key_path(root, record)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"garbage")
    real_quarantine = LocalJournal._quarantine

    def quarantine_then_taken(self: LocalJournal, ref: str):
        moved = real_quarantine(self, ref)
        (root / ref).write_bytes(theirs)
        return moved

    monkeypatch.setattr(LocalJournal, "_quarantine", quarantine_then_taken)
    with pytest.raises(JournalConflictError):
        journal.append(record)
    assert target.read_bytes() == theirs


def _vanish_on_first_read(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """The journal's next read finds its object deleted just before (another reader)."""
    real_read = LocalJournal._read
    vanish = iter([True])

    def vanished(self: LocalJournal, ref: str) -> bytes:
        if next(vanish, False):
            (root / ref).unlink()
        return real_read(self, ref)

    monkeypatch.setattr(LocalJournal, "_read", vanished)


def test_a_squatter_gone_before_it_is_read_frees_the_key(journal, root, monkeypatch):
    """D1: the object on the key vanished (another reader quarantined it) before it could
    be compared: the key is free again, and the record is written there."""
    record = session_record(D1)
    target = key_path(root, record)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"garbage")
    _vanish_on_first_read(monkeypatch, root)
    assert Path(journal.append(record)) == target
    assert target.read_bytes() == encode_record(record)


def test_a_record_that_vanishes_right_after_its_write_is_not_trusted(
    journal, root, spool_dir, monkeypatch
):
    """D1: the verifying read finds nothing: the write is not confirmed, the record is
    spooled (ReadBackMismatch), and the replay writes it."""
    record = session_record(D1)
    _vanish_on_first_read(monkeypatch, root)
    with pytest.raises(JournalWriteError) as caught:
        journal.append(record)
    assert caught.value.code == "ReadBackMismatch"
    assert journal.records(D1) == []
    assert journal.replay_spool() == 1
    assert journal.records(D1) == [record]


# -- file-system failures ------------------------------------------------------------------


def test_a_session_folder_that_cannot_be_listed_refuses_to_trade(journal, monkeypatch):
    """A4: failing to list a session's folder is a refusal naming it, never 'no records'."""
    journal.append(session_record(D1))

    def denied(self: Path, pattern: str):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "glob", denied)
    with pytest.raises(JournalUnavailableError) as caught:
        journal.records(D1)
    assert caught.value.code == "EACCES" and caught.value.action == "list"
    assert D1.isoformat() in caught.value.resource


def test_a_record_that_cannot_be_read_refuses_to_trade(journal, root, monkeypatch):
    """A4: an I/O error reading a record is a refusal naming the file and EIO."""
    record = session_record(D1)
    journal.append(record)
    real_open = open

    def failing_open(path, *args, **kwargs):
        if Path(path).parent.name == D1.isoformat():
            raise OSError(errno.EIO, "Input/output error")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(local_journal_module, "open", failing_open, raising=False)
    with pytest.raises(JournalUnavailableError) as caught:
        journal.latest(D1)
    assert caught.value.code == "EIO" and caught.value.action == "read"
    assert caught.value.resource == str(key_path(root, record))


def test_preflight_refuses_when_the_probe_reads_back_differently(root, spool_dir, monkeypatch):
    """A4, A9: a journal folder that does not return what was written is not usable."""
    real_read_bytes = Path.read_bytes

    def garbled(self: Path) -> bytes:
        data = real_read_bytes(self)
        return data[::-1] if self.name.startswith(".preflight-") else data

    monkeypatch.setattr(Path, "read_bytes", garbled)
    with pytest.raises(JournalUnavailableError) as caught:
        open_journal(root.as_uri(), spool_dir=spool_dir).preflight()
    assert caught.value.code == "EIO"
    assert [p.name for p in root.iterdir()] == []  # the probe did not stay behind


def test_a_journal_without_a_spool_has_nothing_to_replay(root):
    """D1: the legacy LocalJournal(root) has no spool: replay is a no-op, not an error."""
    assert LocalJournal(root).replay_spool() == 0
    assert not os.path.exists(root)


@pytest.mark.parametrize(
    "basis",
    [
        {"first_session": D2},  # after the record's own session
        {"first_equity": Decimal("-5")},
        {"peak_equity": Decimal("50")},  # below the record's own equity
    ],
)
def test_a_basis_that_cannot_be_right_is_not_used(basis):
    """The figures then come from the journal itself rather than from a wrong base."""
    good = session_record(D1).model_copy(
        update={
            "first_session": D1,
            "first_equity": Decimal("10000"),
            "peak_equity": Decimal("10012.34"),
        }
    )
    assert record_basis(good) is not None
    assert record_basis(good.model_copy(update=basis)) is None
