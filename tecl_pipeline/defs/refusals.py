"""A refusal to trade is a run outcome with a reason, not a crash: make Dagster show it so."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Failure,
)

from tecl_pipeline.core.errors import RefusedToTrade
from tecl_pipeline.core.outcomes import CHECKED, OUTCOME, Outcome


@contextmanager
def refusing_to_trade(on_refusal: Callable[[str], None] | None = None) -> Iterator[None]:
    """Turn RefusedToTrade into a Dagster Failure that names the reason and is not retried,
    after telling `on_refusal` (the alert path) why."""
    try:
        yield
    except RefusedToTrade as exc:
        if on_refusal is not None:
            on_refusal(str(exc))
        raise Failure(
            description=f"refused to trade: {exc}",
            metadata={
                OUTCOME: Outcome.REFUSED.value,
                "reason": str(exc),
                "error": type(exc).__name__,
            },
            allow_retries=False,
        ) from exc


def tell_checks_session_refused(
    context: AssetExecutionContext | AssetCheckExecutionContext,
    refused_at: AssetKey,
    reason: str,
    *,
    own_checks: bool,
) -> None:
    """Every check of this run that will now not run (on `refused_at` if `own_checks`, and on
    everything downstream of it) gets an evaluation saying the session was refused and why,
    instead of Dagster's bare "Execution failed". A warning that evaluated nothing: marked
    so in its metadata, and never read as a finding about the session."""
    op_context = context.op_execution_context
    graph = op_context.job_def.asset_layer.asset_graph
    selection = op_context.run.asset_check_selection
    planned = graph.asset_check_keys if selection is None else selection & graph.asset_check_keys
    partition = op_context.partition_key if op_context.has_partition_key else None
    for key in sorted(planned, key=lambda k: k.to_user_string()):
        if key.asset_key == refused_at:
            if not own_checks:
                continue
        elif refused_at not in graph.get_ancestor_asset_keys(key.asset_key):
            continue
        # Dagster's log_event records an AssetCheckEvaluation (it has a branch for it), but
        # its annotation still names only materializations, observations and expectations.
        op_context.log_event(
            AssetCheckEvaluation(  # pyright: ignore[reportArgumentType]
                asset_key=key.asset_key,
                check_name=key.name,
                passed=False,
                severity=AssetCheckSeverity.WARN,
                description=f"session refused: {reason}",
                metadata={CHECKED: False, OUTCOME: Outcome.REFUSED.value, "reason": reason},
                partition=partition,
            )
        )
