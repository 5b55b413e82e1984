"""The signal history table: one row per session, in a SQLite file anyone can query.

Schema (plain SQL, readable with the `sqlite3` shell or any SQLite client):

    signals(session TEXT PRIMARY KEY,          -- 'YYYY-MM-DD', the session decided at its close
            leaf TEXT NOT NULL,                -- the decision tree's leaf
            TECL TEXT, BIL TEXT, ...           -- one column per HOLDINGS symbol: exact decimal
                                               -- strings ('0.25'), never floats, so they read
                                               -- back as the same Decimal signal_history gave
            computed_at TEXT, data_source TEXT, run_id TEXT)

e.g. `sqlite3 history.sqlite "select leaf, count(*) from signals group by leaf"`.
Writes replace a whole date range in one transaction, so re-running a range is idempotent
and a range never holds a mix of an old and a new computation.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

import pandas as pd

from tecl_pipeline.core.universe import HOLDINGS

TABLE: Final = "signals"
_COLUMNS: Final = ("session", "leaf", *HOLDINGS, "computed_at", "data_source", "run_id")
_QUOTED: Final = ", ".join(f'"{c}"' for c in _COLUMNS)
_SCHEMA: Final = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "session TEXT PRIMARY KEY, leaf TEXT NOT NULL, "
    + ", ".join(f'"{h}" TEXT NOT NULL' for h in HOLDINGS)
    + ", computed_at TEXT NOT NULL, data_source TEXT NOT NULL, run_id TEXT)"
)


@dataclass(frozen=True)
class Provenance:
    """Where a batch of rows came from, stored on every row it writes."""

    computed_at: str
    data_source: str
    run_id: str | None = None


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A generous busy timeout: a UI backfill and a CLI backfill may overlap; SQLite serialises
    # the writers rather than failing one of them.
    connection = sqlite3.connect(path, timeout=30.0)
    try:
        connection.execute(_SCHEMA)
        yield connection
    finally:
        connection.close()


def _day(value: date | pd.Timestamp | str) -> str:
    return pd.Timestamp(value).date().isoformat()


def replace_range(
    path: Path,
    frame: pd.DataFrame,
    start: date,
    end: date,
    provenance: Provenance,
) -> int:
    """Make the table's sessions in [start, end) exactly `frame`'s rows; returns rows written.

    `frame` has signal_history's shape (DatetimeIndex, "leaf", Decimal weights per HOLDINGS)
    and must lie inside the range. Rows outside the range are untouched.
    """
    sessions = [_day(d) for d in frame.index]
    lo, hi = _day(start), _day(end)
    outside = [s for s in sessions if not lo <= s < hi]
    if outside:
        raise ValueError(f"rows {outside[0]}..{outside[-1]} lie outside [{lo}, {hi})")
    weights = frame.loc[:, list(HOLDINGS)].to_numpy()
    rows = [
        (
            session,
            str(leaf),
            # str(Decimal) is exact and round-trips; a float would not.
            *(str(Decimal(w)) for w in weight_row),
            provenance.computed_at,
            provenance.data_source,
            provenance.run_id,
        )
        for session, leaf, weight_row in zip(sessions, frame["leaf"], weights, strict=True)
    ]
    placeholders = ", ".join("?" * len(_COLUMNS))
    # Only module constants are formatted into SQL; every value is a bound parameter.
    delete = f"DELETE FROM {TABLE} WHERE session >= ? AND session < ?"  # nosec B608
    insert = f"INSERT INTO {TABLE} ({_QUOTED}) VALUES ({placeholders})"  # nosec B608
    with _connect(path) as connection, connection:  # `with connection`: one transaction
        connection.execute(delete, (lo, hi))
        connection.executemany(insert, rows)
    return len(rows)


def write_signals(path: Path, frame: pd.DataFrame, provenance: Provenance | None = None) -> int:
    """Upsert `frame`'s rows (by session), leaving every other session as it was."""
    if provenance is None:
        provenance = Provenance(datetime.now(UTC).isoformat(timespec="seconds"), "unspecified")
    if frame.empty:
        return 0
    first, last = frame.index.min(), frame.index.max()
    # Replacing exactly the frame's span is an upsert only if the span has no gaps the table
    # fills; the frame comes from signal_history, whose sessions are contiguous.
    return replace_range(
        path, frame, first.date(), (last + pd.Timedelta(days=1)).date(), provenance
    )


def read_signals(
    path: Path,
    start: date | None = None,
    end: date | None = None,
    *,
    with_provenance: bool = False,
) -> pd.DataFrame:
    """Sessions in [start, end] (inclusive; None = open) in signal_history's shape:
    DatetimeIndex "session", column "leaf", Decimal weight columns in HOLDINGS order, plus
    computed_at / data_source / run_id when `with_provenance`. A missing file reads empty."""
    if not path.is_file():
        rows: list[tuple[str, ...]] = []
    else:
        # Constants formatted in; the dates are bound parameters.
        where = "WHERE session >= ? AND session <= ? ORDER BY session"
        query = f"SELECT {_QUOTED} FROM {TABLE} {where}"  # nosec B608
        bounds = (_day(start) if start else "0000-00-00", _day(end) if end else "9999-99-99")
        with _connect(path) as connection:
            rows = connection.execute(query, bounds).fetchall()
    frame = pd.DataFrame(rows, columns=list(_COLUMNS))
    index = pd.DatetimeIndex(pd.to_datetime(frame.pop("session"), format="%Y-%m-%d"))
    frame.index = index.rename("session")
    for holding in HOLDINGS:
        frame[holding] = frame[holding].map(Decimal)
    if not with_provenance:
        frame = frame.loc[:, ["leaf", *HOLDINGS]]
    return frame


def count_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    with _connect(path) as connection:
        count = f"SELECT COUNT(*) FROM {TABLE}"  # nosec B608 - a module constant
        return int(connection.execute(count).fetchone()[0])
