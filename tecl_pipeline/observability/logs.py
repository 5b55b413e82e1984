"""Structured, redacted, bounded logs that can never fail the trading path.

- D7: one JSON object per line, carrying run id, session and step.
- S2: every record is redacted before any sink (or a parent logger, or Dagster's capture
  handler) sees it.
- D7, X7, A10: the local file is size-capped and rotated; a single huge record is
  truncated so it cannot blow the cap either.
- C5: a sink that fails (disk full, permission, closed stream) never raises into the
  caller; its records go to stderr with one note per failure burst.

State lives on the "tecl_pipeline" logger and its handlers, never in this module, so
`configure_logging` can be called again (tests, a second run in one process) and replaces
what it installed instead of adding to it.
"""

import json
import logging
import logging.handlers
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from tecl_pipeline.observability.redaction import (
    REDACTED,
    RedactedError,
    RedactedRefusal,
    Redactor,
    redact,
    redacting_exceptions,
    scrub_exception,
)

__all__ = (
    "LOGGER_NAME",
    "LOG_FILE_NAME",
    "REDACTED",
    "FallbackHandler",
    "JsonFormatter",
    "LogContext",
    "RedactedError",
    "RedactedRefusal",
    "RedactingFilter",
    "RedactingHandler",
    "Redactor",
    "configure_logging",
    "current_log_context",
    "install_redaction",
    "log_context",
    "redact",
    "redacting_exceptions",
    "scrub_exception",
)

# Exchange time: log lines line up with sessions and the broker's clock (T2). Local copy
# rather than tecl_pipeline.core.calendar, which imports exchange_calendars and pandas.
EXCHANGE_TZ = ZoneInfo("America/New_York")
LOGGER_NAME = "tecl_pipeline"
LOG_FILE_NAME = "tecl_pipeline.jsonl"
CONTEXT_FIELDS = ("run_id", "session", "step")

# Handler names mark what configure_logging installed, so a second call finds and
# replaces them (idempotence without module-level bookkeeping).
_REDACT_HANDLER = "tecl_pipeline.redact"
_FILE_HANDLER = "tecl_pipeline.file"
_STDERR_HANDLER = "tecl_pipeline.stderr"
_MANAGED_HANDLERS = frozenset({_REDACT_HANDLER, _FILE_HANDLER, _STDERR_HANDLER})

# Attributes every LogRecord has; anything else on a record came from `extra=`.
# Where a step's `context.log` keeps Dagster's own structure for the event log (the run id,
# the step, a DagsterEvent); its text is `record.msg`, redacted above. Rebuilt, Dagster could
# no longer read it. The name is dagster's LOG_RECORD_METADATA_ATTR, which it does not export.
_DAGSTER_RECORD_META = "dagster_meta"
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@dataclass(frozen=True)
class LogContext:
    """What run, session and step the current code is working for."""

    run_id: str | None = None
    session: str | None = None
    step: str | None = None


# A ContextVar, not a global: each thread/task sees its own value, and `log_context`
# restores the previous one on exit, so nothing leaks from one run into the next (T10).
_CONTEXT: ContextVar[LogContext | None] = ContextVar("tecl_pipeline_log_context", default=None)
_NO_CONTEXT = LogContext()


def current_log_context() -> LogContext:
    return _CONTEXT.get() or _NO_CONTEXT


@contextmanager
def records_dropped(logger_name: str = "") -> Iterator[None]:
    """While the block runs, records of `logger_name` (the root logger by default) that no
    other handler takes are dropped: without any handler Python prints them raw on stderr,
    where a command promises one line. What matters is then said by the caller, once."""
    logger = logging.getLogger(logger_name)
    held = logging.NullHandler()
    logger.addHandler(held)
    try:
        yield
    finally:
        logger.removeHandler(held)


@contextmanager
def log_context(
    *, run_id: str | None = None, session: date | str | None = None, step: str | None = None
) -> Iterator[LogContext]:
    """Tag every record logged inside the block; fields not given keep the outer value.

    Note: a new thread starts with an empty context (contextvars are not inherited by
    `threading.Thread`); use `contextvars.copy_context().run` to carry it over.
    """
    outer = current_log_context()
    changes: dict[str, str] = {}
    if run_id is not None:
        changes["run_id"] = run_id
    if session is not None:
        changes["session"] = session.isoformat() if isinstance(session, date) else str(session)
    if step is not None:
        changes["step"] = step
    inner = replace(outer, **changes)
    token = _CONTEXT.set(inner)
    try:
        yield inner
    finally:
        _CONTEXT.reset(token)


def _safe_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad %-args must not lose the record, nor raise
        return f"{record.msg!r} (unformattable args: {record.args!r})"


