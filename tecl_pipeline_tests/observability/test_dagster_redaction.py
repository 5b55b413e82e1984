"""Secrets stay out of Dagster's event log too (S2, C1).

Dagster's `context.log` and captured Python loggers feed the run's event log; a step's
exception is serialised into it as well. This proves the two mechanisms the Dagster layer
is meant to use: `install_redaction` on the loggers, `redacting_exceptions` around calls.
"""

import io
import logging

from dagster import DagsterInstance, asset, materialize

from tecl_pipeline.observability.logs import (
    LOGGER_NAME,
    Redactor,
    configure_logging,
    install_redaction,
    redacting_exceptions,
)
from tecl_pipeline_tests.observability.helpers import CANARY, LoggerState, all_text_under


def test_event_log_never_holds_the_canary(tmp_path):
    """S2, C1: context.log messages, captured "tecl_pipeline.*" records and the failing
    step's error all reach the event log (the cause is there) without the secret."""
    redactor = Redactor([CANARY])
    state = LoggerState()

    @asset
    def leaky(context) -> None:
        install_redaction(context.log, redactor)
        context.log.info(f"context.log with {CANARY}")
        logging.getLogger(f"{LOGGER_NAME}.broker").warning("module logger with %s", CANARY)
        with redacting_exceptions(redactor):
            raise PermissionError(f"AccessDenied for secret {CANARY}")

    settings = {"python_logs": {"managed_python_loggers": [LOGGER_NAME]}}
    try:
        configure_logging(tmp_path / "logs", redactor=redactor, stream=io.StringIO())
        with DagsterInstance.ephemeral(settings=settings) as instance:
            result = materialize([leaky], instance=instance, raise_on_error=False)
            records = instance.all_logs(result.run_id)
    finally:
        state.restore()

    assert not result.success
    texts = [record.user_message + repr(record.dagster_event) for record in records]
    everything = "\n".join(texts)
    assert CANARY not in everything
    assert CANARY not in all_text_under(tmp_path)  # nor in the JSON log file
    assert "context.log with ***" in everything
    assert "module logger with ***" in everything
    assert "AccessDenied for secret ***" in everything  # the cause is still named (C1)
