"""`tecl status`: the last sessions of the journal and the positions of its newest record,
read only, for a person (a table) or a script (`--json`).

What it shows comes from where a run writes for the same environment: the settings
(`Settings.read`, which keeps the built-in demo market's state apart) give the state URI,
the run's own `StateResource` opens the journal in it, and the run's own alerter names the
alert file. The figures are `core.performance`'s; this module only selects and lays out.

Nothing is written or moved: no preflight probe, no spool replay, no alert, no log file.
The journal is opened read-only, so a record that is not a record stays where it is (the
next run quarantines it and alerts, D3), and the spool is read file by file, never through
`Spool.pending`, which sets an unreadable file aside.
"""

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from pathlib import Path

from pydantic import ValidationError

from tecl_pipeline.common.events import Event, Severity
from tecl_pipeline.config.settings import Settings, local_state_dir
from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar
from tecl_pipeline.core.performance import (
    PositionFigures,
    SessionFigures,
    account_figures,
    position_figures,
)
from tecl_pipeline.defs.presentation import (
    money,
    percent,
    qty,
    share_price,
    signed_money,
    signed_percent,
)
from tecl_pipeline.observability.alerts import FileSink, build_alerter
from tecl_pipeline.observability.logs import LOGGER_NAME, records_dropped
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline.state.errors import JournalUnavailableError
from tecl_pipeline.state.journal.base import JournalStore, StoreFailed
from tecl_pipeline.state.journal.records import SessionRecord, account_point, record_name
from tecl_pipeline.state.journal.spool import Spool
from tecl_pipeline.trading.models import Order

NO_RECORD = "no record (the run refused or did not run)"
SPOOLED = "record spooled on this machine, not yet in the journal"
LEFT_IN_PLACE = "left in place; the next run quarantines it and alerts"
UNKNOWN = "-"
# More sessions without a record in a row than this are one line: a scheduler stopped for a
# quarter is one fact, not sixty rows.
COLLAPSE_AFTER = 3
_LEAD = " " * len("YYYY-MM-DD  ")


class StatusError(Exception):
    """Something status needs cannot be read; the message names it (one line)."""


@dataclass(frozen=True)
class AlertNote:
    """An alert as status shows it: its kind and title, never its detail (which can be long
    and quotes what the pipeline saw)."""

    kind: str
    title: str


@dataclass(frozen=True)
class JournalView:
    """What was read: the journal's records and this machine's spooled ones."""

    location: str
    """Where the journal is, for people: "file:///…" or "s3://bucket/prefix/journal"."""
    exists: bool | None
    """Whether a `file://` journal's folder exists; None for S3, which has no folders."""
    history: tuple[SessionRecord, ...]
    """The last record of every session in the journal, oldest first."""
    spooled: tuple[SessionRecord, ...] = ()
    """Records of this journal whose write failed, waiting in this machine's spool."""
    invalid: tuple[tuple[str, str], ...] = ()
    """(location, why) of each object skipped as not a record, left where it is."""


@dataclass(frozen=True)
class SessionLine:
    session: date
    record: SessionRecord | None
    """None: a session of the exchange calendar without a record (a refusal writes none)."""
    figures: SessionFigures | None
    alerts: tuple[AlertNote, ...]
    spooled: bool = False
    """The record is only in this machine's spool, not yet in the journal."""
    unrecorded_before: int = 0
    """Sessions without a record since the previous record: what the day P&L spans too."""


@dataclass(frozen=True)
class Status:
    journal: str
    """Where the journal is, for people: "file:///…" or "s3://bucket/prefix/journal"."""
    journal_exists: bool | None
    first_session: date | None
    """What total P&L is measured from: the first recorded (funded) session."""
    sessions: tuple[SessionLine, ...]
    """Oldest first, from the first shown record to the newest record or alert."""
    positions: tuple[PositionFigures, ...]
    invalid: tuple[tuple[str, str], ...]
    """(location, why) of the objects skipped as not records, left in place."""

    @property
    def recorded(self) -> int:
        return sum(1 for line in self.sessions if line.record is not None)

    @property
    def newest(self) -> SessionLine | None:
        lines = [line for line in self.sessions if line.record is not None]
        return lines[-1] if lines else None

    @property
    def latest(self) -> SessionRecord | None:
        newest = self.newest
        return newest.record if newest else None


# -- reading ---------------------------------------------------------------------------------


