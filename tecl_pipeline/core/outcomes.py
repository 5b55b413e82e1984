"""How a step that stopped on purpose tells the rest what happened: the words in a Dagster
`Failure`'s and a check result's metadata that the run report, the run-failure alert and
the checks read back. No Dagster import: `tecl run` reads them before Dagster loads."""

from collections.abc import Mapping
from enum import StrEnum

OUTCOME = "outcome"
"""Metadata key of a step failure's outcome (an `Outcome` value)."""
CHECKED = "checked"
"""Metadata key of a check result that evaluated nothing (no history row to compare with,
a refused session): shown as a warning, never read as a finding about the session."""


class Outcome(StrEnum):
    """Each one is alerted by the step where it happens, naming the cause, so the
    run-failure alert does not repeat it."""

    REFUSED = "refused"
    """Nothing was sent: the data, the account, the time or a risk limit said no."""
    INCOMPLETE = "incomplete"
    """Trading failed part way: orders may have gone out; the step said which."""
    STOPPED = "stopped"
    """Asked to stop (SIGTERM): nothing sent after the request; the step said what works."""


def metadata_text(value: object) -> object:
    """A metadata entry's plain value, whether raw or wrapped in a Dagster MetadataValue."""
    return getattr(value, "value", value)


def outcome_of(metadata: Mapping[str, object] | None) -> Outcome | None:
    """The Outcome in a step failure's metadata, if it has one."""
    value = metadata_text((metadata or {}).get(OUTCOME))
    return Outcome(value) if value in set(Outcome) else None
