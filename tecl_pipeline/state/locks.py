"""Locks across processes on this machine: one trading run per session at a time (C2), and
one process at a time setting up a shared directory."""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from tecl_pipeline.core.errors import SessionBusyError


@contextmanager
def session_lock(lock_dir: Path, session: date) -> Iterator[None]:
    """Hold the session's lock for the block; if another run holds it, refuse at once.

    Waiting would only let the second run trade on positions the first is changing.
    The OS drops the lock when the holder dies, so a killed run never blocks the next.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{session.isoformat()}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SessionBusyError(
                f"another run is trading session {session}; this run sends no orders"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block, waiting for it if need be (for
    set-up that two processes must not do at once; the OS drops it if the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
