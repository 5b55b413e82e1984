"""The journal's interface and the rules every store shares (D5).

One validated JSON record per trading run, per session, never overwritten. The broker stays
the source of truth for positions and orders; the journal keeps what the pipeline saw,
decided and did, so the next session (and a person) can read it back.

Stores (`state.journal.local.LocalJournal`, `adapters.aws.s3_journal.S3Journal`) keep the
same layout under their root, `sessions/<YYYY-MM-DD>/<utc stamp>-<run id>.json`, provide
a few primitives (list, read, create-only write, confirm, quarantine) and inherit the rules
from `JournalBase`:

- writes are create-only and verified by reading back (D1, D2, X5); a write that fails for
  any reason is spooled locally and replayed later, never dropped (D1);
- reads are schema-validated; a bad object is quarantined (kept under `quarantine/`,
  excluded from results, reported as an event), and reads go on (D3);
- anything that makes the journal unusable before trading is a JournalUnavailableError,
  a RefusedToTrade (A4, A5, A8, A9).

Which store a state URI means is decided above both, in `adapters.journal_store`.
"""

import errno
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from tecl_pipeline.common.events import Event, EventKind, EventSink, Severity, emit
from tecl_pipeline.state.errors import (
    JournalConflictError,
    JournalUnavailableError,
    JournalWriteError,
)
from tecl_pipeline.state.journal.records import (
    MAX_RECORD_BYTES,
    InvalidRecord,
    NewerSchemaRecord,
    SessionRecord,
    decode_record,
    encode_record,
    record_name,
)
from tecl_pipeline.state.journal.spool import Spool

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


@runtime_checkable
class JournalStore(Protocol):
    location: str
    """Where the journal lives, for people: "file:///…" or "s3://bucket/prefix"."""
    quarantined: list[str]
    """What reads of this instance quarantined (D3), for the alert."""
    invalid: dict[str, str]
    """Read-only: the invalid objects reads skipped without moving them, and why."""

    def preflight(self) -> None:
        """Raise JournalUnavailableError (naming action, resource, cause) unless the journal
        can be read and written now. Call before trading (A4, A5, A8, A9)."""

    def append(self, record: SessionRecord) -> str:
        """Write the record create-only and verify it; return where it is. On failure the
        record is spooled and JournalWriteError (or JournalConflictError) raised (D1, X5)."""
        ...

    def records(self, session: date) -> list[SessionRecord]: ...

    def latest(self, session: date) -> SessionRecord | None: ...

    def latest_before(self, session: date) -> SessionRecord | None: ...

    def history(self) -> list[SessionRecord]:
        """The last valid record of every session that has one, oldest session first,
        read newest first (one read per session): what it does not read, a run reading the
        session whole still judges."""
        ...

    def replay_spool(self) -> int:
        """Write the records spooled for this journal; return how many were written."""
        ...


class StoreFailed(Exception):
    """A back end's operation failed; the base decides what that means (refuse or spool)."""

    def __init__(self, action: str, resource: str, code: str, detail: str) -> None:
        super().__init__(f"{action} on {resource} failed: {code} ({detail})")
        self.action = action
        self.resource = resource
        self.code = code
        self.detail = detail


class RecordExists(Exception):
    """The create-only write found its target already present."""


class RecordMissing(Exception):
    """The object went away between listing and reading (e.g. another reader quarantined
    it): nothing to read, nothing wrong."""


def _ref(record: SessionRecord) -> str:
    """The record's path below the journal root, the same for every back end."""
    return f"sessions/{record.session.isoformat()}/{record_name(record)}"


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


