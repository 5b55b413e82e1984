"""Structured, redacted, bounded logs that never fail the caller (D7, S2, C5, X7, A10)."""

import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.errors import RefusedToTrade
from tecl_pipeline.observability.logs import (
    LOG_FILE_NAME,
    LOGGER_NAME,
    FallbackHandler,
    JsonFormatter,
    RedactedError,
    RedactedRefusal,
    Redactor,
    configure_logging,
    current_log_context,
    log_context,
    redacting_exceptions,
    scrub_exception,
)
from tecl_pipeline_tests.observability.helpers import (
    CANARY,
    LoggerState,
    all_text_under,
    read_json_lines,
)


@pytest.fixture
def restore_logger() -> Iterator[None]:
    state = LoggerState()
    yield
    state.restore()


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([CANARY])


def _log(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def test_json_lines_carry_run_id_session_and_step(tmp_path, redactor, restore_logger):
    """D7: one JSON object per line, exchange-time timestamp, run id / session / step from
    the context, with explicit extras taking precedence."""
    stderr = io.StringIO()
    configure_logging(tmp_path, redactor=redactor, stream=stderr)
    with log_context(run_id="run-1", session=date(2024, 3, 15)):
        with log_context(step="orders"):
            _log("trading.execution").info("submitted %d orders", 3)
        _log().warning("explicit", extra={"step": "reconcile", "symbol": "TECL"})
    _log().info("outside any context")

    lines = read_json_lines(tmp_path / LOG_FILE_NAME)
    assert [json.loads(line) for line in stderr.getvalue().splitlines()] == lines
    first, second, third = lines
    assert first["message"] == "submitted 3 orders"
    assert first["logger"] == "tecl_pipeline.trading.execution"
    assert (first["run_id"], first["session"], first["step"]) == ("run-1", "2024-03-15", "orders")
    assert (second["level"], second["step"], second["extra"]) == (
        "WARNING",
        "reconcile",
        {"symbol": "TECL"},
    )
    assert (third["run_id"], third["session"], third["step"]) == (None, None, None)
    stamp = datetime.fromisoformat(str(first["ts"]))
    assert stamp.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))  # EST / EDT


def test_log_context_nests_and_is_restored():
    """T10: the context set for one run does not survive into the next."""
    with log_context(run_id="a", session="2024-01-02") as outer:
        with log_context(step="s") as inner:
            assert (inner.run_id, inner.session, inner.step) == ("a", "2024-01-02", "s")
        assert current_log_context() == outer
    assert current_log_context().run_id is None


def test_canary_secret_never_reaches_file_stderr_parents_or_exception_text(
    tmp_path, redactor, restore_logger
):
    """S2: a planted secret in a message, its args, extras, an exception and a stack is
    masked in the log file, on stderr, and in what parent loggers (root, Dagster's capture)
    receive, because redaction happens in place before any sink."""
    stderr = io.StringIO()
    configure_logging(tmp_path, redactor=redactor, stream=stderr)
    seen_by_root: list[str] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen_by_root.append(f"{record.getMessage()} {record.exc_text} {vars(record)}")

    spy = Spy()
    logging.getLogger().addHandler(spy)
    try:
        log = _log("broker.alpaca")
        log.info(f"key in message {CANARY}")
        log.info("key in args %s", CANARY)
        log.info("key in extras", extra={"headers": {"APCA-API-SECRET-KEY": CANARY}})
        log.info("stack", stack_info=True, extra={"note": f"x{CANARY}x"})
        try:
            raise ConnectionError(f"401 for secret {CANARY}")
        except ConnectionError:
            log.exception("call failed")
    finally:
        logging.getLogger().removeHandler(spy)

    file_text = all_text_under(tmp_path)
    assert file_text.count("***") >= 5
    for text in (file_text, stderr.getvalue(), *seen_by_root):
        assert CANARY not in text
    assert "ConnectionError: 401 for secret ***" in file_text


def test_redactor_masks_encoded_forms_and_ignores_short_values(tmp_path):
    """S2: the URL-encoded form is masked too; values under 4 characters are not secrets."""
    redactor = Redactor(["abc", "", None, "wJal/rXUt+nFEMI"])
    assert redactor.redact("abc") == "abc"
    assert redactor.redact("k=wJal%2FrXUt%2BnFEMI&x=wJal/rXUt+nFEMI") == "k=***&x=***"
    assert "wJal" not in repr(redactor)
    settings = Settings.from_env({"ALPACA_SECRET_KEY": CANARY, "HOME": "/root/home"}, cwd=tmp_path)
    env = Redactor.for_settings(settings)
    assert env.redact(f"{CANARY} /root/home") == "*** /root/home"


