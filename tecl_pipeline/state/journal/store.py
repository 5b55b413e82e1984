"""The journal: one validated JSON record per trading run, per session, never overwritten (D5).

The broker stays the source of truth for positions and orders; the journal keeps what the
pipeline saw, decided and did, so the next session (and a person) can read it back.

Two back ends behind one interface (`JournalStore`), chosen by `open_journal(state_uri)`:
`file:///DIR` (LocalJournal) and `s3://bucket/prefix` (S3Journal). Both keep the same
layout under their root, `sessions/<YYYY-MM-DD>/<utc stamp>-<run id>.json`, and share the
rules, which live here in `_JournalBase`:

- writes are create-only and verified by reading back (D1, D2, X5); a write that fails for
  any reason is spooled locally and replayed later, never dropped (D1);
- reads are schema-validated; a bad object is quarantined (kept under `quarantine/`,
  excluded from results, reported through `on_event`), and reads go on (D3);
- anything that makes the journal unusable before trading is a JournalUnavailableError,
  a RefusedToTrade (A4, A5, A8, A9).
"""

import contextlib
import errno
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.state.errors import (
    JournalConflictError,
    JournalUnavailableError,
    JournalWriteError,
)
from tecl_pipeline.state.journal.records import (
    MAX_RECORD_BYTES,
    EventSink,
    InvalidRecord,
    NewerSchemaRecord,
    SessionRecord,
    decode_record,
    emit,
    encode_record,
    record_name,
)
from tecl_pipeline.state.journal.spool import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    Spool,
    fsync_dir,
    write_create_only,
)

__all__ = ("JournalStore", "LocalJournal", "SessionRecord", "open_journal")

_T = TypeVar("_T")


@runtime_checkable
class JournalStore(Protocol):
    location: str
    """Where the journal lives, for people: "file:///…" or "s3://bucket/prefix"."""
    quarantined: list[str]
    """What reads of this instance quarantined (D3), for the alert."""

    def preflight(self) -> None:
        """Raise JournalUnavailableError (naming action, resource, cause) unless the journal
        can be read and written now. Call before trading (A4, A5, A8, A9)."""

    def append(self, record: SessionRecord) -> str:
        """Write the record create-only and verify it; return where it is. On failure the
        record is spooled and JournalWriteError (or JournalConflictError) raised (D1, X5)."""

    def records(self, session: date) -> list[SessionRecord]: ...

    def latest(self, session: date) -> SessionRecord | None: ...

    def latest_before(self, session: date) -> SessionRecord | None: ...

    def replay_spool(self) -> int:
        """Write the records spooled for this journal; return how many were written."""


class _StoreFailed(Exception):
    """A back end's operation failed; the base decides what that means (refuse or spool)."""

    def __init__(self, action: str, resource: str, code: str, detail: str) -> None:
        super().__init__(f"{action} on {resource} failed: {code} ({detail})")
        self.action = action
        self.resource = resource
        self.code = code
        self.detail = detail


class _Exists(Exception):
    """The create-only write found its target already present."""


class _Missing(Exception):
    """The object went away between listing and reading (e.g. another reader quarantined
    it): nothing to read, nothing wrong."""


def _ref(record: SessionRecord) -> str:
    """The record's path below the journal root, the same for every back end."""
    return f"sessions/{record.session.isoformat()}/{record_name(record)}"


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