class JournalBase(ABC):
    location: str

    def __init__(
        self, spool: Spool | None, on_event: EventSink | None, *, read_only: bool = False
    ) -> None:
        self._spool = spool
        self._on_event = on_event
        # A reader that is not a run (`tecl status`) must change nothing: an invalid object
        # stays where it is, for the next run to quarantine and alert on.
        self._read_only = read_only
        self.quarantined: list[str] = []
        self.invalid: dict[str, str] = {}
        self._reported: dict[str, str] = {}

    # -- what each back end provides ---------------------------------------------------

    @abstractmethod
    def preflight(self) -> None: ...

    @abstractmethod
    def _where(self, ref: str) -> str:
        """Where `ref` lives, for messages and for `append`'s answer."""

    @abstractmethod
    def _session_days(self) -> list[date]: ...

    @abstractmethod
    def _session_refs(self, session: date) -> list[tuple[str, int | None]]:
        """The session's record refs with their sizes (None if unknown), in name order."""

    def _all_session_refs(self) -> dict[date, list[tuple[str, int | None]]]:
        """Every session's refs, as `_session_refs` gives them; a store that can list them
        all at once (one paged S3 listing) does better than a listing per session."""
        return {day: self._session_refs(day) for day in self._session_days()}

    @abstractmethod
    def _read(self, ref: str) -> bytes:
        """At most MAX_RECORD_BYTES + 1 bytes of `ref`; raises RecordMissing or StoreFailed."""

    @abstractmethod
    def _create(self, ref: str, data: bytes) -> None:
        """Write `data` at `ref` whole or not at all, only if absent; raises RecordExists."""

    @abstractmethod
    def _confirm(self, ref: str, data: bytes) -> None:
        """Raise StoreFailed unless `ref` now reads back exactly as `data` (D1)."""

    @abstractmethod
    def _quarantine(self, ref: str) -> tuple[str, str | None]:
        """Copy `ref` under quarantine/, then remove the original: (copy's location,
        why the original could not be removed or None). Raises if it cannot copy."""

    # -- the shared rules --------------------------------------------------------------

    def append(self, record: SessionRecord) -> str:
        self._writable()
        ref = _ref(record)
        data = encode_record(record)
        try:
            self._store(ref, data, record.session)
        except JournalConflictError as exc:
            note, path = self._spool_record(record, str(exc))
            raise JournalConflictError(
                f"{exc}; this record {note}",
                action=exc.action,
                resource=exc.resource,
                code=exc.code,
                spool_path=path,
            ) from None
        except StoreFailed as exc:
            note, path = self._spool_record(record, str(exc))
            raise JournalWriteError(
                f"journal write failed: {exc}; the record {note}",
                action=exc.action,
                resource=exc.resource,
                code=exc.code,
                spool_path=path,
            ) from exc
        except Exception as exc:
            # Anything else mid-write (a bug, an unexpected library error): the record
            # still must not be lost.
            note, path = self._spool_record(record, repr(exc))
            raise JournalWriteError(
                f"journal write to {self._where(ref)} failed: {type(exc).__name__}: {exc}; "
                f"the record {note}",
                action="append",
                resource=self._where(ref),
                code=type(exc).__name__,
                spool_path=path,
            ) from exc
        return self._where(ref)

    def records(self, session: date) -> list[SessionRecord]:
        refs = self._reading(lambda: self._session_refs(session))
        return [r for ref, size in refs if (r := self._record_at(ref, size, session))]

    def latest(self, session: date) -> SessionRecord | None:
        # Every record of the session, not only the newest: this is what a run trades on,
        # so a bad object anywhere in it is quarantined and alerted (D3), and a newer
        # pipeline's record anywhere in it stops the run.
        records = self.records(session)
        return records[-1] if records else None

    def _newest(self, refs: list[tuple[str, int | None]], session: date) -> SessionRecord | None:
        """The last valid record of `refs` (name order is write order), reading from the
        newest back: normally one read, however often the session was run. For the whole
        history's readers (figures, status); `latest` is the one runs trade on."""
        for ref, size in reversed(refs):
            if record := self._record_at(ref, size, session):
                return record
        return None

    def _record_at(self, ref: str, size: int | None, session: date) -> SessionRecord | None:
        """The record at `ref`; None for one that is gone or invalid (set aside, D3)."""
        if size is not None and size > MAX_RECORD_BYTES:
            self._set_aside(ref, f"{size} bytes, more than a record can be", session)
            return None
        try:
            data = self._reading(lambda: self._read(ref))
        except RecordMissing:
            return None
        try:
            return decode_record(data, session=session)
        except InvalidRecord as exc:
            self._set_aside(ref, str(exc), session)
            return None
        except NewerSchemaRecord as exc:
            # Not ours to judge: a newer deployment wrote it. Quarantining it would hide
            # it from that deployment; reading past it would trade on a partial view.
            raise JournalUnavailableError(
                f"journal record {self._where(ref)} has {exc}; upgrade the pipeline "
                "before trading on this journal",
                action="read",
                resource=self._where(ref),
                code="UnsupportedSchemaVersion",
            ) from None

    def latest_before(self, session: date) -> SessionRecord | None:
        """The last record of the most recent earlier session that has one."""
        earlier = sorted(d for d in self._reading(self._session_days) if d < session)
        for day in reversed(earlier):
            if record := self.latest(day):
                return record
        return None

    def history(self) -> list[SessionRecord]:
        refs = self._reading(self._all_session_refs)
        return [r for day in sorted(refs) if (r := self._newest(refs[day], day)) is not None]

    def replay_spool(self) -> int:
        """Push spooled records; each spool file goes only after a verified write (D1).

        Stops at the first failure (the journal is evidently still failing) and reports it
        as an event instead of raising: the records stay safely spooled, and today's run
        has its own preflight to decide whether it may trade.
        """
        if self._spool is None:
            return 0
        self._writable()
        written = 0
        for path, entry in self._spool.pending(self.location):
            ref = _ref(entry.record)
            try:
                self._store(ref, encode_record(entry.record), entry.record.session)
            except JournalConflictError as exc:
                self._emit(
                    EventKind.SPOOL_CONFLICT,
                    f"spooled record {path} cannot be replayed: {exc}. It stays spooled "
                    "for a person to compare with the existing record",
                    entry.record.session,
                )
                continue
            except Exception as exc:
                self._emit(
                    EventKind.SPOOL_REPLAY_FAILED,
                    f"replaying spooled record {path} to {self._where(ref)} failed: {exc}; "
                    f"it and any later ones stay spooled in {self._spool.directory}",
                    entry.record.session,
                )
                break
            self._spool.remove(path)
            written += 1
            self._emit(
                EventKind.REPLAYED,
                f"spooled record {path} written to {self._where(ref)}",
                entry.record.session,
                # Good news: a record that was only on this machine is in the journal now.
                Severity.INFO,
            )
        return written

    def _store(self, ref: str, data: bytes, session: date) -> None:
        try:
            self._create(ref, data)
        except RecordExists:
            self._settle_existing(ref, data, session)
        self._confirm(ref, data)

    def _settle_existing(self, ref: str, data: bytes, session: date) -> None:
        """The key is taken. By us (an earlier attempt whose answer was lost, or a replay
        of a write that had in fact landed): done. By garbage: quarantine it and write.
        By a different valid record: a conflict, and the existing record stays (X5)."""
        try:
            existing = self._read(ref)
        except RecordMissing:
            existing = None
        if existing == data:
            return
        if existing is not None:
            try:
                decode_record(existing, session=session)
            except InvalidRecord as exc:
                # Garbage squatting on our key: readers would quarantine it anyway.
                self._set_aside(ref, str(exc), session)
            except NewerSchemaRecord:
                raise self._conflict(ref) from None
            else:
                raise self._conflict(ref)
        try:
            self._create(ref, data)
        except RecordExists:
            raise self._conflict(ref) from None

    def _conflict(self, ref: str) -> JournalConflictError:
        return JournalConflictError(
            f"{self._write_action} of {self._where(ref)} refused (PreconditionFailed, "
            "create-only write): a different record already holds this key; the existing "
            "record was left untouched",
            action=self._write_action,
            resource=self._where(ref),
            code="PreconditionFailed",
        )

    _write_action = "write"

    def _writable(self) -> None:
        if self._read_only:
            raise RuntimeError(f"the journal at {self.location} was opened to read only")

    def _set_aside(self, ref: str, reason: str, session: date) -> None:
        """Quarantine a bad object; never raises, so reads never crash on one (D3)."""
        where = self._where(ref)
        if self._read_only:
            self.invalid[where] = reason
            return
        try:
            copy, leftover = self._quarantine(ref)
        except RecordMissing:
            # Gone between listing and quarantining: another reader moved it.
            return
        except Exception as exc:
            message = (
                f"journal record {where} is not a valid session record ({reason}); it is "
                f"excluded from reads but could NOT be quarantined ({exc}), so it stays in place"
            )
        else:
            message = (
                f"journal record {where} is not a valid session record ({reason}); "
                f"quarantined to {copy} and excluded from reads"
            )
            if leftover:
                message += f"; the original could not be removed ({leftover})"
        # One alert per object and outcome per instance: a run reads the journal several
        # times, and an object it could not move would otherwise be reported each time.
        if self._reported.get(where) == message:
            return
        self._reported[where] = message
        if where not in self.quarantined:
            self.quarantined.append(where)
        self._emit(EventKind.QUARANTINE, message, session)

    def _reading(self, read: Callable[[], _T]) -> _T:
        """Run a read; a back-end failure means no trustworthy state: refuse (A4, A9)."""
        try:
            return read()
        except StoreFailed as exc:
            raise JournalUnavailableError(
                f"journal read failed: {exc}; no trading without the journal",
                action=exc.action,
                resource=exc.resource,
                code=exc.code,
            ) from exc

    def _spool_record(self, record: SessionRecord, error: str) -> tuple[str, str | None]:
        """Keep a record whose write failed: (what happened, for the message; spool path)."""
        if self._spool is None:
            return self._lost(record, error, "was NOT spooled (no spool configured)")
        try:
            path = self._spool.add(self.location, record, error)
        except OSError as exc:
            # A full disk takes the spool with the journal: the one case nobody may miss.
            return self._lost(
                record,
                error,
                f"could NOT be spooled either ({exc.strerror or exc!r}); it is lost",
            )
        self._emit(
            EventKind.SPOOLED,
            f"journal record for session {record.session} run {record.run_id} spooled to "
            f"{path} after a failed write: {error}",
            record.session,
        )
        return f"was spooled to {path} for replay", str(path)

    def _lost(self, record: SessionRecord, error: str, note: str) -> tuple[str, None]:
        """A record neither written nor spooled: alerted, with what it held, since the
        broker is then the only record of the session (D1)."""
        self._emit(
            EventKind.RECORD_LOST,
            f"journal record for session {record.session} run {record.run_id} {note}; the "
            f"write failed: {error}. Orders: {_order_summary(record)}; positions after: "
            f"{_positions_summary(record)}",
            record.session,
        )
        return note, None

    def _emit(
        self,
        kind: EventKind,
        message: str,
        session: date,
        severity: Severity = Severity.CRITICAL,
    ) -> None:
        """Tell the alert path; anything but a replay means a record is missing, out of
        reach or set aside, which a person must look at (D1, D3)."""
        emit(self._on_event, Event(kind, severity, "journal", message, session), _log)


def _order_summary(record: SessionRecord) -> str:
    return ", ".join(o.summary for o in record.orders) or "none"


def _positions_summary(record: SessionRecord) -> str:
    return ", ".join(f"{s} {q}" for s, q in sorted(record.positions.items())) or "none"


def os_failure(action: str, path: Path, exc: OSError) -> StoreFailed:
    code = errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else type(exc).__name__
    return StoreFailed(action, str(path), code, exc.strerror or str(exc))


def check_spool(spool: Spool) -> None:
    """Preflight of the spool: a run must not trade if a failed write would be lost (D1)."""
    try:
        spool.check()
    except OSError as exc:
        failure = os_failure("write", spool.directory, exc)
        raise JournalUnavailableError(
            f"journal preflight failed: the local spool is not writable: {failure}; "
            "no orders will be sent",
            action="write",
            resource=str(spool.directory),
            code=failure.code,
        ) from exc


def session_of(name: str) -> date | None:
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None