def test_a_long_message_is_masked_before_it_is_truncated():
    """S2: the formatter caps a huge message; a record that reached it unfiltered, with an
    encoded secret straddling the cap, shows the mask and no prefix of the encoding."""
    secret = "Zq9/Xy+Ab3&Cd<Ef>"
    encoded = "Zq9%2FXy%2bAb3%26Cd%3cEf%3E"
    formatter = JsonFormatter(Redactor([secret]), max_message_chars=256)
    record = logging.makeLogRecord({"msg": "x" * 245 + " " + encoded + " " + "y" * 100})
    line = formatter.format(record)
    message = json.loads(line)["message"]
    assert "***" in message and "truncated" in message, message
    assert "Zq9" not in line and "%2F" not in line, line


def test_disk_full_falls_back_to_stderr_without_raising(tmp_path, redactor, restore_logger):
    """C5: a sink that cannot write (ENOSPC via /dev/full) never raises into the caller; its
    records go to stderr, with one note for the whole failure burst and one on recovery."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    stderr = io.StringIO()
    logger = configure_logging(tmp_path, redactor=redactor, stream=stderr)
    _log().info("before")
    file_handler = next(h for h in logger.handlers if h.get_name() == "tecl_pipeline.file")
    assert isinstance(file_handler, FallbackHandler)
    inner = file_handler.inner
    assert isinstance(inner, logging.StreamHandler)
    good_stream = inner.stream
    inner.stream = open("/dev/full", "w")  # noqa: SIM115 -- the handler owns it now
    for index in range(5):
        _log("execution").info("order %d sent, key %s", index, CANARY)  # must not raise
    with contextlib.suppress(OSError):  # its buffer still holds what it could not write
        inner.stream.close()
    inner.stream = good_stream
    _log().info("after")

    err = stderr.getvalue()
    assert err.count("sink tecl_pipeline.file failed (OSError") == 1
    assert "No space left on device" in err
    assert err.count("sink tecl_pipeline.file recovered") == 1
    # Each failed record is on stderr once: the stderr sink shows it, so the fallback
    # does not repeat it (an alert line printed twice reads as two alerts).
    assert all(err.count(f"order {i} sent") == 1 for i in range(5))
    assert CANARY not in err
    messages = [line["message"] for line in read_json_lines(tmp_path / LOG_FILE_NAME)]
    assert messages == ["before", "after"]


def test_closed_stderr_stream_and_unwritable_dir_never_raise(
    tmp_path, redactor, restore_logger, monkeypatch
):
    """C5: a closed stream and a log directory that cannot exist (its parent is a file) are
    sink failures, not crashes: logging calls return normally and the records go to the
    process's stderr."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    stream = io.StringIO()
    configure_logging(blocker / "logs", redactor=redactor, stream=stream)
    stream.close()
    fallback = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fallback)
    _log().error("trade path goes on %s", CANARY)
    _log().error("and on")
    monkeypatch.undo()
    text = fallback.getvalue()
    assert "sink tecl_pipeline.file failed (NotADirectoryError" in text
    assert "sink tecl_pipeline.stderr failed (ValueError" in text
    # Once: the stderr sink's own fallback carries it; the file sink's does not repeat it.
    assert text.count("trade path goes on ***") == 1 and CANARY not in text
    assert text.count(" failed (") == 2  # one note per sink for the burst, not per record


def test_rotation_keeps_total_size_bounded(tmp_path, redactor, restore_logger):
    """D7, X7, A10: thousands of records and one huge one leave at most backups+1 files,
    each under the cap, every line still valid JSON."""
    max_bytes, backups = 4096, 2
    configure_logging(tmp_path, max_bytes=max_bytes, backups=backups, redactor=redactor,
                      stream=io.StringIO())  # fmt: skip
    log = _log("soak")
    for index in range(3000):
        log.info("record %05d %s", index, "x" * 40)
    log.info("huge %s", "y" * 1_000_000)
    log.info("last")

    files = sorted(tmp_path.glob(f"{LOG_FILE_NAME}*"))
    assert len(files) == backups + 1
    assert all(f.stat().st_size <= max_bytes for f in files)
    assert sum(f.stat().st_size for f in files) <= (backups + 1) * max_bytes
    lines = [line for f in files for line in read_json_lines(f)]
    assert any("[truncated" in str(line["message"]) for line in lines)
    assert read_json_lines(tmp_path / LOG_FILE_NAME)[-1]["message"] == "last"