class _JournalBase(ABC):
    location: str

    def __init__(self, spool: Spool | None, on_event: EventSink | None) -> None:
        self._spool = spool
        self._on_event = on_event
        self.quarantined: list[str] = []
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

    @abstractmethod
    def _read(self, ref: str) -> bytes:
        """At most MAX_RECORD_BYTES + 1 bytes of `ref`; raises _Missing or _StoreFailed."""

    @abstractmethod
    def _create(self, ref: str, data: bytes) -> None:
        """Write `data` at `ref` whole or not at all, only if absent; raises _Exists."""

    @abstractmethod
    def _confirm(self, ref: str, data: bytes) -> None:
        """Raise _StoreFailed unless `ref` now reads back exactly as `data` (D1)."""

    @abstractmethod
    def _quarantine(self, ref: str) -> tuple[str, str | None]:
        """Copy `ref` under quarantine/, then remove the original: (copy's location,
        why the original could not be removed or None). Raises if it cannot copy."""

    # -- the shared rules --------------------------------------------------------------

    def append(self, record: SessionRecord) -> str:
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
        except _StoreFailed as exc:
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
        found = []
        for ref, size in self._reading(lambda: self._session_refs(session)):
            if size is not None and size > MAX_RECORD_BYTES:
                self._set_aside(ref, f"{size} bytes, more than a record can be")
                continue
            try:
                data = self._reading(lambda ref=ref: self._read(ref))
            except _Missing:
                continue
            try:
                found.append(decode_record(data, session=session))
            except InvalidRecord as exc:
                self._set_aside(ref, str(exc))
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
        return found

    def latest(self, session: date) -> SessionRecord | None:
        records = self.records(session)
        return records[-1] if records else None

    def latest_before(self, session: date) -> SessionRecord | None:
        """The last record of the most recent earlier session that has one."""
        earlier = sorted(d for d in self._reading(self._session_days) if d < session)
        for day in reversed(earlier):
            if record := self.latest(day):
                return record
        return None

    def replay_spool(self) -> int:
        """Push spooled records; each spool file goes only after a verified write (D1).

        Stops at the first failure (the journal is evidently still failing) and reports it
        as an event instead of raising: the records stay safely spooled, and today's run
        has its own preflight to decide whether it may trade.
        """
        if self._spool is None:
            return 0
        written = 0
        for path, entry in self._spool.pending(self.location):
            ref = _ref(entry.record)
            try:
                self._store(ref, encode_record(entry.record), entry.record.session)
            except JournalConflictError as exc:
                emit(
                    self._on_event,
                    "spool_conflict",
                    f"spooled record {path} cannot be replayed: {exc}. It stays spooled "
                    "for a person to compare with the existing record",
                )
                continue
            except Exception as exc:
                emit(
                    self._on_event,
                    "spool_replay_failed",
                    f"replaying spooled record {path} to {self._where(ref)} failed: {exc}; "
                    f"it and any later ones stay spooled in {self._spool.directory}",
                )
                break
            self._spool.remove(path)
            written += 1
            emit(self._on_event, "replayed", f"spooled record {path} written to {self._where(ref)}")
        return written

    def _store(self, ref: str, data: bytes, session: date) -> None:
        try:
            self._create(ref, data)
        except _Exists:
            self._settle_existing(ref, data, session)
        self._confirm(ref, data)

    def _settle_existing(self, ref: str, data: bytes, session: date) -> None:
        """The key is taken. By us (an earlier attempt whose answer was lost, or a replay
        of a write that had in fact landed): done. By garbage: quarantine it and write.
        By a different valid record: a conflict, and the existing record stays (X5)."""
        try:
            existing = self._read(ref)
        except _Missing:
            existing = None
        if existing == data:
            return
        if existing is not None:
            try:
                decode_record(existing, session=session)
            except InvalidRecord as exc:
                # Garbage squatting on our key: readers would quarantine it anyway.
                self._set_aside(ref, str(exc))
            except NewerSchemaRecord:
                raise self._conflict(ref) from None
            else:
                raise self._conflict(ref)
        try:
            self._create(ref, data)
        except _Exists:
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

    def _set_aside(self, ref: str, reason: str) -> None:
        """Quarantine a bad object; never raises, so reads never crash on one (D3)."""
        where = self._where(ref)
        try:
            copy, leftover = self._quarantine(ref)
        except _Missing:
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
        emit(self._on_event, "quarantine", message)

    def _reading(self, read: Callable[[], _T]) -> _T:
        """Run a read; a back-end failure means no trustworthy state: refuse (A4, A9)."""
        try:
            return read()
        except _StoreFailed as exc:
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
        emit(
            self._on_event,
            "spooled",
            f"journal record for session {record.session} run {record.run_id} spooled to "
            f"{path} after a failed write: {error}",
        )
        return f"was spooled to {path} for replay", str(path)

    def _lost(self, record: SessionRecord, error: str, note: str) -> tuple[str, None]:
        """A record neither written nor spooled: alerted, with what it held, since the
        broker is then the only record of the session (D1)."""
        emit(
            self._on_event,
            "record_lost",
            f"journal record for session {record.session} run {record.run_id} {note}; the "
            f"write failed: {error}. Orders: {_order_summary(record)}; positions after: "
            f"{_positions_summary(record)}",
        )
        return note, None