def read_status(
    settings: Settings,
    count: int,
    *,
    today: date | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Status:
    """The last `count` recorded sessions of the journal `settings` name (or of this
    machine's spool, for a record whose write failed), with the calendar's sessions between
    them that have no record, their alerts and the newest record's positions. `today`
    (default: today in New York) is the last session an alert can add.

    Raises StatusError when the journal, the spool or the alert file cannot be read.
    `on_note` hears what the journal reported while it was read, one sentence each.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    events: list[Event] = []
    try:
        with _journal(settings, events.append) as journal:
            history = journal.history()
            location = journal.location
            invalid = dict(journal.invalid)
    except JournalUnavailableError as exc:
        raise StatusError(_unreadable(exc)) from None
    if on_note is not None:
        for event in events:
            on_note(event.message)
    spooled, unreadable = read_spool(settings.machine_dir / "spool", location)
    view = JournalView(
        location=location,
        exists=_folder_exists(location),
        history=tuple(history),
        spooled=tuple(spooled),
        invalid=tuple({**invalid, **unreadable}.items()),
    )
    alerts = read_alerts(alert_files(settings), Redactor.for_settings(settings))
    return summarize(view, count, alerts, today=today or datetime.now(EXCHANGE_TZ).date())


@contextmanager
def _journal(settings: Settings, on_event: Callable[[Event], None]) -> Iterator[JournalStore]:
    """The journal a run of these settings writes, opened read-only by the run's own
    resource (which knows the journal's place under the state URI) and closed with it (an
    S3 client's connections)."""
    from dagster import build_resources

    from tecl_pipeline.defs.resources import StateResource

    state = StateResource(state_uri=settings.state_uri, local_dir=str(settings.machine_dir))
    with build_resources({"state": state}) as ready, records_dropped(LOGGER_NAME):
        try:
            journal = ready.state.journal(on_event=on_event, read_only=True)
        except Exception as exc:
            problem = _aws_setup_problem(exc)
            if problem is None:
                raise
            raise StatusError(problem) from None
        yield journal


def _aws_setup_problem(exc: Exception) -> str | None:
    """What is wrong with the AWS settings when making the S3 client failed on them (a
    profile that is not configured, no region): the person's to fix, so one line naming the
    setting, not an internal error. None for anything else.

    botocore is looked up, never imported: local state never loads it, and an exception
    cannot be one of its errors unless it is loaded."""
    errors = sys.modules.get("botocore.exceptions")
    if errors is None or not isinstance(exc, errors.BotoCoreError):
        return None
    if isinstance(exc, errors.ProfileNotFound):
        profile = getattr(exc, "kwargs", {}).get("profile", "?")
        return (
            f"cannot open the journal: the AWS profile {profile!r} (AWS_PROFILE) is not set "
            "up in the AWS config or credentials file"
        )
    if isinstance(exc, errors.NoRegionError):
        return (
            "cannot open the journal: no AWS region is set (AWS_REGION, AWS_DEFAULT_REGION "
            "or the profile's region)"
        )
    return _one_line(f"cannot open the journal: the AWS settings: {exc}")


def _unreadable(exc: JournalUnavailableError) -> str:
    """Status's own sentence: the journal's says what a run does about it (no trading),
    which is no concern of a command that trades nothing."""
    if isinstance(exc.__cause__, StoreFailed):
        return _one_line(f"cannot read the journal: {exc.__cause__}")
    # No store failure: a record the journal will not judge (a newer pipeline's), named in
    # the message's first clause.
    what = str(exc).split("; ", 1)[0].removeprefix("journal ")
    advice = "; upgrade the pipeline to read it" if exc.code == "UnsupportedSchemaVersion" else ""
    return _one_line(f"cannot read the journal: {what}{advice}")


def _folder_exists(location: str) -> bool | None:
    folder = local_state_dir(location)
    if folder is None:
        return None
    try:
        return folder.is_dir()
    except OSError:
        return None  # not known; the read itself went through, so nothing to report


def read_spool(directory: Path, location: str) -> tuple[list[SessionRecord], dict[str, str]]:
    """The records spooled in `directory` for the journal at `location` (oldest first), and
    the files that are not spool entries, with why. Read with the spool's own reader, which
    moves nothing (`Spool.pending` would set an unreadable file aside). A folder that
    cannot be listed is a StatusError: its records would show as missing."""
    try:
        found, bad = Spool(directory).entries(location)
    except OSError as exc:
        raise StatusError(f"cannot read the spool {directory}: {exc.strerror or exc}") from None
    unreadable = {
        str(path): (
            f"not a spool entry ({problem.error_count()} error(s))"
            if isinstance(problem, ValidationError)
            else f"spool file cannot be read: {getattr(problem, 'strerror', None) or problem}"
        )
        for path, problem in bad
    }
    return [entry.record for _, entry in found], unreadable


def alert_files(settings: Settings) -> tuple[Path, ...]:
    """The alert files a run of these settings writes, oldest first (rotated copies before
    the current file). Found through the run's own alerter, so the rule (TECL_ALERT_FILE,
    else the log folder's alerts.jsonl) lives in one place. No webhook: status sends
    nothing, and a malformed webhook URL is not its concern."""
    alerter = build_alerter(Redactor(), log_dir=settings.logs_dir, alert_file=settings.alert_file)
    files: list[Path] = []
    for sink in alerter.sinks:
        if isinstance(sink, FileSink):
            # RotatingFileHandler's names: the highest number is the oldest.
            files += [
                sink.path.with_name(f"{sink.path.name}.{n}") for n in range(sink.backups, 0, -1)
            ]
            files.append(sink.path)
    return tuple(files)


def read_alerts(files: Iterable[Path], redactor: Redactor) -> dict[date, tuple[AlertNote, ...]]:
    """The alerts of each session in `files` (kind and title, each once, in file order).
    A missing file holds no alert; one that cannot be read is a StatusError."""
    found: dict[date, list[AlertNote]] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StatusError(f"cannot read the alert file {path}: {exc.strerror or exc}") from None
        for line in text.splitlines():
            if parsed := _alert(line, redactor):
                session, note = parsed
                notes = found.setdefault(session, [])
                if note not in notes:
                    notes.append(note)
    return {session: tuple(notes) for session, notes in found.items()}


def _alert(line: str, redactor: Redactor) -> tuple[date, AlertNote] | None:
    """One line of the alert file, if it is an alert of a session. A line the writer cut at
    its size cap is not JSON, and an alert of no session belongs to no row: both skipped."""
    try:
        raw = json.loads(line)
        session = date.fromisoformat(raw["session"])
        kind, title = raw["kind"], raw["title"]
    except (ValueError, TypeError, KeyError):
        return None
    if raw.get("severity") == Severity.INFO.value:
        # News (the daily summary, a replayed record), not something to look at.
        return None
    if not isinstance(kind, str) or not isinstance(title, str):
        return None
    # Redacted when written; masked again in case the file predates a secret now known
    # (a rotated key, a webhook URL set since).
    return session, AlertNote(redactor.redact(kind), redactor.redact(title))


# -- selecting -------------------------------------------------------------------------------


def summarize(
    view: JournalView,
    count: int,
    alerts: Mapping[date, tuple[AlertNote, ...]],
    *,
    today: date,
    calendar: TradingCalendar | None = None,
) -> Status:
    """The status of `view`: its last `count` records (a spooled record counts, and stands
    for its session when it is newer than the journal's, as it will once replayed), the
    calendar's sessions between them without a record, and the newest record's positions.
    Figures run over every record, so total P&L and drawdown are since the first record
    even when it is not shown.

    An alert after the newest record adds its session (a refusal writes no record), but
    only up to `today` and within `calendar` (default: the calendar a run uses): an alert
    of a refused `--session 2199-01-02` is no session that happened."""
    merged = _merged(view.history, view.spooled)
    if not merged:
        return Status(view.location, view.exists, None, (), (), view.invalid)
    figures = {f.session: f for f in account_figures([account_point(r) for r, _ in merged])}
    shown = merged[-count:]
    calendar = calendar or TradingCalendar()
    horizon = min(today, calendar.last_session)
    first, newest = shown[0][0].session, shown[-1][0].session
    alerted = [d for d in alerts if newest < d <= horizon]
    last = max([newest, *alerted])
    records = {record.session: (record, spooled) for record, spooled in shown}
    days = sorted(set(_sessions(calendar, first, min(last, horizon))) | set(records))
    lines: list[SessionLine] = []
    for day in days:
        record, spooled = records.get(day, (None, False))
        day_figures = figures[day] if record is not None else None
        previous = day_figures.previous_session if day_figures else None
        lines.append(
            SessionLine(
                session=day,
                record=record,
                figures=day_figures,
                alerts=alerts.get(day, ()),
                spooled=spooled,
                unrecorded_before=(
                    len(_sessions(calendar, previous + timedelta(days=1), day - timedelta(days=1)))
                    if previous is not None
                    else 0
                ),
            )
        )
    latest = shown[-1][0]
    positions = position_figures(latest.positions, latest.prices, latest.equity, latest.weights)
    return Status(
        view.location,
        view.exists,
        figures[newest].first_session,
        tuple(lines),
        tuple(positions),
        view.invalid,
    )


def _merged(
    history: Sequence[SessionRecord], spooled: Sequence[SessionRecord]
) -> list[tuple[SessionRecord, bool]]:
    """Each session's record, oldest first, and whether it is only spooled. A spooled record
    stands for its session when its name sorts after the journal's: the journal reads the
    last name as the session's record, so that is what it will hold once replayed."""
    by_day = {record.session: (record, False) for record in history}
    for record in spooled:
        held = by_day.get(record.session)
        if held is None or record_name(record) > record_name(held[0]):
            by_day[record.session] = (record, True)
    return [by_day[day] for day in sorted(by_day)]


def _sessions(calendar: TradingCalendar, start: date, end: date) -> list[date]:
    """The calendar's sessions from `start` to `end`, none outside its range, none when
    `end` is before `start`."""
    start, end = max(start, calendar.first_session), min(end, calendar.last_session)
    return calendar.sessions(start, end) if start <= end else []


# -- for a person ----------------------------------------------------------------------------


def text(status: Status, *, asked: int) -> str:
    """The status as a person reads it: sessions as a table, each with its orders, open
    residuals and alerts below it, then the positions. `asked`: how many sessions the
    person asked for, said beside how many there were."""
    latest = status.latest
    if latest is None:
        return "\n".join([_nothing_yet(status), *_invalid_text(status)])
    out = [
        f"journal    {status.journal}",
        f"sessions   the last {status.recorded} recorded of up to {asked}, oldest first; "
        f"P&L and return since the first record, {status.first_session}",
        *_invalid_text(status),
        "",
    ]
    headers = ("session", "leaf", "equity", "day P&L", "total P&L", "return", "drawdown")
    rows = {
        line.session: _session_cells(line.session, line.record, line.figures)
        for line in status.sessions
        if line.record is not None and line.figures is not None
    }
    widths = _widths(headers, rows.values())
    out.append(_row(headers, widths, names=2))
    for unrecorded, group in groupby(status.sessions, key=lambda line: line.record is None):
        run = list(group)
        if unrecorded and len(run) > COLLAPSE_AFTER:
            out.append(
                f"{run[0].session} .. {run[-1].session}  no record for {len(run)} sessions "
                "(the runs refused or did not run)"
            )
            out += [_LEAD + detail for detail in _run_alerts(run)]
            continue
        for line in run:
            cells = rows.get(line.session)
            out.append(_row(cells, widths, names=2) if cells else f"{line.session}  {NO_RECORD}")
            out += [_LEAD + detail for detail in _details(line)]
    newest = status.newest
    out += ["", *_positions_text(latest, status.positions, spooled=bool(newest and newest.spooled))]
    return "\n".join(out)


def _nothing_yet(status: Status) -> str:
    if status.journal_exists is False:
        # A fresh install: not an error, but not the same as an empty journal either (a
        # state URI with a typo looks like this too).
        return f"no session recorded yet: {status.journal} does not exist yet"
    return f"no session recorded yet in the journal at {status.journal}"


def _invalid_text(status: Status) -> list[str]:
    return [f"not read   {where}: {why}; {LEFT_IN_PLACE}" for where, why in status.invalid]


def _session_cells(
    session: date, record: SessionRecord, figures: SessionFigures
) -> tuple[str, ...]:
    return (
        session.isoformat(),
        record.leaf,
        money(figures.equity),
        signed_money(figures.day_pnl),
        signed_money(figures.total_pnl),
        signed_percent(figures.total_return),
        percent(figures.drawdown),
    )


def _details(line: SessionLine) -> list[str]:
    details: list[str] = []
    if line.record is not None:
        if line.spooled:
            details.append(SPOOLED)
        if line.unrecorded_before and line.figures and line.figures.previous_session:
            # The column says "day P&L"; across a gap it is more than a day's.
            details.append(
                f"day P&L is since the previous record, {line.figures.previous_session} "
                f"({_sessions_text(line.unrecorded_before)} without a record between)"
            )
        details += [_order_text(order) for order in line.record.orders] or ["no order"]
        if line.record.residuals:
            held = ", ".join(
                f"{symbol} {_signed_qty(left)}" for symbol, left in line.record.residuals.items()
            )
            details.append(f"open residuals: {held} (target - held, in shares)")
    details += [f"alert {note.kind}: {note.title}" for note in line.alerts]
    return details


def _run_alerts(run: Sequence[SessionLine]) -> list[str]:
    """The alerts of a collapsed run of sessions, each once, with the sessions it came on."""
    on: dict[AlertNote, list[date]] = {}
    for line in run:
        for note in line.alerts:
            on.setdefault(note, []).append(line.session)
    return [
        f"alert {note.kind}: {note.title} "
        + (f"({days[0]})" if len(days) == 1 else f"({len(days)} sessions, {days[0]} .. {days[-1]})")
        for note, days in on.items()
    ]


def _sessions_text(count: int) -> str:
    return f"{count} session" if count == 1 else f"{count} sessions"


def _order_text(order: Order) -> str:
    price = "" if order.filled_avg_price is None else f" @ {share_price(order.filled_avg_price)}"
    filled = f"{qty(order.filled_qty)} of {qty(order.qty)}"
    return f"{order.side.value:4} {order.symbol:5} {filled}{price}  [{order.status.value}]"


def _positions_text(
    latest: SessionRecord, positions: Sequence[PositionFigures], *, spooled: bool
) -> list[str]:
    where = f"{latest.session} (spooled record)" if spooled else str(latest.session)
    head = f"positions  at {where}: equity {money(latest.equity)}, cash {money(latest.cash)}"
    if not positions:
        return [head, "nothing held, nothing targeted"]
    headers = ("symbol", "qty", "price", "value", "weight", "target")
    rows = [
        (
            p.symbol,
            qty(p.qty),
            UNKNOWN if p.price is None else share_price(p.price),
            UNKNOWN if p.value is None else money(p.value),
            UNKNOWN if p.weight is None else percent(p.weight),
            percent(p.target_weight),
        )
        for p in positions
    ]
    widths = _widths(headers, rows)
    lines = [head, *(_row(row, widths, names=1) for row in (headers, *rows))]
    if any(p.value is None for p in positions):
        # Only a version 1 record keeps no prices by design; a later one can still lack a
        # symbol's price, so the version is named only when it is the reason.
        why = ", schema version 1" if latest.schema_version == 1 else ""
        lines.append(f"(-: no price recorded{why}, so no value or weight)")
    return lines


def _widths(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[int]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    return widths


def _row(cells: Sequence[str], widths: Sequence[int], *, names: int) -> str:
    """The first `names` columns left-aligned, the figures after them right-aligned, so
    that their digits line up."""
    parts = [
        cell.ljust(width) if i < names else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(parts).rstrip()


def _signed_qty(value: Decimal) -> str:
    return f"+{qty(value)}" if value > 0 else qty(value)


def _one_line(message: str) -> str:
    return " ".join(message.split())


# -- for a script ----------------------------------------------------------------------------


def as_json(status: Status) -> str:
    """The status as one JSON document: money and quantities as the exact Decimal's string;
    return, drawdown and weight as `core.performance` gives them, rounded to 4 places
    (0.01%); dates ISO; unknown as null. Every session is listed, none collapsed."""
    latest = status.latest
    document = {
        "journal": status.journal,
        "journal_exists": status.journal_exists,
        "first_session": _iso(status.first_session),
        "sessions": [_session_json(line) for line in status.sessions],
        "positions_session": _iso(latest.session if latest else None),
        "positions": [_position_json(p) for p in status.positions],
        "invalid": [{"location": where, "reason": why} for where, why in status.invalid],
    }
    return json.dumps(document, indent=2)


def _session_json(line: SessionLine) -> dict[str, object]:
    record, figures = line.record, line.figures
    return {
        "session": line.session.isoformat(),
        "recorded": record is not None,
        "spooled": line.spooled,
        "run_id": record.run_id if record else None,
        "leaf": record.leaf if record else None,
        "orders": [_order_json(order) for order in record.orders] if record else [],
        "equity": _str(figures.equity if figures else None),
        "cash": _str(figures.cash if figures else None),
        "day_pnl": _str(figures.day_pnl if figures else None),
        "previous_session": _iso(figures.previous_session if figures else None),
        "total_pnl": _str(figures.total_pnl if figures else None),
        "total_return": _str(figures.total_return if figures else None),
        "drawdown": _str(figures.drawdown if figures else None),
        "residuals": {s: str(q) for s, q in record.residuals.items()} if record else {},
        "alerts": [{"kind": note.kind, "title": note.title} for note in line.alerts],
    }


def _order_json(order: Order) -> dict[str, object]:
    return {
        "side": order.side.value,
        "symbol": order.symbol,
        "qty": str(order.qty),
        "filled_qty": str(order.filled_qty),
        "filled_avg_price": _str(order.filled_avg_price),
        "status": order.status.value,
    }


def _position_json(position: PositionFigures) -> dict[str, object]:
    return {
        "symbol": position.symbol,
        "qty": str(position.qty),
        "price": _str(position.price),
        "value": _str(position.value),
        "weight": _str(position.weight),
        "target_weight": str(position.target_weight),
    }


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
