"""The local spool: journal records whose write failed, kept until a verified replay (D1).

One JSON file per record, written atomically, named so that names sort oldest first. The
spool is capped in files and bytes (X7); over the cap the oldest entries are dropped, each
with a `spool_dropped` event, so a long outage fills neither the disk nor the alert path
with silence.
"""

import logging
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from tecl_pipeline.common.events import Event, EventKind, EventSink, Severity, emit
from tecl_pipeline.state.journal.records import SessionRecord, record_name

_log = logging.getLogger(__name__)

DEFAULT_MAX_FILES = 500
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class SpoolEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spool_version: Literal[1] = 1
    location: str
    spooled_at: AwareDatetime
    error: str
    record: SessionRecord


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_files: int = DEFAULT_MAX_FILES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_event: EventSink | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if max_files < 1 or max_bytes < 1:
            raise ValueError("spool caps must be at least 1 file and 1 byte")
        self.directory = directory
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._on_event = on_event
        self._now = now

    def check(self) -> None:
        """Raise OSError unless a record could be spooled here now (preflight, D1)."""
        self._ensure_dir()
        probe = self.directory / f".probe-{uuid.uuid4().hex}"
        try:
            write_create_only(probe, b"probe")
        finally:
            probe.unlink(missing_ok=True)

    def add(self, location: str, record: SessionRecord, error: str) -> Path:
        """Keep `record` for a later replay to `location`; raises OSError if it cannot."""
        self._ensure_dir()
        spooled_at = self._now()
        entry = SpoolEntry(location=location, spooled_at=spooled_at, error=error, record=record)
        data = entry.model_dump_json(indent=2).encode()
        stamp = spooled_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{record.session.isoformat()}-{record_name(record)}"
        self._make_room(len(data))
        try:
            write_create_only(path, data, mode=0o600)
        except FileExistsError:
            # The same record spooled within the same microsecond: it is already kept.
            if path.read_bytes() != data:
                raise
        return path

    def pending(self, location: str) -> list[tuple[Path, SpoolEntry]]:
        """Entries for `location`, oldest first. Unreadable files are set aside, not lost."""
        found, unreadable = self._read(location, strict=False)
        for path, problem in unreadable:
            self._set_aside(path, problem)
        return found

    def entries(
        self, location: str
    ) -> tuple[list[tuple[Path, SpoolEntry]], list[tuple[Path, Exception]]]:
        """Entries for `location`, oldest first, and the files that are not entries with
        why, for a reader that is not a run (`tecl status`): nothing is moved, and a folder
        that cannot be listed raises OSError rather than reading as empty."""
        return self._read(location, strict=True)

    def _read(
        self, location: str, *, strict: bool
    ) -> tuple[list[tuple[Path, SpoolEntry]], list[tuple[Path, Exception]]]:
        found: list[tuple[Path, SpoolEntry]] = []
        unreadable: list[tuple[Path, Exception]] = []
        for path in self._files(strict=strict):
            try:
                entry = SpoolEntry.model_validate_json(path.read_bytes())
            except (ValidationError, OSError) as exc:
                unreadable.append((path, exc))
                continue
            if entry.location == location:
                found.append((path, entry))
        return found, unreadable

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def _files(self, *, strict: bool = False) -> list[Path]:
        """The entry files, oldest first. A missing folder has none; one that cannot be
        listed has none too unless `strict`, when it raises OSError."""
        try:
            with os.scandir(self.directory) as listing:
                # Dot files are temporary (being written) or probes, never entries.
                paths = [
                    Path(item.path)
                    for item in listing
                    if item.name.endswith(".json")
                    and not item.name.startswith(".")
                    and item.is_file()
                ]
        except FileNotFoundError:
            return []
        except OSError:
            if strict:
                raise
            return []
        return sorted(paths)

    def _ensure_dir(self) -> None:
        # Private: spooled records carry positions and cash.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _make_room(self, incoming: int) -> None:
        files = [(p, p.stat().st_size) for p in self._files()]
        total = sum(size for _, size in files)
        while files and (len(files) + 1 > self._max_files or total + incoming > self._max_bytes):
            path, size = files.pop(0)
            path.unlink(missing_ok=True)
            total -= size
            self._emit(
                EventKind.SPOOL_DROPPED,
                f"dropped the oldest spooled journal record {path} to stay within the "
                f"spool cap ({self._max_files} files, {self._max_bytes} bytes) at "
                f"{self.directory}; that record was never written to the journal",
            )

    def _set_aside(self, path: Path, problem: Exception) -> None:
        target_dir = self.directory / "quarantine"
        target = target_dir / path.name
        try:
            target_dir.mkdir(exist_ok=True, mode=0o700)
            os.replace(path, target)
        except OSError as exc:
            self._emit(
                EventKind.QUARANTINE,
                f"spool file {path} is unreadable ({type(problem).__name__}) and could not "
                f"be moved aside ({exc.strerror}); left in place",
            )
            return
        self._emit(
            EventKind.QUARANTINE,
            f"spool file {path} is unreadable ({type(problem).__name__}); moved to {target}",
        )

    def _emit(self, kind: EventKind, message: str) -> None:
        # Either way a journal record is missing or out of reach: a person must look (D1).
        emit(self._on_event, Event(kind, Severity.CRITICAL, "journal", message), _log)


def write_create_only(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` whole or not at all, never over an existing file (D1, X5).

    Raises FileExistsError if `path` exists, OSError for anything else; a failure leaves no
    visible partial file (only a dot-prefixed temporary, removed here when possible).
    """
    # A unique temporary: a leftover from a crashed writer must not block this one.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # link() refuses an existing target: an atomic create-if-absent, unlike rename().
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make the new directory entry itself durable, not only the file's bytes."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
