"""How sensors reach a person: the same alert sinks as the runs (C1, A3, B6).

Sensors run in the daemon, not in a run, so they cannot use ObservabilityResource; they
build an Alerter from the same environment the code location reads. Built per evaluation
(cheap: a few sink objects) so nothing survives between ticks but the cursor.
"""

import os
from collections.abc import Callable
from pathlib import Path

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.defs.partitions import PARTITION_TAG, session_of
from tecl_pipeline.observability.alerts import Alerter, alerter_from_env
from tecl_pipeline.observability.logs import Redactor

AlerterFactory = Callable[[], Alerter]
__all__ = ("PARTITION_TAG", "AlerterFactory", "build_alerter", "session_of")


def build_alerter() -> Alerter:
    """Log sink, the alert file (TECL_ALERT_FILE or <logs_dir>/alerts.jsonl) and the webhook
    (TECL_ALERT_WEBHOOK_URL), exactly as a run would alert."""
    redactor = Redactor.from_environ(os.environ)
    settings = Settings.from_env(os.environ, cwd=Path.cwd())
    return alerter_from_env(os.environ, redactor, settings.logs_dir)
