"""Shared helpers for the observability tests (plain functions, no fixtures)."""

import json
import logging
from pathlib import Path

from tecl_pipeline.observability.alerts import Alert, Alerter
from tecl_pipeline.observability.logs import LOGGER_NAME
from tecl_pipeline.observability.redaction import Redactor

# The planted secret: if it shows up anywhere a person or a log store can read, S2 failed.
CANARY = "CANARY-sk-9f8e7d6c5b4a"


class CaptureSink:
    """An alert sink that keeps what it is sent, for tests to read."""

    name = "capture"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


class CapturedAlerts:
    """Stands in for the `alerts` resource: every alerter it hands out sends to `sink`."""

    def __init__(self, sink: CaptureSink) -> None:
        self.sink = sink

    def alerter(self) -> Alerter:
        return Alerter([self.sink], Redactor())


class LoggerState:
    """Snapshot of the shared "tecl_pipeline" logger, restored after a test (T10)."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(LOGGER_NAME)
        self.handlers = list(self.logger.handlers)
        self.filters = list(self.logger.filters)
        self.level = self.logger.level

    def restore(self) -> None:
        for handler in list(self.logger.handlers):
            if handler not in self.handlers:
                self.logger.removeHandler(handler)
                handler.close()
        self.logger.handlers[:] = self.handlers
        self.logger.filters[:] = self.filters
        self.logger.setLevel(self.level)


def read_json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def all_text_under(folder: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file()
    )
