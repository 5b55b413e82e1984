"""What a daily run was, as tags on the run, so that the UI's Runs page filters by them: the
mode it traded in, its market data, the strategy's leaf and how it ended.

Set from inside the run, so that every run has them however it started (`tecl run`, the
launchpad, the schedule): the mode and the data when the run's resources are set up, the
leaf once decided, the outcome by the last step or by the first step that failed. A run
that died without a step failing (a killed run worker) gets its outcome from the
run-failure sensor.

Labels only: a tag that cannot be written is logged, never a failed run or a held-up alert.
"""

import logging
from collections.abc import Mapping
from enum import StrEnum

from dagster import DagsterInstance

from tecl_pipeline.trading.execution import ExecutionReport

MODE_TAG = "tecl/mode"
DATA_SOURCE_TAG = "tecl/data_source"
LEAF_TAG = "tecl/leaf"
OUTCOME_TAG = "tecl/outcome"
RUN_ALERTED_TAG = "tecl/run_failure_alerted"
"""Set on a run once its failure alert is sent; its value says which route sent it
(defs/failure_alerts.py)."""
OWN_TAGS = (LEAF_TAG, OUTCOME_TAG, RUN_ALERTED_TAG)
"""What a run says about itself: a re-execution, which starts with its parent's tags,
clears them (empty means unset) so that it is decided, tagged and alerted on its own."""


class OutcomeLabel(StrEnum):
    TRADED = "traded"
    """Orders of this run filled."""
    NOTHING_TO_DO = "nothing_to_do"
    """The session was already at its target: no order needed."""
    NOT_CLEAN = "not_clean"
    """Orders were needed, but none of this run's filled: skipped, rejected or unfilled."""
    REFUSED = "refused"
    """Nothing was sent, on purpose: the data, the account, the time or a risk limit."""
    STOPPED = "stopped"
    """Asked to stop (SIGTERM); nothing was sent after the request."""
    ERROR = "error"
    """Anything else: a dependency, a bug, trading that failed part way, a killed run."""


def tag_run(instance: DagsterInstance, run_id: str, tags: Mapping[str, str]) -> None:
    try:
        instance.add_run_tags(run_id, dict(tags))
    except Exception as exc:
        logging.getLogger(__name__).warning(
            "run %s: could not tag %s: %s", run_id, ", ".join(tags), type(exc).__name__
        )


def tag_outcome_once(instance: DagsterInstance, run_id: str, outcome: OutcomeLabel) -> None:
    """The run's outcome, unless one is set: the first failed step says why the run ended."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.tags.get(OUTCOME_TAG):
        tag_run(instance, run_id, {OUTCOME_TAG: outcome.value})


def trading_outcome(report: ExecutionReport) -> OutcomeLabel:
    """How a run that reached its positions ended: an order of its filled (traded), none was
    needed, or orders were needed and none of its filled (skipped, rejected, unfilled)."""
    if any(order.filled_qty > 0 for order in report.sent):
        return OutcomeLabel.TRADED
    if report.plan.is_empty and not report.skipped:
        return OutcomeLabel.NOTHING_TO_DO
    return OutcomeLabel.NOT_CLEAN
