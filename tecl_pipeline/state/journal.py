"""The journal: one validated JSON record per trading run, per session, never overwritten (D5).

The broker stays the source of truth for positions and orders; the journal keeps what the
pipeline saw, decided and did, so the next session (and a person) can read it back.
"""

import os
from datetime import UTC, date
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from tecl_pipeline.broker.models import Order


class SessionRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    session: date
    run_id: str
    written_at: AwareDatetime
    data_source: str
    broker: str
    leaf: str
    reason: str
    weights: dict[str, Decimal]
    orders: list[Order]
    positions: dict[str, Decimal]
    cash: Decimal
    equity: Decimal


class LocalJournal:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _session_dir(self, session: date) -> Path:
        return self._root / "sessions" / session.isoformat()

    def append(self, record: SessionRecord) -> Path:
        """Write the record whole or not at all, and never over an existing one (D1, X5)."""
        directory = self._session_dir(record.session)
        directory.mkdir(parents=True, exist_ok=True)
        # UTC in the file name so that names sort in write order across DST changes.
        stamp = record.written_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = directory / f"{stamp}-{record.run_id}.json"
        tmp = directory / f".{final.name}.tmp"
        with open(tmp, "w") as handle:
            handle.write(record.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # link() refuses an existing target: an atomic create-if-absent.
            os.link(tmp, final)
        finally:
            tmp.unlink()
        if SessionRecord.model_validate_json(final.read_text()) != record:
            raise OSError(f"journal record {final} does not read back as written")
        return final

    def records(self, session: date) -> list[SessionRecord]:
        directory = self._session_dir(session)
        if not directory.is_dir():
            return []
        return [
            SessionRecord.model_validate_json(path.read_text())
            for path in sorted(directory.glob("*.json"))
        ]

    def latest(self, session: date) -> SessionRecord | None:
        records = self.records(session)
        return records[-1] if records else None

    def latest_before(self, session: date) -> SessionRecord | None:
        """The last record of the most recent earlier session that has one."""
        sessions_dir = self._root / "sessions"
        if not sessions_dir.is_dir():
            return None
        earlier = sorted(
            day for p in sessions_dir.iterdir() if (day := _session_of(p)) and day < session
        )
        for day in reversed(earlier):
            if record := self.latest(day):
                return record
        return None


def _session_of(path: Path) -> date | None:
    try:
        return date.fromisoformat(path.name)
    except ValueError:
        return None
