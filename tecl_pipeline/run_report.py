"""What a finished daily run did, in words: the CLI's report and its exit status."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from dagster import ExecuteInProcessResult
    from dagster._utils.error import SerializableErrorInfo

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REFUSED = 2
# Metadata of a check result that evaluated nothing (no history row to compare with, a
# refused session): shown as a warning, never read as a finding about the session.
CHECKED_METADATA = "checked"


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int
    report: str
    reason: str = ""


def _failed_checks(result: "ExecuteInProcessResult") -> list[str]:
    return [
        evaluation.description or evaluation.check_name
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed
        and _metadata_text(evaluation.metadata.get(CHECKED_METADATA)) is not False
    ]


def _step_failures(result: "ExecuteInProcessResult") -> tuple[list[str], list[str]]:
    """(refusals, errors) from the run's failed steps, each with its reason."""
    refusals, errors = [], []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None and _metadata_text(user.metadata.get("outcome")) == "refused":
            refusals.append(user.description or "refused")
            continue
        chain = _error_chain(data.error)
        if any(e.cls_name == "DagsterAssetCheckFailedError" for e in chain):
            continue  # a blocking check: its evaluation carries the reason
        errors.append(f"step {event.step_key} failed: {error_cause(data.error)}")
    return refusals, errors


def _error_chain(error: "SerializableErrorInfo | None") -> list["SerializableErrorInfo"]:
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause
    return chain


def error_cause(error: "SerializableErrorInfo | None") -> str:
    """What went wrong in a step, in words: Dagster wraps the user's exception, and the
    cause is what a person needs to read."""
    chain = _error_chain(error)
    cause = next((e for e in chain if not e.cls_name.startswith("Dagster")), None)
    cause = cause or (chain[-1] if chain else None)
    return f"{cause.cls_name}: {cause.message.strip()}" if cause else "unknown error"


def _metadata_text(value: object) -> str | None:
    return getattr(value, "value", value) if value is not None else None


def explain_result(result: "ExecuteInProcessResult", session: date) -> RunOutcome:
    refusals, errors = _step_failures(result)
    if errors:
        return RunOutcome(EXIT_ERROR, "", "; ".join(errors))
    refusals = _failed_checks(result) + refusals
    if refusals or not result.success:
        return RunOutcome(EXIT_REFUSED, "", "; ".join(refusals) or "the run did not complete")
    return RunOutcome(EXIT_OK, format_report(result, session))


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}"


def format_report(result: "ExecuteInProcessResult", session: date) -> str:
    closes: pd.DataFrame = result.asset_value("market_data")
    decision = result.asset_value("signal")
    report = result.asset_value("executed_orders")
    after = result.asset_value("post_trade_positions")
    source = next(
        str(m.metadata["source"].value)
        for m in result.asset_materializations_for_node("market_data")
    )
    lines = [
        f"session      {session}  (run {result.run_id})",
        f"data         {source}; latest bar {closes.index[-1].date()}",
        f"decision     leaf {decision.leaf}: {decision.reason}",
        "target       " + ", ".join(f"{s} {w * 100:.2f}%" for s, w in decision.allocation.items()),
        f"broker       {report.broker}",
    ]
    if report.sent:
        lines.append("orders       sent this run:")
        lines += [
            f"  {o.side.value:4} {o.symbol:5} qty {_qty(o.qty)} filled {_qty(o.filled_qty)}"
            f" @ {o.filled_avg_price if o.filled_avg_price is not None else '-'}"
            f"  [{o.status.value}] {o.client_order_id}"
            for o in report.sent
        ]
    else:
        earlier = len(report.session_orders)
        lines.append(
            "orders       none needed: positions already at target"
            + (f" ({earlier} order(s) sent earlier this session)" if earlier else "")
        )
    lines += [f"  skipped {symbol}: {why}" for symbol, why in report.skipped]
    lines.append(f"positions    equity {after.equity:,.2f}, cash {after.cash:,.2f}")
    lines += [f"  {s:5} {_qty(q)}" for s, q in after.positions.items()]
    if after.residuals:
        lines.append(
            "residuals    " + ", ".join(f"{s} {_qty(r)}" for s, r in after.residuals.items())
        )
    lines.append(f"journal      {after.journal_record}")
    return "\n".join(lines)
