"""What a finished daily run did, in words: the CLI's report and its exit status.

The status is decided from facts about the run, not from "a check failed": did the chain
stop before the orders (nothing sent: a refusal or an error), and did the session end at
its target once it traded (post_trade_reconciled passed, no warning, nothing cancelled).
"""

import re
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from tecl_pipeline.core.outcomes import CHECKED, Outcome, metadata_text, outcome_of
from tecl_pipeline.defs.presentation import qty

if TYPE_CHECKING:
    from dagster import ExecuteInProcessResult
    from dagster_shared.error import SerializableErrorInfo

    from tecl_pipeline.trading.execution import ExecutionReport

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REFUSED = 2
EXIT_NOT_CLEAN = 3
# BSD sysexits' EX_USAGE: a command line the program cannot read is not a refusal (2).
EXIT_USAGE = 64

# (status, what it means for a person, what a scheduler should do): README and
# `tecl run --help` both show this table.
EXIT_STATUSES: tuple[tuple[int, str, str], ...] = (
    (
        EXIT_OK,
        "the session ended at its target: traded, or nothing to do",
        "success",
    ),
    (
        EXIT_REFUSED,
        "refused: this run sent no order; the reason (symbol, date) is on stderr",
        "do not retry blindly: fix the reason, then run again",
    ),
    (
        EXIT_NOT_CLEAN,
        "orders were sent but the session did not end clean (residuals, an unfilled or "
        "rejected order, a warning check): the report says what to look at; alert sent",
        "do not re-run automatically: a person looks first",
    ),
    (
        EXIT_ERROR,
        "an error (configuration, an unreachable dependency, a bug, a stop by SIGTERM): "
        "one line on stderr",
        "retry after the cause is fixed",
    ),
    (
        EXIT_USAGE,
        "a command line that cannot be read (usage error)",
        "fix the command",
    ),
)


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int
    report: str
    reason: str = ""
    run_id: str = ""
    attention: tuple[str, ...] = ()
    """What a person must look at after a run that traded but did not end clean."""


def _failed_checks(result: "ExecuteInProcessResult") -> tuple[list[str], list[str]]:
    """(errors, warnings): failed check evaluations, each described; an ERROR on a blocking
    check is what stops the chain, the rest only say the session did not end clean."""
    from dagster import AssetCheckSeverity

    errors, warnings = [], []
    for evaluation in result.get_asset_check_evaluations():
        # A check that evaluated nothing (no history row, a refused session) is no finding.
        if evaluation.passed or metadata_text(evaluation.metadata.get(CHECKED)) is False:
            continue
        text = evaluation.description or evaluation.check_name
        if evaluation.severity == AssetCheckSeverity.ERROR:
            errors.append(text)
        else:
            warnings.append(text)
    return errors, warnings


@dataclass
class _StepFailures:
    refusals: list[str] = field(default_factory=list)
    """Bare reasons: the CLI says "refused to trade" once, in front of them."""
    incomplete: list[str] = field(default_factory=list)
    """Trading that failed part way, with what the broker has."""
    errors: list[str] = field(default_factory=list)


def _step_failures(result: "ExecuteInProcessResult") -> _StepFailures:
    """The run's failed steps, each with its reason, by what they mean."""
    found = _StepFailures()
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        outcome = outcome_of(user.metadata) if user is not None else None
        if user is not None and outcome is Outcome.REFUSED:
            found.refusals.append(str(metadata_text(user.metadata.get("reason")) or "refused"))
            continue
        if user is not None and outcome is not None and user.description:
            # A stop or a part-way failure: the step's own sentence says what is working.
            target = found.incomplete if outcome is Outcome.INCOMPLETE else found.errors
            target.append(user.description)
            continue
        chain = _error_chain(data.error)
        if any(e.cls_name == "DagsterAssetCheckFailedError" for e in chain):
            continue  # a blocking check: its evaluation carries the reason
        found.errors.append(f"step {event.step_key} failed: {error_cause(data.error)}")
    return found


def _error_chain(error: "SerializableErrorInfo | None") -> list["SerializableErrorInfo"]:
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause
    return chain


def error_cause(error: "SerializableErrorInfo | None") -> str:
    """What went wrong in a step, in words: Dagster wraps the user's exception, and the
    cause is what a person needs to read. The project's own errors are sentences already;
    only a foreign exception keeps its class name, which is then part of the story."""
    from tecl_pipeline.core.errors import project_exceptions

    chain = _error_chain(error)
    cause = next((e for e in chain if not (e.cls_name or "").startswith("Dagster")), None)
    cause = cause or (chain[-1] if chain else None)
    if cause is None:
        return "unknown error"
    text = cause.message.strip()
    name = cause.cls_name
    if not name:  # an error recorded without its class: its message is all there is
        return text or "unknown error"
    # SerializableErrorInfo.message is "[module.]ClassName: text" (format_exception_only).
    text = re.sub(rf"^[\w.]*\b{re.escape(name)}: ", "", text)
    if name in project_exceptions() and text:
        return text
    return f"{name}: {text}" if text else name


def is_untrusted_input(error: "SerializableErrorInfo | None") -> bool:
    """Whether the failure was input the pipeline refuses to trust (an UntrustedInputError
    anywhere in the chain): `tecl`'s exit 2, not an error of the machine or the code."""
    from tecl_pipeline.core.errors import UntrustedInputError, project_exceptions

    own = project_exceptions()
    return any(
        e.cls_name is not None and issubclass(own.get(e.cls_name, Exception), UntrustedInputError)
        for e in _error_chain(error)
    )


