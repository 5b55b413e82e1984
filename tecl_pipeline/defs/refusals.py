"""A refusal to trade is a run outcome with a reason, not a crash: make Dagster show it so."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dagster import Failure

from tecl_pipeline.errors import RefusedToTrade

REFUSED = "refused"


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
            metadata={"outcome": REFUSED, "reason": str(exc), "error": type(exc).__name__},
            allow_retries=False,
        ) from exc
