"""What a daily run was, as tags on the run, so that the UI's Runs page filters by them: the
mode it traded in, its market data, the strategy's leaf and how it ended.

Set from inside the run, so that every run has them however it started (`tecl run`, the
launchpad, the schedule): the mode and the data when the run's resources are set up, the
leaf once decided, the outcome by the last step or by the first step that failed. A run
that died without a step failing (a killed run worker) gets its outcome from the
run-failure sensor.
"""

from collections.abc import Mapping
from enum import StrEnum

from dagster import DagsterInstance

MODE_TAG = "tecl/mode"
DATA_SOURCE_TAG = "tecl/data_source"
LEAF_TAG = "tecl/leaf"
OUTCOME_TAG = "tecl/outcome"


class RunOutcome(StrEnum):
    TRADED = "traded"
    """Orders were sent by this run."""
    NOTHING_TO_DO = "nothing_to_do"
    """The session was already at its target: no order needed."""
    REFUSED = "refused"
    """Nothing was sent, on purpose: the data, the account, the time or a risk limit."""
    STOPPED = "stopped"
    """Asked to stop (SIGTERM); nothing was sent after the request."""
    ERROR = "error"
    """Anything else: a dependency, a bug, trading that failed part way, a killed run."""


def tag_run(instance: DagsterInstance, run_id: str, tags: Mapping[str, str]) -> None:
    instance.add_run_tags(run_id, dict(tags))


def tag_outcome_once(instance: DagsterInstance, run_id: str, outcome: RunOutcome) -> None:
    """The run's outcome, unless one is set: the first failed step says why the run ended."""
    run = instance.get_run_by_id(run_id)
    if run is not None and OUTCOME_TAG not in run.tags:
        tag_run(instance, run_id, {OUTCOME_TAG: outcome.value})