def _run_failure(result: "ExecuteInProcessResult", session: date) -> str:
    failure = next((e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"), None)
    error = getattr(failure.event_specific_data, "error", None) if failure else None
    cause = error_cause(error) if error is not None else "no step reported why"
    return f"the run for session {session} did not complete: {cause}"


def _asset_value(result: "ExecuteInProcessResult", name: str) -> Any:
    """The asset's value if this run materialized it, else None."""
    if not result.asset_materializations_for_node(name):
        return None
    return result.asset_value(name)


def explain_result(result: "ExecuteInProcessResult", session: date) -> RunOutcome:
    failures = _step_failures(result)
    refusals, errors = failures.refusals, failures.errors
    check_errors, check_warnings = _failed_checks(result)
    trade: ExecutionReport | None = _asset_value(result, "executed_orders")
    run_id = result.run_id
    if trade is None and failures.incomplete:
        # Trading failed part way: orders may be out. Not a refusal, not a mere error.
        attention = [*failures.incomplete, *errors]
        return RunOutcome(
            EXIT_NOT_CLEAN,
            format_report(result, session, attention),
            f"session {session} did not end clean: " + "; ".join(attention),
            run_id,
            tuple(attention),
        )
    if trade is None:
        # The chain stopped before executed_orders: this run sent no order.
        if errors:
            return RunOutcome(EXIT_ERROR, "", "; ".join(errors), run_id)
        reasons = check_errors + refusals
        if reasons:
            return RunOutcome(EXIT_REFUSED, "", "; ".join(reasons), run_id)
        # No step said why: a resource's set-up or the executor failed, an error.
        return RunOutcome(EXIT_ERROR, "", _run_failure(result, session), run_id)
    attention = [*check_errors, *check_warnings, *refusals, *errors]
    if trade is not None and trade.cancelled:
        attention.append("not filled in time, cancelled: " + ", ".join(trade.cancelled))
    if attention and trade is not None:
        # Orders the plan wanted but execution did not send (rejected, not tradable, a leg
        # still open) explain the residuals; the plan's own small-trade skips do not.
        attention += [
            f"{symbol} not sent: {why}"
            for symbol, why in trade.skipped
            if (symbol, why) not in trade.plan.skipped
        ]
    report = format_report(result, session, attention)
    if not attention:
        return RunOutcome(EXIT_OK, report, run_id=run_id)
    if errors and not (trade is not None and trade.sent):
        # Nothing was sent and something broke after the orders' step: an error, said so.
        return RunOutcome(EXIT_ERROR, report, "; ".join(errors), run_id)
    return RunOutcome(
        EXIT_NOT_CLEAN,
        report,
        f"session {session} did not end clean: " + "; ".join(attention),
        run_id,
        tuple(attention),
    )


def format_report(
    result: "ExecuteInProcessResult", session: date, attention: list[str] | None = None
) -> str:
    """The report of a run that reached its orders; the lines of a step that did not
    materialize (a failed journal write after trading) are left out, not guessed."""
    closes = _asset_value(result, "market_data")
    decision = _asset_value(result, "signal")
    report = _asset_value(result, "executed_orders")
    after = _asset_value(result, "post_trade_positions")
    lines = [f"session      {session}  (run {result.run_id})"]
    if closes is not None:
        [materialized] = result.asset_materializations_for_node("market_data")
        if metadata_text(materialized.metadata["demo_data"]) is True:
            # Synthetic prices and a simulated account, kept apart from real state.
            lines[0] += "  DEMO"
        source = str(metadata_text(materialized.metadata["source"]))
        lines.append(f"data         {source}; latest bar {closes.index[-1].date()}")
    if decision is not None:
        lines += [
            f"decision     leaf {decision.leaf}: {decision.reason}",
            "target       "
            + ", ".join(f"{s} {w * 100:.2f}%" for s, w in decision.allocation.items()),
        ]
    if report is not None:
        lines.append(f"broker       {report.broker}")
        if report.sent:
            lines.append("orders       sent this run:")
            lines += [
                f"  {o.side.value:4} {o.symbol:5} qty {qty(o.qty)} filled {qty(o.filled_qty)}"
                f" @ {o.filled_avg_price if o.filled_avg_price is not None else '-'}"
                f"  [{o.status.value}] {o.client_order_id}"
                for o in report.sent
            ]
        else:
            earlier = len(report.session_orders)
            # A leg held back (another run's order, a rejection) is not "at target".
            held_back = any(skip not in report.plan.skipped for skip in report.skipped)
            lines.append(
                (
                    "orders       none sent this run"
                    if attention or held_back
                    else "orders       none needed: positions already at target"
                )
                + (f" ({earlier} order(s) sent earlier this session)" if earlier else "")
            )
        lines += [f"  skipped {symbol}: {why}" for symbol, why in report.skipped]
    if after is not None:
        lines.append(f"positions    equity {after.equity:,.2f}, cash {after.cash:,.2f}")
        lines += [f"  {s:5} {qty(q)}" for s, q in after.positions.items()]
        if after.residuals:
            lines.append(
                "residuals    " + ", ".join(f"{s} {qty(r)}" for s, r in after.residuals.items())
            )
        lines.append(f"journal      {after.journal_record}")
    if attention:
        lines.append("look at      the session did not end clean:")
        lines += [f"  - {item}" for item in attention]
    return "\n".join(lines)
