"""Events: what the journal, its spool and the secrets provider tell the alert path.

Typed values, not (kind, message) strings: the producer says what happened (an
`EventKind`) and how much it matters (a `Severity`); consumers (the alerter, `context.log`)
act on those, never on names. Here in common/ because the journal (state/), the AWS
adapters and observability all use it, and none of those may import another.
"""

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Severity(StrEnum):
    """How urgently a person should look: an event's, and an alert's."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def log_level(self) -> int:
        if self is Severity.INFO:
            return logging.INFO
        if self is Severity.WARNING:
            return logging.WARNING
        return logging.CRITICAL


class EventKind(StrEnum):
    """What happened. The values are the `kind` alerts carry (dashboards look for them)."""

    # The journal and its spool (D1, D3, X5, X7).
    QUARANTINE = "quarantine"
    SPOOLED = "spooled"
    SPOOL_DROPPED = "spool_dropped"
    REPLAYED = "replayed"
    SPOOL_CONFLICT = "spool_conflict"
    SPOOL_REPLAY_FAILED = "spool_replay_failed"
    RECORD_LOST = "record_lost"
    # The secrets provider (A6, C4, S1, S4, S7).
    SECRET_STALE_CACHE = "secret_stale_cache"
    SECRET_UNAVAILABLE = "secret_unavailable"
    SECRET_ACCESS_FAILURE = "secret_access_failure"
    SECRET_MALFORMED = "secret_malformed"
    SECRET_ROTATION_OVERDUE = "secret_rotation_overdue"
    SECRET_AGE_UNKNOWN = "secret_age_unknown"


@dataclass(frozen=True)
class Event:
    """One thing a person may need to know. The message never holds a secret value."""

    kind: EventKind
    severity: Severity
    source: str
    """Who reports it, for people: "journal", "secrets manager"."""
    message: str
    session: date | None = None
    """The session it concerns, when the producer knows it."""

    @property
    def title(self) -> str:
        return f"{self.source} {self.kind.value.replace('_', ' ')}"

    def text(self) -> str:
        return f"{self.source} {self.kind.value}: {self.message}"


EventSink = Callable[[Event], None]
"""Where a producer sends its events (the Dagster layer passes one to the alert path)."""


def emit(sink: EventSink | None, event: Event, logger: logging.Logger) -> None:
    """Log the event at its severity's level, then hand it to `sink`; a failing sink never
    fails the producer (C5): the producer still returns its result or raises its error."""
    logger.log(event.severity.log_level, "%s", event.text())
    if sink is None:
        return
    try:
        sink(event)
    except Exception as exc:
        logger.exception("the on_event callback failed for %s", event.kind.value)
        # The alert path is down: stderr is the last place a person may still see it.
        print(f"event sink failed ({exc!r}); event was {event.text()}", file=sys.stderr)