def test_configure_logging_twice_does_not_duplicate_handlers(tmp_path, redactor, restore_logger):
    """D7: reconfiguring (a second run in one process) replaces, never stacks, handlers."""
    stream = io.StringIO()
    logger = configure_logging(tmp_path, redactor=redactor, stream=stream)
    count = len(logger.handlers)
    configure_logging(tmp_path, redactor=redactor, stream=stream)
    configure_logging(tmp_path, redactor=redactor, stream=stream)
    assert len(logger.handlers) == count == 3
    assert sum(1 for f in logger.filters if type(f).__name__ == "RedactingFilter") == 1
    _log().info("once")
    assert [line["message"] for line in read_json_lines(tmp_path / LOG_FILE_NAME)] == ["once"]
    assert stream.getvalue().count('"once"') == 1


def test_records_below_the_stderr_level_fall_back_when_the_file_fails(
    tmp_path, redactor, restore_logger
):
    """C5 with a quiet stderr (`tecl run`): what the stderr sink does not show is what the
    failing file sink must put there, once."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    stream = io.StringIO()
    configure_logging(
        blocker / "logs", redactor=redactor, stream=stream, stderr_level=logging.CRITICAL + 1
    )
    _log().warning("alert refused: session 2026-07-31")

    text = stream.getvalue()
    assert text.count("alert refused: session 2026-07-31") == 1
    assert "sink tecl_pipeline.file failed (NotADirectoryError" in text


def test_stderr_level_filters_only_stderr(tmp_path, redactor, restore_logger):
    """D7: the CLI can keep stderr quiet (warnings only) while the file keeps INFO."""
    stream = io.StringIO()
    configure_logging(tmp_path, redactor=redactor, stream=stream, stderr_level=logging.WARNING)
    _log().info("detail")
    _log().warning("problem")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["problem"]
    messages = [line["message"] for line in read_json_lines(tmp_path / LOG_FILE_NAME)]
    assert messages == ["detail", "problem"]


def test_configure_logging_refuses_unbounded_settings(tmp_path, redactor):
    """X7: no backups means RotatingFileHandler never rotates; refuse it up front."""
    with pytest.raises(ValueError, match="backups"):
        configure_logging(tmp_path, backups=0, redactor=redactor)
    with pytest.raises(ValueError, match="max_bytes"):
        configure_logging(tmp_path, max_bytes=10, redactor=redactor)


def test_formatter_redacts_even_without_the_filter(redactor):
    """S2: defence in depth: a record that bypassed the filter is masked by the formatter."""
    record = logging.makeLogRecord({"name": "x", "msg": f"raw {CANARY}", "levelname": "INFO"})
    assert CANARY not in JsonFormatter(redactor).format(record)


class _HeaderError(Exception):
    """Like HTTP client errors: __str__ reads a private field, not args."""

    def __init__(self, headers: str) -> None:
        super().__init__("request failed")
        self._headers = headers

    def __str__(self) -> str:
        return f"request failed with headers {self._headers}"


def test_exceptions_are_scrubbed_keeping_their_type_when_possible(redactor):
    """S2: the exception a step raises (which Dagster serialises into the run's event log)
    carries no secret: args scrubbed in place along the chain; an unscrubbable __str__ is
    replaced, and a refusal stays a refusal."""
    with pytest.raises(KeyError) as caught, redacting_exceptions(redactor):
        try:
            raise ValueError(f"inner {CANARY}")
        except ValueError as inner:
            raise KeyError(f"outer {CANARY}") from inner
    assert CANARY not in str(caught.value) and CANARY not in str(caught.value.__cause__)

    with (
        pytest.raises(RedactedError, match=r"_HeaderError: .*\*\*\*") as replaced,
        redacting_exceptions(redactor),
    ):
        raise _HeaderError(f"APCA-API-SECRET-KEY: {CANARY}")
    assert replaced.value.__suppress_context__

    class Refusal(RefusedToTrade):
        def __str__(self) -> str:
            return f"refused, key {CANARY}"

    clean = scrub_exception(Refusal(), redactor)
    assert isinstance(clean, RedactedRefusal) and isinstance(clean, RefusedToTrade)
    assert CANARY not in str(clean)