def _order_summary(record: SessionRecord) -> str:
    return ", ".join(o.summary for o in record.orders) or "none"


def _positions_summary(record: SessionRecord) -> str:
    return ", ".join(f"{s} {q}" for s, q in sorted(record.positions.items())) or "none"


def _os_failure(action: str, path: Path, exc: OSError) -> _StoreFailed:
    code = errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else type(exc).__name__
    return _StoreFailed(action, str(path), code, exc.strerror or str(exc))


class LocalJournal(_JournalBase):
    """The journal in a local directory: temp file + fsync + link, create-only (D1, X5)."""

    def __init__(
        self,
        root: Path,
        *,
        spool_dir: Path | None = None,
        on_event: EventSink | None = None,
        spool_max_files: int = DEFAULT_MAX_FILES,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        spool = (
            Spool(
                spool_dir, max_files=spool_max_files, max_bytes=spool_max_bytes, on_event=on_event
            )
            if spool_dir is not None
            else None
        )
        super().__init__(spool, on_event)
        self._root = root
        self.location = root.absolute().as_uri()

    def preflight(self) -> None:
        probe = self._root / f".preflight-{uuid.uuid4().hex}"
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            write_create_only(probe, b"preflight")
            back = probe.read_bytes()
            probe.unlink()
            if back != b"preflight":
                raise OSError(errno.EIO, "a probe file read back differently")
        except OSError as exc:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
            failure = _os_failure("write", self._root, exc)
            raise JournalUnavailableError(
                f"journal preflight failed: {failure}; no orders will be sent",
                action="write",
                resource=str(self._root),
                code=failure.code,
            ) from exc
        if self._spool is not None:
            _check_spool(self._spool)

    def _where(self, ref: str) -> str:
        return str(self._root / ref)

    def _session_days(self) -> list[date]:
        sessions = self._root / "sessions"
        try:
            return [day for p in sessions.iterdir() if (day := _session_of(p.name))]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _os_failure("list", sessions, exc) from exc

    def _session_refs(self, session: date) -> list[tuple[str, int | None]]:
        directory = self._root / "sessions" / session.isoformat()
        try:
            # Dot files are temporaries of writes in progress (or of crashed ones): never
            # records, so a reader never sees half a write (D1).
            paths = sorted(
                p for p in directory.glob("*.json") if not p.name.startswith(".") and p.is_file()
            )
            return [(p.relative_to(self._root).as_posix(), p.stat().st_size) for p in paths]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _os_failure("list", directory, exc) from exc

    def _read(self, ref: str) -> bytes:
        path = self._root / ref
        try:
            with open(path, "rb") as handle:
                return handle.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            raise _Missing(ref) from None
        except OSError as exc:
            raise _os_failure("read", path, exc) from exc

    def _create(self, ref: str, data: bytes) -> None:
        path = self._root / ref
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_create_only(path, data)
        except FileExistsError:
            raise _Exists(ref) from None
        except OSError as exc:
            raise _os_failure("write", path, exc) from exc

    def _confirm(self, ref: str, data: bytes) -> None:
        try:
            back = self._read(ref)
        except _Missing:
            back = None
        if back != data:
            raise _StoreFailed(
                "verify", self._where(ref), "ReadBackMismatch", "does not read back as written"
            )

    def _quarantine(self, ref: str) -> tuple[str, str | None]:
        source = self._root / ref
        target = self._root / "quarantine" / ref
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # A second name for the same bytes first (link refuses to replace anything),
            # and only then the original name goes: never deleted before it is kept.
            os.link(source, target)
        except FileNotFoundError:
            if not source.exists():
                raise _Missing(ref) from None
            raise
        except FileExistsError:
            if target.read_bytes() != source.read_bytes():
                target = target.with_name(f"{target.name}.{_utc_stamp()}")
                os.link(source, target)
        fsync_dir(target.parent)
        try:
            source.unlink()
            fsync_dir(source.parent)
        except OSError as exc:
            return str(target), f"unlink: {exc.strerror}"
        return str(target), None


def _check_spool(spool: Spool) -> None:
    """Preflight of the spool: a run must not trade if a failed write would be lost (D1)."""
    try:
        spool.check()
    except OSError as exc:
        failure = _os_failure("write", spool.directory, exc)
        raise JournalUnavailableError(
            f"journal preflight failed: the local spool is not writable: {failure}; "
            "no orders will be sent",
            action="write",
            resource=str(spool.directory),
            code=failure.code,
        ) from exc


def _session_of(name: str) -> date | None:
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def open_journal(
    state_uri: str,
    *,
    spool_dir: Path,
    s3_client: object | None = None,
    on_event: EventSink | None = None,
    spool_max_files: int = DEFAULT_MAX_FILES,
    spool_max_bytes: int = DEFAULT_MAX_BYTES,
    s3_retry: RetryPolicy | None = None,
) -> JournalStore:
    """The journal at `state_uri`: file:///DIR or s3://BUCKET[/PREFIX].

    `s3_client` is a boto3 S3 client without retries of its own (`client_config()`); without
    one such a client is made from the environment. `s3_retry` replaces the S3 journal's
    retry policy.
    No network I/O happens here; call `preflight()` before trading.
    """
    # Imported here: the settings module is light, but keep this module's import cheap.
    from tecl_pipeline.config.settings import ConfigError, local_state_dir

    parts = urlsplit(state_uri)
    if "@" in parts.netloc:
        # Never echo it: a user-info part may carry a secret.
        raise ConfigError("state_uri must not contain a user name or password")
    if parts.query or parts.fragment:
        raise ConfigError(f"state_uri {state_uri!r} must not have a query or fragment")
    root = local_state_dir(state_uri)
    if root is not None:
        if parts.netloc not in ("", "localhost") or not root.is_absolute():
            raise ConfigError(f"state_uri {state_uri!r} is not an absolute file:///DIR URI")
        return LocalJournal(
            root,
            spool_dir=spool_dir,
            on_event=on_event,
            spool_max_files=spool_max_files,
            spool_max_bytes=spool_max_bytes,
        )
    if parts.scheme == "s3":
        from tecl_pipeline.adapters.aws.s3_journal import S3Journal, default_s3_client, valid_bucket

        if not valid_bucket(parts.netloc):
            raise ConfigError(f"state_uri {state_uri!r}: {parts.netloc!r} is not a bucket name")
        spool = Spool(
            spool_dir, max_files=spool_max_files, max_bytes=spool_max_bytes, on_event=on_event
        )
        return S3Journal(
            s3_client if s3_client is not None else default_s3_client(),
            parts.netloc,
            parts.path.strip("/"),
            spool=spool,
            on_event=on_event,
            retry=s3_retry,
        )
    raise ConfigError(f"state_uri {state_uri!r}: expected file:///DIR or s3://BUCKET[/PREFIX]")
