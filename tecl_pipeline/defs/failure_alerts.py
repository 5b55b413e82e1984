"""C1: every failed daily run alerts, once, wherever it was started.

Dagster's run-status sensors see only runs launched from a code location: a run executed
in process (`tecl run`, `make run`) has no origin and is skipped, and with no daemon no
sensor runs at all. So the alert comes from inside the run: `run_failure_alert_hook` sits
on every step of daily_trading_job and alerts at the run's first failed step, whatever
started the run (the CLI, the launchpad, the schedule). `run_failure_alert_sensor` stays
for runs that failed without a step failure reaching the hook (a killed run worker, a
run that died before its steps).

One alert per failed run: whoever alerts first tags the run (`RUN_ALERTED_TAG`), and a
tagged run is never alerted again. A step that alerted itself (a refusal, a stop, trading
failed part way) counts: its alert already names the cause, so the hook only tags the
run. A blocking check that failed is a refusal too, and the hook's alert says so. The job's
steps run one after another in the run's one process (daily_trading_job's executor), so two
failed steps never check the tag at the same moment.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    HookContext,
    HookDefinition,
    HookExecutionResult,
)

from tecl_pipeline.common.events import Severity
from tecl_pipeline.core.outcomes import Outcome, outcome_of
from tecl_pipeline.defs.partitions import PARTITION_TAG, session_of
from tecl_pipeline.defs.run_report import error_cause
from tecl_pipeline.defs.run_tags import RUN_ALERTED_TAG, OutcomeLabel, tag_outcome_once
from tecl_pipeline.observability.alerts import Alert

HOOK_NAME = "run_failure_alert_hook"


def step_failure_reason(failure: DagsterEvent, checks: Sequence[AssetCheckEvaluation] = ()) -> str:
    """Why a step failed (a STEP_FAILURE event), in words: a refusal's own description, the
    failed blocking checks' descriptions, else the exception under Dagster's wrappers."""
    data = failure.step_failure_data
    user = data.user_failure_data
    if user is not None and user.description:
        return user.description
    failed = [
        f"{c.check_name}: {c.description or 'failed'}"
        for c in checks
        if not c.passed and c.severity == AssetCheckSeverity.ERROR
    ]
    return "; ".join(failed) if failed else error_cause(data.error)


def failed_steps(events: Iterable[DagsterEvent]) -> list[str]:
    """ "<step>: <why>" for every failed step among a run's events."""
    events = list(events)
    checks: dict[str | None, list[AssetCheckEvaluation]] = defaultdict(list)
    for event in events:
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            checks[event.step_key].append(event.asset_check_evaluation_data)
    return [
        f"{event.step_key}: {step_failure_reason(event, checks[event.step_key])}"
        for event in events
        if event.is_step_failure
    ]


def alerted_by_the_step(events: Iterable[DagsterEvent]) -> bool:
    """Whether every failed step among `events` sent its own alert: a failure with an
    Outcome (refused, stopped, incomplete)."""
    failures = [e.step_failure_data for e in events if e.is_step_failure]
    return bool(failures) and all(
        f.user_failure_data is not None and outcome_of(f.user_failure_data.metadata) is not None
        for f in failures
    )


def refused_by_a_check(events: Iterable[DagsterEvent]) -> bool:
    """Whether a blocking check among `events` failed: the session was refused."""
    return any(
        not e.asset_check_evaluation_data.passed
        and e.asset_check_evaluation_data.severity == AssetCheckSeverity.ERROR
        for e in events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    )


def failed_outcome(events: Iterable[DagsterEvent]) -> OutcomeLabel:
    """How a run that failed at these events ended: refused (a blocking check or a step's
    refusal), stopped on request, or an error (trading that failed part way included)."""
    events = list(events)
    if refused_by_a_check(events):
        return OutcomeLabel.REFUSED
    outcomes = {
        outcome_of(e.step_failure_data.user_failure_data.metadata)
        for e in events
        if e.is_step_failure and e.step_failure_data.user_failure_data is not None
    }
    if Outcome.REFUSED in outcomes:
        return OutcomeLabel.REFUSED
    if Outcome.STOPPED in outcomes:
        return OutcomeLabel.STOPPED
    return OutcomeLabel.ERROR


def run_failure_alert(
    run: DagsterRun, steps: Sequence[str], message: str = "", *, refused: bool = False
) -> Alert:
    """The alert of a failed run; `refused` when a blocking check stopped it on purpose."""
    session = session_of(run.tags.get(PARTITION_TAG))
    where = f" for session {session.isoformat()}" if session else ""
    lines = [message] if message else []
    if refused:
        return Alert(
            kind=Outcome.REFUSED.value,
            title=f"session {session}: refused to trade, no orders",
            detail="\n".join([*lines, *steps]),
            session=session,
            run_id=run.run_id,
        )
    return Alert(
        kind="run_failure",
        title=f"{run.job_name} failed{where}",
        detail="\n".join([*lines, *steps]) or "run failed (no message)",
        session=session,
        run_id=run.run_id,
        severity=Severity.CRITICAL,
    )


def alert_once(
    instance: DagsterInstance,
    run_id: str,
    send: Callable[[DagsterRun], object],
    *,
    route: str,
) -> bool:
    """Call `send` for the run unless its failure alert went out already; tag it after.
    Returns whether this call sent it."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.tags.get(RUN_ALERTED_TAG):
        return False
    send(run)
    instance.add_run_tags(run_id, {RUN_ALERTED_TAG: route})
    return True


def _hook_fn(context: HookContext, event_list: Sequence[DagsterEvent]) -> HookExecutionResult:
    if not any(event.is_step_failure for event in event_list):
        return HookExecutionResult(hook_name=HOOK_NAME, is_skipped=True)
    observability = context.resources.observability
    steps = failed_steps(event_list)
    route = "step" if alerted_by_the_step(event_list) else "hook"

    def send(run: DagsterRun) -> None:
        if route == "step":
            return
        alert = run_failure_alert(
            run,
            steps,
            f"run failed at step {context.step_key}",
            refused=refused_by_a_check(event_list),
        )
        observability.alert(
            alert.kind,
            alert.title,
            alert.detail,
            session=alert.session,
            run_id=alert.run_id,
            severity=alert.severity,
        )

    alert_once(
        context.instance,
        context.run_id,
        send,
        route=route,
    )
    # After the alert, which nothing may hold up.
    tag_outcome_once(context.instance, context.run_id, failed_outcome(event_list))
    return HookExecutionResult(hook_name=HOOK_NAME, is_skipped=False)


run_failure_alert_hook = HookDefinition(
    name=HOOK_NAME,
    hook_fn=_hook_fn,
    required_resource_keys={"observability"},
)