class RedactingFilter(logging.Filter):
    """Redacts a record in place: message (args merged in), exception, stack, extras (S2).

    In place on purpose: the handlers after this one on the logger, parent loggers' handlers
    and Dagster's capture handler all receive the same record object.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        record.msg = redactor.redact(_safe_message(record))
        record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = redactor.redact(text)
            if record.exc_text != text:
                # Any formatter would re-render the raw exception from exc_info; drop it
                # and keep only the redacted text (formatters print exc_text on their own).
                record.exc_info = None
        elif record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and key != _DAGSTER_RECORD_META:
                setattr(record, key, redactor.redact_value(value))
        return True


class RedactingHandler(logging.Handler):
    """Emits nothing; its filter redacts each record before any later handler sees it.

    `configure_logging` puts it first on the "tecl_pipeline" logger. Logger-level filters
    only see records logged on that exact logger; a handler sees records propagated from
    every child logger ("tecl_pipeline.adapters.alpaca.broker", ...) too.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(logging.NOTSET)
        self.set_name(_REDACT_HANDLER)
        self.addFilter(RedactingFilter(redactor))

    def emit(self, record: logging.LogRecord) -> None:
        return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, run_id, session, step, exc.

    Context comes from the record's extras first (`extra={"session": ...}`), then from
    `log_context`. Other extras are kept under "extra". ASCII-only output, so character
    counts are byte counts and the rotating handler's size cap is exact.
    """

    def __init__(self, redactor: Redactor | None = None, *, max_message_chars: int = 16_000):
        super().__init__()
        self.redactor = redactor
        self.max_message_chars = max_message_chars

    def _cap(self, text: str) -> str:
        # Masked before the cut: the cut could leave a prefix of an encoded secret that no
        # longer matches as a whole.
        text = redact(text, self.redactor)
        if len(text) <= self.max_message_chars:
            return text
        cut = len(text) - self.max_message_chars
        return f"{text[: self.max_message_chars]}...[truncated {cut} chars]"

    def format(self, record: logging.LogRecord) -> str:
        context = current_log_context()
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, EXCHANGE_TZ).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": self._cap(_safe_message(record)),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is None:
                value = getattr(context, field)
            entry[field] = value.isoformat() if isinstance(value, date) else value
        exc = record.exc_text
        if not exc and record.exc_info and record.exc_info[1] is not None:
            exc = self.formatException(record.exc_info)
        if exc:
            entry["exc"] = self._cap(exc)
        if record.stack_info:
            entry["stack"] = self._cap(record.stack_info)
        extra = {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and key not in CONTEXT_FIELDS and not key.startswith("_")
        }
        if extra:
            entry["extra"] = extra
        line = json.dumps(entry, ensure_ascii=True, default=str)
        # Defence in depth: a record that bypassed the filter is still masked here.
        return line if self.redactor is None else self.redactor.redact(line)


class FallbackHandler(logging.Handler):
    """Wraps a handler so its failures never raise and never lose the record (C5).

    Standard handlers catch their own errors and call `handleError`, which prints a full
    traceback per record and drops the record. This wrapper routes the failing record to
    stderr instead, with a one-line note at the start of each failure burst and another
    when the sink recovers.
    """

    def __init__(
        self,
        inner: logging.Handler,
        *,
        fallback: TextIO | None = None,
        redactor: Redactor | None = None,
        echoed_from: int | None = None,
    ) -> None:
        """`echoed_from`: records at this level and above already reach the fallback stream
        through another handler; a failure of this sink must not print them a second time."""
        super().__init__(inner.level)
        self.inner = inner
        self.set_name(inner.get_name())
        self._fallback = fallback
        self._redactor = redactor
        self._failing = False
        self._echoed_from = echoed_from
        # The inner handler calls handleError inside its own `except`; re-raising there
        # hands the exception to `emit` below (thread-safe: no shared flag needed).
        inner.handleError = self._reraise

    @staticmethod
    def _reraise(record: logging.LogRecord) -> None:
        raise  # re-raises the inner handler's exception: it calls this from its except

    @property
    def sink_name(self) -> str:
        return self.inner.get_name() or type(self.inner).__name__

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.inner.handle(record)
        except Exception as exc:
            self._fall_back(record, exc)
            return
        if self._failing:
            self._failing = False
            self._write_fallback(f"tecl_pipeline logging: sink {self.sink_name} recovered\n")

    def _fall_back(self, record: logging.LogRecord, exc: Exception) -> None:
        lines = []
        if not self._failing:
            self._failing = True
            lines.append(
                f"tecl_pipeline logging: sink {self.sink_name} failed "
                f"({type(exc).__name__}: {exc}); its records go to stderr until it recovers"
            )
        if self._echoed_from is None or record.levelno < self._echoed_from:
            try:
                lines.append((self.inner.formatter or logging.Formatter()).format(record))
            except Exception:
                lines.append(f"{record.levelname} {record.name}: {_safe_message(record)}")
        if not lines:
            return
        self._write_fallback("".join(f"{redact(line, self._redactor)}\n" for line in lines))

    def _write_fallback(self, text: str) -> None:
        # Resolved at write time: the configured stream, else the current sys.stderr, else
        # the interpreter's original one; never the stream of the sink that just failed.
        # If all of them are gone there is nowhere left to say it, and the caller goes on.
        failed = getattr(self.inner, "stream", None)
        for stream in (self._fallback, sys.stderr, sys.__stderr__):
            if stream is None or stream is failed:
                continue
            with suppress(Exception):  # this stream is gone too: try the next one
                stream.write(text)
                stream.flush()
                return

    def handleError(self, record: logging.LogRecord) -> None:
        return None  # never print tracebacks from the logging path itself (C5)

    def flush(self) -> None:
        try:
            self.inner.flush()
        except Exception:  # C5: flushing a broken sink is not the caller's problem
            return

    def close(self) -> None:
        with suppress(Exception):  # same as flush
            self.inner.close()
        super().close()


def install_redaction(logger: logging.Logger, redactor: Redactor) -> None:
    """Redact every record that reaches `logger` before any of its handlers (S2).

    Idempotent. Puts a `RedactingHandler` first among the logger's handlers (covering child
    loggers too) and a filter on the logger itself (covering records logged directly on
    it, e.g. Dagster's `context.log`, whose handler ignores handler-level filters).
    """
    for handler in list(logger.handlers):
        if handler.get_name() == _REDACT_HANDLER:
            logger.removeHandler(handler)
    # First, not appended: handlers added earlier (Dagster's capture handler) must see
    # the redacted record.
    logger.handlers.insert(0, RedactingHandler(redactor))
    for existing in list(logger.filters):
        if isinstance(existing, RedactingFilter):
            logger.removeFilter(existing)
    logger.addFilter(RedactingFilter(redactor))


def configure_logging(
    log_dir: Path | None,
    *,
    max_bytes: int = 5_000_000,
    backups: int = 3,
    redactor: Redactor,
    stream: TextIO | None = None,
    level: int = logging.INFO,
    stderr_level: int = logging.NOTSET,
) -> logging.Logger:
    """Set up the "tecl_pipeline" logger: redaction, a rotating JSON file, JSON on stderr.

    The file (``<log_dir>/tecl_pipeline.jsonl`` plus `backups` rotated copies) never
    exceeds about ``(backups + 1) * max_bytes``. `log_dir=None` means stderr only (the
    container platform keeps logs, with retention set in infrastructure code, A10).
    Calling it again replaces what the previous call installed. `stream` defaults to the
    current ``sys.stderr``; `stderr_level` raises the bar for it alone (a CLI that
    prints its own report may want only warnings there, while the file keeps INFO).
    """
    if max_bytes < 1024:
        raise ValueError(f"max_bytes must be at least 1024, got {max_bytes}")
    if backups < 1:
        # RotatingFileHandler with no backups never rotates: the file would grow forever.
        raise ValueError(f"backups must be at least 1, got {backups}")
    stream = sys.stderr if stream is None else stream
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if handler.get_name() in _MANAGED_HANDLERS:
            logger.removeHandler(handler)
            handler.close()
    install_redaction(logger, redactor)

    # A record larger than the cap would make one file exceed it; cap the message instead.
    formatter = JsonFormatter(redactor, max_message_chars=max(256, min(16_000, max_bytes // 4)))
    sinks: list[logging.Handler] = []
    if log_dir is not None:
        # If this fails, the file handler fails on first use and falls back to stderr (C5).
        with suppress(OSError):
            Path(log_dir).mkdir(parents=True, exist_ok=True)
        # delay=True: opening the file is part of emitting, so an unwritable directory is
        # a sink failure (fallback to stderr, retried each record) and not a startup crash.
        file_handler = logging.handlers.RotatingFileHandler(
            Path(log_dir) / LOG_FILE_NAME,
            maxBytes=max_bytes,
            backupCount=backups,
            encoding="utf-8",
            delay=True,
        )
        file_handler.set_name(_FILE_HANDLER)
        sinks.append(file_handler)
    stream_handler = logging.StreamHandler(stream)
    stream_handler.set_name(_STDERR_HANDLER)
    stream_handler.setLevel(stderr_level)
    sinks.append(stream_handler)
    for sink in sinks:
        sink.setFormatter(formatter)
        sink.addFilter(RedactingFilter(redactor))
        # The stderr handler already shows what reaches its level: a failing file sink
        # falls back to stderr only with what would otherwise be missing there.
        echoed = None if sink is stream_handler else max(stderr_level, logging.NOTSET + 1)
        logger.addHandler(
            FallbackHandler(sink, fallback=stream, redactor=redactor, echoed_from=echoed)
        )
    logger.setLevel(level)
    return logger
