"""The journal in a local directory (`file:///DIR`): temp file + fsync + link,
create-only (D1, X5); the shared rules are `JournalBase`'s."""

import contextlib
import errno
import os
import uuid
from datetime import date
from pathlib import Path

from tecl_pipeline.common.events import EventSink
from tecl_pipeline.state.errors import JournalUnavailableError
from tecl_pipeline.state.journal.base import (
    JournalBase,
    RecordExists,
    RecordMissing,
    StoreFailed,
    check_spool,
    os_failure,
    session_of,
    utc_stamp,
)
from tecl_pipeline.state.journal.records import MAX_RECORD_BYTES
from tecl_pipeline.state.journal.spool import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    Spool,
    fsync_dir,
    write_create_only,
)


class LocalJournal(JournalBase):
    """The journal in a local directory: temp file + fsync + link, create-only (D1, X5)."""

    def __init__(
        self,
        root: Path,
        *,
        spool_dir: Path | None = None,
        on_event: EventSink | None = None,
        spool_max_files: int = DEFAULT_MAX_FILES,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        read_only: bool = False,
    ) -> None:
        spool = (
            Spool(
                spool_dir, max_files=spool_max_files, max_bytes=spool_max_bytes, on_event=on_event
            )
            if spool_dir is not None
            else None
        )
        super().__init__(spool, on_event, read_only=read_only)
        self._root = root
        self.location = root.absolute().as_uri()

    def preflight(self) -> None:
        self._writable()
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
            failure = os_failure("write", self._root, exc)
            raise JournalUnavailableError(
                f"journal preflight failed: {failure}; no orders will be sent",
                action="write",
                resource=str(self._root),
                code=failure.code,
            ) from exc
        if self._spool is not None:
            check_spool(self._spool)

    def _where(self, ref: str) -> str:
        return str(self._root / ref)

    def _session_days(self) -> list[date]:
        sessions = self._root / "sessions"
        try:
            return [day for p in sessions.iterdir() if (day := session_of(p.name))]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise os_failure("list", sessions, exc) from exc

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
            raise os_failure("list", directory, exc) from exc

    def _read(self, ref: str) -> bytes:
        path = self._root / ref
        try:
            with open(path, "rb") as handle:
                return handle.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            raise RecordMissing(ref) from None
        except OSError as exc:
            raise os_failure("read", path, exc) from exc

    def _create(self, ref: str, data: bytes) -> None:
        path = self._root / ref
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_create_only(path, data)
        except FileExistsError:
            raise RecordExists(ref) from None
        except OSError as exc:
            raise os_failure("write", path, exc) from exc

    def _confirm(self, ref: str, data: bytes) -> None:
        try:
            back = self._read(ref)
        except RecordMissing:
            back = None
        if back != data:
            raise StoreFailed(
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
                raise RecordMissing(ref) from None
            raise
        except FileExistsError:
            if target.read_bytes() != source.read_bytes():
                target = target.with_name(f"{target.name}.{utc_stamp()}")
                os.link(source, target)
        fsync_dir(target.parent)
        try:
            source.unlink()
            fsync_dir(source.parent)
        except OSError as exc:
            return str(target), f"unlink: {exc.strerror}"
        return str(target), None
