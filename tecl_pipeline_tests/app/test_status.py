"""`tecl status` (README "The command line"): the last sessions of the journal a run of the
same environment writes, each with its orders, equity, P&L, drawdown, open residuals and
alerts, the calendar's sessions without a record between them (a long run of them in one
line), records still in this machine's spool, and the positions as of the last record; as
a table for a person or one JSON document for a script. It only reads, local or S3 state:
it moves nothing, not even a record that is not one. What it cannot read is one line with
exit status 1.

The journal is written through the real stores and the alerts through the real file sink;
every expected figure is worked out here from the records' own inputs."""

import errno
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tecl_pipeline.adapters.journal_store import open_journal
from tecl_pipeline.app.cli import main
from tecl_pipeline.app.status import AlertNote, JournalView, summarize, text
from tecl_pipeline.common.events import Severity
from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.observability.alerts import Alert, FileSink
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.state.journal.records import SessionRecord
from tecl_pipeline.state.journal.spool import Spool
from tecl_pipeline.trading.models import Order, OrderSide, OrderStatus
from tecl_pipeline_tests.app.cli_helpers import USER_ENV_PREFIXES, tecl

CENT = Decimal("0.01")
NO_RECORD = "no record (the run refused or did not run)"
SPOOLED = "record spooled on this machine, not yet in the journal"
LEFT_IN_PLACE = "left in place; the next run quarantines it and alerts"
GAP_NOTE = (
    f"day P&L is since the previous record, {date(2024, 4, 1)} (1 session without a record between)"
)

# Thursday, then Monday (Good Friday 2024-03-29 is no session), a Tuesday without a
# record, and Wednesday.
D1, D2, MISSING, D4 = date(2024, 3, 28), date(2024, 4, 1), date(2024, 4, 2), date(2024, 4, 3)
GOOD_FRIDAY = date(2024, 3, 29)

CASH_1 = Decimal("1450.00")
PRICES_1 = {"TECL": Decimal("85.50")}
PRICES_2 = {"TECL": Decimal("88.00")}
PRICES_4 = {"TECL": Decimal("84.00"), "BIL": Decimal("91.50")}
HELD_4 = {"TECL": Decimal("75"), "BIL": Decimal("20.123456789")}
CASH_4 = Decimal("1770.00")


def equity_of(positions: dict[str, Decimal], prices: dict[str, Decimal], cash: Decimal) -> Decimal:
    """What the broker reports: the holdings at the prices plus cash, to the cent."""
    return (sum(q * prices[s] for s, q in positions.items()) + cash).quantize(CENT)


E1 = equity_of({"TECL": Decimal(100)}, PRICES_1, CASH_1)
E2 = equity_of({"TECL": Decimal(100)}, PRICES_2, CASH_1)
E4 = equity_of(HELD_4, PRICES_4, CASH_4)


def dollars(amount: Decimal, *, signed: bool = False) -> str:
    """ "$1,234.56", "-$1,234.56", and "+$1,234.56" for a gain when `signed`."""
    cents = amount.quantize(CENT)
    sign = "-" if cents < 0 else "+" if signed and cents > 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def pct(ratio: Decimal, *, signed: bool = False) -> str:
    text = f"{ratio * 100:.2f}%"
    return f"+{text}" if signed and ratio > 0 else text


def order(
    symbol: str,
    side: OrderSide,
    qty: str,
    filled: str,
    price: str | None,
    status: OrderStatus,
    session: date,
) -> Order:
    at = datetime(session.year, session.month, session.day, 19, 45, tzinfo=UTC)
    return Order(
        id=f"id-{session}-{symbol}",
        client_order_id=f"tecl-{session:%Y%m%d}-{side.value}-{symbol}-1",
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        filled_qty=Decimal(filled),
        filled_avg_price=None if price is None else Decimal(price),
        status=status,
        submitted_at=at,
    )


def record(session: date, **fields: Any) -> SessionRecord:
    values: dict[str, Any] = {
        "session": session,
        "run_id": f"run-{session}",
        "written_at": datetime(session.year, session.month, session.day, 20, 0, tzinfo=UTC),
        "data_source": "csv replay",
        "broker": "simulator",
        "leaf": "B4b",
        "reason": "bull",
        "weights": {"TECL": Decimal("1")},
        "orders": [],
        "positions": {"TECL": Decimal(100)},
        "cash": CASH_1,
        "equity": E1,
        "prices": PRICES_1,
    }
    return SessionRecord(**{**values, **fields})


def three_records() -> list[SessionRecord]:
    """Bought TECL; a quiet session as TECL rose; then half into BIL, the TECL sell only
    partly filled, leaving a residual."""
    return [
        record(
            D1,
            orders=[order("TECL", OrderSide.BUY, "100", "100", "85.50", OrderStatus.FILLED, D1)],
        ),
        record(D2, prices=PRICES_2, equity=E2),
        record(
            D4,
            leaf="C2",
            weights={"TECL": Decimal("0.5"), "BIL": Decimal("0.5")},
            orders=[
                order("TECL", OrderSide.SELL, "40", "25", "86.0000", OrderStatus.CANCELED, D4),
                order(
                    "BIL",
                    OrderSide.BUY,
                    "20.123456789",
                    "20.123456789",
                    "91.5",
                    OrderStatus.FILLED,
                    D4,
                ),
            ],
            positions=HELD_4,
            cash=CASH_4,
            equity=E4,
            prices=PRICES_4,
            residuals={"TECL": Decimal("-15")},
        ),
    ]


# -- how a test runs it -----------------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    status: int
    out: str
    err: str

    def line(self) -> str:
        """The one line on stderr, and no traceback (P2)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err + self.out
        return lines[0]

    def json(self) -> dict[str, Any]:
        return json.loads(self.out)


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory and an environment with none of the test run's TECL_, DAGSTER_ or
    ALPACA_ variables, as a person's shell."""
    for name in list(os.environ):
        if name.startswith(USER_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def state(place: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Local state and logs set as a deployment sets them: the state folder."""
    monkeypatch.setenv("TECL_STATE_URI", (place / "state").as_uri())
    monkeypatch.setenv("TECL_LOG_DIR", str(place / "logs"))
    return place / "state"


@pytest.fixture
def journal(state: Path) -> LocalJournal:
    """The journal a run writes under that state."""
    return LocalJournal(state / "journal")


@pytest.fixture
def status(capsys: pytest.CaptureFixture[str]) -> Callable[..., Done]:
    """`tecl status ARGS` in this process: its exit status, stdout and stderr."""

    def run(*args: str) -> Done:
        try:
            code = main(["status", *args])
        except SystemExit as exc:  # argparse's exit on a usage error
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Done(code, captured.out, captured.err)

    return run


def send_alerts(logs: Path, *alerts: Alert) -> None:
    sink = FileSink(logs / "alerts.jsonl")
    for alert in alerts:
        sink.send(alert)


def row(out: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    [line] = [line for line in out.splitlines() if line.split()[:1] == [first]]
    return line.split()


def lines_under(out: str, session: date) -> list[str]:
    """The indented lines below a session's row: orders, residuals, alerts."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(session.isoformat()))
    below = []
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        below.append(line.strip())
    return below


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def dated(out: str) -> list[str]:
    """The first cell of every line that begins with a date: rows, no-record lines."""
    return [line.split()[0] for line in out.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]


def spool_record(state: Path, journal: LocalJournal, each: SessionRecord) -> Path:
    """What a run whose journal write failed leaves: the record in the spool of this
    machine (for file:// state, the state folder), for this journal."""
    return Spool(state / "spool").add(journal.location, each, "journal write failed: EIO")


# -- no record yet ----------------------------------------------------------------------------


def test_with_no_record_yet_it_says_so_in_one_line_naming_where_it_looked(status, state):
    (state / "journal").mkdir(parents=True)

    done = status()

    assert done.status == 0
    assert done.out.splitlines() == [
        f"no session recorded yet in the journal at {(state / 'journal').as_uri()}"
    ]
    assert done.err == ""


def test_a_journal_folder_that_does_not_exist_is_said_plainly_not_an_error(status, state):
    """A fresh install, or a TECL_STATE_URI with a typo: either way not an empty journal."""
    done = status()

    assert done.status == 0 and done.err == ""
    assert done.out.splitlines() == [
        f"no session recorded yet: {(state / 'journal').as_uri()} does not exist yet"
    ]
    assert status("--json").json()["journal_exists"] is False
    assert not state.exists(), "looking created nothing"


def test_with_no_record_yet_the_json_document_has_empty_lists(status, state):
    (state / "journal").mkdir(parents=True)

    done = status("--json")

    assert done.status == 0
    document = done.json()
    assert document["sessions"] == [] and document["positions"] == []
    assert document["journal"] == (state / "journal").as_uri()
    assert document["journal_exists"] is True and document["invalid"] == []


# -- the sessions -----------------------------------------------------------------------------


def test_each_session_shows_its_leaf_equity_and_pnl_since_the_previous_and_the_first_record(
    status, journal
):
    for each in three_records():
        journal.append(each)

    done = status()

    assert done.status == 0, done.err
    assert done.err == ""
    first = [str(D1), "B4b", dollars(E1), "$0.00", "$0.00", "0.00%", "0.00%"]
    assert row(done.out, D1.isoformat()) == first
    assert row(done.out, D2.isoformat()) == [
        str(D2),
        "B4b",
        dollars(E2),
        dollars(E2 - E1, signed=True),
        dollars(E2 - E1, signed=True),
        pct((E2 - E1) / E1, signed=True),
        "0.00%",  # a new high
    ]
    assert row(done.out, D4.isoformat()) == [
        str(D4),
        "C2",
        dollars(E4),
        dollars(E4 - E2, signed=True),  # since the previous record, across the gap
        dollars(E4 - E1, signed=True),
        pct((E4 - E1) / E1, signed=True),
        pct(E4 / E2 - 1),  # below the peak of D2
    ]
    assert dollars(E4 - E2, signed=True) == "-$338.70"  # the inputs are what they seem


def test_sessions_run_oldest_first_and_a_calendar_session_without_record_says_so(status, journal):
    for each in three_records():
        journal.append(each)

    out = status().out

    dated = [line[:10] for line in out.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert dated == [str(D1), str(D2), str(MISSING), str(D4)]
    assert f"{MISSING}  {NO_RECORD}" in out.splitlines()
    assert str(GOOD_FRIDAY) not in out, "a holiday is no session, so no missing record"


def test_each_session_lists_its_orders_open_residuals_and_alerts(status, journal, place):
    for each in three_records():
        journal.append(each)
    send_alerts(
        place / "logs",
        Alert("refused", "tecl run refused to trade", "stale TQQQ", session=MISSING),
        Alert("residuals", f"session {D4}: residuals remain", session=D4),
        Alert("residuals", f"session {D4}: residuals remain", session=D4),  # said once
        Alert("missed_session", "long ago", session=date(2024, 1, 2)),
        Alert("config_error", "of no session"),
    )

    out = status().out

    assert lines_under(out, D1) == ["buy  TECL  100 of 100 @ $85.50  [filled]"]
    assert lines_under(out, D2) == ["no order"]
    assert lines_under(out, MISSING) == ["alert refused: tecl run refused to trade"]
    assert lines_under(out, D4) == [
        GAP_NOTE,
        "sell TECL  25 of 40 @ $86.00  [canceled]",
        "buy  BIL   20.123456789 of 20.123456789 @ $91.50  [filled]",
        "open residuals: TECL -15 (target - held, in shares)",
        f"alert residuals: session {D4}: residuals remain",
    ]
    assert "long ago" not in out and "of no session" not in out


def test_a_refusal_after_the_last_record_shows_and_news_is_not_an_alert(status, journal, place):
    """Today's refusal writes no record: its session still shows, with the alert. The daily
    summary (an info alert) is news, not something to look at, and stays out."""
    journal.append(record(D1))
    send_alerts(
        place / "logs",
        Alert("daily_summary", f"session {D1}: traded", session=D1, severity=Severity.INFO),
        Alert("refused", "tecl run refused to trade", session=D2),
    )

    out = status().out

    assert f"{D2}  {NO_RECORD}" in out.splitlines()
    assert lines_under(out, D2) == ["alert refused: tecl run refused to trade"]
    assert "daily_summary" not in out


def test_a_fill_price_finer_than_a_cent_keeps_its_digits(status, journal):
    journal.append(
        record(
            D1,
            orders=[order("TECL", OrderSide.BUY, "1", "1", "85.1234", OrderStatus.FILLED, D1)],
        )
    )

    assert lines_under(status().out, D1) == ["buy  TECL  1 of 1 @ $85.1234  [filled]"]


def test_prices_are_shown_to_the_sub_penny_tick_as_everywhere_else(status, journal):
    """One price format for the project (presentation.share_price): an average fill of
    several fills is shown to the tick, as the run report shows it; --json keeps it whole."""
    journal.append(
        record(
            D1,
            orders=[order("TECL", OrderSide.BUY, "3", "3", "85.123456", OrderStatus.FILLED, D1)],
            prices={"TECL": Decimal("85.50005")},
        )
    )

    out = status().out

    assert lines_under(out, D1) == ["buy  TECL  3 of 3 @ $85.1235  [filled]"]
    assert row(out, "TECL")[2] == "$85.50"
    assert status("--json").json()["sessions"][0]["orders"][0]["filled_avg_price"] == "85.123456"


def test_sessions_n_shows_the_last_n_records_with_pnl_still_since_the_first(status, journal):
    for each in three_records():
        journal.append(each)

    out = status("--sessions", "2").out

    assert str(D1) not in out.split("\n", 2)[2], "only in the header, as the P&L's origin"
    assert f"since the first record, {D1}" in out
    assert [line[:10] for line in out.splitlines() if re.match(r"\d{4}-", line)] == [
        str(D2),
        str(MISSING),
        str(D4),
    ]
    assert row(out, D4.isoformat())[4] == dollars(E4 - E1, signed=True)


# -- which sessions: up to today, a long gap in one line --------------------------------------


@pytest.mark.parametrize("future", [date(2199, 1, 2), date(9999, 12, 30)])
def test_an_alert_of_a_session_after_today_adds_no_session(status, journal, place, future):
    """A refused `tecl run --session 2199-01-02` alerts with that session; it did not
    happen, so no row runs up to it (once ~43,000 lines, or a crash for 9999-12-30)."""
    for each in three_records():
        journal.append(each)
    send_alerts(place / "logs", Alert("refused", "tecl run refused to trade", session=future))

    done = status()
    document = status("--json").json()

    assert done.status == 0 and done.err == ""
    assert dated(done.out) == [str(D1), str(D2), str(MISSING), str(D4)]
    assert str(future.year) not in done.out
    assert [s["session"] for s in document["sessions"]] == [str(D1), str(D2), str(MISSING), str(D4)]


def test_an_alert_of_tomorrow_adds_nothing_and_one_of_today_adds_up_to_today(journal):
    """The last session shown is at most today in New York, whatever the alert says."""
    view = JournalView("file:///j", True, tuple(three_records()))
    refused = (AlertNote("refused", "tecl run refused to trade"),)
    friday = date(2024, 4, 5)

    tomorrow = summarize(view, 10, {friday: refused}, today=date(2024, 4, 4))
    today = summarize(view, 10, {friday: refused}, today=friday)

    assert [line.session for line in tomorrow.sessions] == [D1, D2, MISSING, D4]
    assert [line.session for line in today.sessions][-2:] == [date(2024, 4, 4), friday]
    assert today.sessions[-1].alerts == refused and today.sessions[-1].record is None


def test_an_alert_beyond_the_calendar_adds_nothing(journal):
    view = JournalView("file:///j", True, tuple(three_records()))
    calendar = TradingCalendar(date(2024, 3, 1), D4)
    alerts = {date(2024, 4, 10): (AlertNote("refused", "tecl run refused to trade"),)}

    status = summarize(view, 10, alerts, today=date(2024, 5, 1), calendar=calendar)

    assert status.sessions[-1].session == D4


def test_more_than_three_sessions_without_a_record_are_one_line(status, journal, place):
    april, july = date(2024, 4, 1), date(2024, 7, 1)
    journal.append(record(april))
    journal.append(record(july, equity=E2, prices=PRICES_2))
    refused = Alert("refused", "tecl run refused to trade", session=date(2024, 4, 2))
    send_alerts(
        place / "logs",
        refused,
        Alert("refused", "tecl run refused to trade", session=date(2024, 4, 3)),
        Alert("stale", "stale TQQQ", session=date(2024, 5, 1)),
    )

    done = status()

    missing = TradingCalendar(april, july).sessions(date(2024, 4, 2), date(2024, 6, 28))
    assert len(missing) == 62
    lines = done.out.splitlines()
    assert dated(done.out) == [str(april), "2024-04-02", str(july)]
    collapsed = (
        "2024-04-02 .. 2024-06-28  no record for 62 sessions (the runs refused or did not run)"
    )
    assert collapsed in lines
    assert lines_under(done.out, date(2024, 4, 2)) == [
        "alert refused: tecl run refused to trade (2 sessions, 2024-04-02 .. 2024-04-03)",
        "alert stale: stale TQQQ (2024-05-01)",
    ]
    assert lines_under(done.out, july)[0] == (
        "day P&L is since the previous record, 2024-04-01 (62 sessions without a record between)"
    )
    assert len(lines) < 20
    sessions = status("--json").json()["sessions"]
    assert [s["session"] for s in sessions] == [str(april), *map(str, missing), str(july)]
    assert sessions[-1]["previous_session"] == str(april)


def test_three_sessions_without_a_record_stay_three_lines(status, journal):
    journal.append(record(date(2024, 4, 1)))
    journal.append(record(date(2024, 4, 5)))

    out = status().out

    assert dated(out) == ["2024-04-01", "2024-04-02", "2024-04-03", "2024-04-04", "2024-04-05"]
    assert f"2024-04-03  {NO_RECORD}" in out.splitlines()


# -- records still in this machine's spool ------------------------------------------------------


def test_a_session_whose_record_is_spooled_shows_it_not_no_record(status, journal, state):
    """The run traded; its journal write failed, so the record waits in the spool for the
    next run to replay. "No record (refused)" would be false."""
    d1, d2, d4 = three_records()
    for each in (d1, d2, d4):
        journal.append(each)
    e3 = equity_of({"TECL": Decimal(100)}, {"TECL": Decimal("87.00")}, CASH_1)
    spooled = record(MISSING, run_id="run-spooled", equity=e3, prices={"TECL": Decimal("87.00")})
    spool_record(state, journal, spooled)

    done = status()
    document = status("--json").json()

    assert done.status == 0 and done.err == ""
    assert NO_RECORD not in done.out
    assert row(done.out, MISSING.isoformat())[:4] == [
        str(MISSING),
        "B4b",
        dollars(e3),
        dollars(e3 - E2, signed=True),
    ]
    assert lines_under(done.out, MISSING)[0] == SPOOLED
    assert row(done.out, D4.isoformat())[3] == dollars(E4 - e3, signed=True)
    assert GAP_NOTE not in done.out, "no gap any more: the spooled record is the previous"
    assert "the last 4 recorded of up to 10" in done.out
    entry = document["sessions"][2]
    assert (entry["recorded"], entry["spooled"], entry["run_id"]) == (True, True, "run-spooled")
    assert entry["equity"] == str(e3)
    assert [s["spooled"] for s in document["sessions"]] == [False, False, True, False]


def test_a_newer_spooled_record_of_a_session_stands_for_it_an_older_one_not(status, journal, state):
    """What the journal will read once the spool is replayed: its newest record by name."""
    journal.append(record(D1))
    later = record(
        D1,
        run_id="run-later",
        written_at=datetime(2024, 3, 28, 21, 0, tzinfo=UTC),
        equity=E2,
        prices=PRICES_2,
    )
    earlier = record(D1, run_id="run-earlier", written_at=datetime(2024, 3, 28, 19, 0, tzinfo=UTC))
    spool_record(state, journal, earlier)

    assert status("--json").json()["sessions"][0]["run_id"] == f"run-{D1}"

    spool_record(state, journal, later)
    out = status().out

    assert row(out, D1.isoformat())[2] == dollars(E2)
    assert lines_under(out, D1)[0] == SPOOLED
    assert f"positions  at {D1} (spooled record): equity {dollars(E2)}" in out


def test_only_this_journals_spooled_records_count(status, journal, state):
    journal.append(record(D1))
    Spool(state / "spool").add("s3://another/journal", record(D2), "journal write failed")

    assert dated(status().out) == [str(D1)]


def test_a_spooled_record_shows_even_before_the_journal_has_one(status, state):
    journal = LocalJournal(state / "journal")
    spool_record(state, journal, record(D1))

    out = status().out

    assert row(out, D1.isoformat())[2] == dollars(E1)
    assert lines_under(out, D1)[0] == SPOOLED


def test_a_spool_file_that_is_not_an_entry_is_named_and_left_in_place(status, journal, state):
    journal.append(record(D1))
    spool_record(state, journal, record(D2))
    bad = state / "spool" / "20240401T000000000000Z-2024-04-01-garbage.json"
    bad.write_text("{")

    done = status()

    assert done.status == 0 and done.err == ""
    assert dated(done.out) == [str(D1), str(D2)]
    [line] = [line for line in done.out.splitlines() if line.startswith("not read ")]
    assert line.startswith(f"not read   {bad}: not a spool entry")
    assert line.endswith(LEFT_IN_PLACE)
    assert bad.exists() and not (state / "spool" / "quarantine").exists()


def test_the_gap_note_says_what_the_day_pnl_spans(journal):
    """Rendering alone: the note is under the row whose day P&L crosses sessions without
    a record, and only there."""
    out = text(
        summarize(JournalView("file:///j", True, tuple(three_records())), 10, {}, today=D4),
        asked=10,
    )

    assert lines_under(out, D4)[0] == GAP_NOTE
    assert GAP_NOTE not in lines_under(out, D2)


# -- the positions ----------------------------------------------------------------------------


def test_positions_are_the_newest_records_with_value_weight_and_target(status, journal):
    for each in three_records():
        journal.append(each)

    out = status().out

    assert f"positions  at {D4}: equity {dollars(E4)}, cash {dollars(CASH_4)}" in out
    tecl_value = (HELD_4["TECL"] * PRICES_4["TECL"]).quantize(CENT)
    bil_value = (HELD_4["BIL"] * PRICES_4["BIL"]).quantize(CENT)
    tecl = ["TECL", "75", "$84.00", dollars(tecl_value), pct(tecl_value / E4), "50.00%"]
    bil = ["BIL", "20.123456789", "$91.50", dollars(bil_value), pct(bil_value / E4), "50.00%"]
    assert row(out, "TECL") == tecl
    assert row(out, "BIL") == bil


def test_a_version_1_record_has_no_prices_so_value_and_weight_are_unknown_never_zero(
    status, journal
):
    journal.append(record(D1, schema_version=1, prices={}))

    done = status()

    assert row(done.out, "TECL") == ["TECL", "100", "-", "-", "-", "100.00%"]
    assert "(-: no price recorded, schema version 1, so no value or weight)" in done.out
    [position] = status("--json").json()["positions"]
    assert position == {
        "symbol": "TECL",
        "qty": "100",
        "price": None,
        "value": None,
        "weight": None,
        "target_weight": "1",
    }


def test_a_version_2_record_without_a_price_does_not_blame_version_1(status, journal):
    """Only version 1 keeps no prices by design: a later record lacking one is said so
    plainly, never put down to a version it is not."""
    journal.append(record(D1, prices={}))

    out = status().out

    assert row(out, "TECL") == ["TECL", "100", "-", "-", "-", "100.00%"]
    assert "(-: no price recorded, so no value or weight)" in out
    assert "version 1" not in out


# -- for scripts ------------------------------------------------------------------------------


def test_json_holds_the_same_as_exact_decimal_strings_and_iso_dates(status, journal, place):
    for each in three_records():
        journal.append(each)
    send_alerts(place / "logs", Alert("refused", "tecl run refused to trade", session=MISSING))

    done = status("--json")

    assert done.status == 0 and done.err == ""
    document = done.json()
    assert document["first_session"] == str(D1)
    assert [s["session"] for s in document["sessions"]] == [str(D1), str(D2), str(MISSING), str(D4)]
    assert [s["recorded"] for s in document["sessions"]] == [True, True, False, True]
    assert [s["spooled"] for s in document["sessions"]] == [False] * 4
    assert document["journal_exists"] is True and document["invalid"] == []
    missing = document["sessions"][2]
    assert missing["equity"] is None and missing["orders"] == []
    assert missing["alerts"] == [{"kind": "refused", "title": "tecl run refused to trade"}]
    last = document["sessions"][3]
    assert (last["leaf"], last["equity"], last["cash"]) == ("C2", str(E4), str(CASH_4))
    assert last["day_pnl"] == str(E4 - E2) and last["previous_session"] == str(D2)
    assert last["total_pnl"] == str(E4 - E1)
    assert Decimal(last["total_return"]) == ((E4 - E1) / E1).quantize(Decimal("0.0001"))
    assert Decimal(last["drawdown"]) == (E4 / E2 - 1).quantize(Decimal("0.0001"))
    assert last["residuals"] == {"TECL": "-15"}
    assert last["orders"][0] == {
        "side": "sell",
        "symbol": "TECL",
        "qty": "40",
        "filled_qty": "25",
        "filled_avg_price": "86.0000",
        "status": "canceled",
    }
    assert document["positions_session"] == str(D4)
    bil = next(p for p in document["positions"] if p["symbol"] == "BIL")
    assert bil["qty"] == "20.123456789" and bil["price"] == "91.50"
    assert bil["value"] == str((HELD_4["BIL"] * PRICES_4["BIL"]).quantize(CENT))
    assert bil["target_weight"] == "0.5"


# -- where it looks, and that it only looks ---------------------------------------------------


def test_it_writes_nothing_no_probe_no_spool_no_log_no_quarantine(status, journal, place, state):
    """Not even the journal's own rule for a record that is not one (D3): moving it would
    leave the next run nothing to quarantine, so nobody would be alerted. The same for a
    spool file that is not an entry (Spool.pending would set it aside)."""
    for each in three_records():
        journal.append(each)
    garbage = state / "journal" / "sessions" / str(D2) / "99999999T999999Z-garbage.json"
    garbage.write_text("{")
    spooled = spool_record(state, journal, record(MISSING, equity=E2, prices=PRICES_2))
    bad_spool = state / "spool" / "00000000T000000000000Z-garbage.json"
    bad_spool.write_text("{")
    before = files_under(place)

    assert status().status == 0
    assert status("--json").status == 0

    assert files_under(place) == before
    assert garbage.exists() and spooled.exists() and bad_spool.exists()
    assert not list(place.rglob("quarantine"))
    assert sorted(p.name for p in place.iterdir()) == ["state"]


def test_on_s3_state_it_reads_the_journal_in_the_bucket(
    status, place, monkeypatch, aws_sandbox, s3_bucket, moto_s3, make_s3_client
):
    """TECL_STATE_URI=s3://bucket/prefix: the journal a run writes there (moto in server
    mode, reached through the environment as a deployment reaches S3)."""
    journal = open_journal(
        f"s3://{s3_bucket}/tecl/journal",
        spool_dir=place / "spool",
        s3_client=make_s3_client(),
    )
    for each in three_records():
        journal.append(each)
    keys = moto_s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
    monkeypatch.setenv("TECL_STATE_URI", f"s3://{s3_bucket}/tecl")
    monkeypatch.setenv("TECL_LOCAL_DIR", str(place / "local"))

    done = status()

    assert done.status == 0, done.err
    assert done.out.splitlines()[0] == f"journal    s3://{s3_bucket}/tecl/journal"
    assert f"{MISSING}  {NO_RECORD}" in done.out
    assert row(done.out, D4.isoformat())[4] == dollars(E4 - E1, signed=True)
    assert row(done.out, "BIL")[1] == "20.123456789"
    assert moto_s3.list_objects_v2(Bucket=s3_bucket)["Contents"] == keys, "no probe written"
    assert not (place / "local").exists(), "no spool, no lock"


@pytest.fixture
def demo_run(tmp_path: Path) -> Iterator[tuple[Path, date]]:
    """`make run`'s command, run in a fresh folder: the folder and the session it traded."""
    done = tecl(["run"], tmp_path)
    assert done.returncode == 0, done.stderr
    yield tmp_path, date.fromisoformat(done.stdout.split()[1])


def test_it_looks_where_tecl_run_writes_for_the_same_environment(demo_run):
    """The built-in demo keeps its state apart (.tecl/demo); `tecl status` in the same
    environment finds the run's record there, without being told."""
    folder, session = demo_run

    done = tecl(["status"], folder)
    document = json.loads(tecl(["status", "--json"], folder).stdout)

    assert done.returncode == 0 and done.stderr == ""
    journal = folder / ".tecl" / "demo" / "state" / "journal"
    assert done.stdout.splitlines()[0] == f"journal    {journal.as_uri()}"
    assert row(done.stdout, session.isoformat())[0] == str(session)
    [written] = LocalJournal(journal).records(session)
    held = {p["symbol"]: Decimal(p["qty"]) for p in document["positions"] if Decimal(p["qty"])}
    assert held == {symbol: qty for symbol, qty in written.positions.items() if qty}
    assert document["sessions"][-1]["run_id"] == written.run_id


# -- what it cannot read ----------------------------------------------------------------------


def test_an_unreadable_journal_is_one_line_exit_1(status, state):
    sessions = state / "journal" / "sessions"
    sessions.parent.mkdir(parents=True)
    sessions.write_text("not a folder")  # listing it fails, for root too

    done = status()

    assert done.status == 1
    line = done.line()
    assert line.startswith("tecl status: cannot read the journal: list on ")
    assert str(sessions) in line and "Not a directory" in line
    assert "trading" not in line, "status trades nothing: the run's refusal is not its to say"
    assert done.out == ""


def test_a_record_of_a_newer_pipeline_is_one_line_exit_1_saying_upgrade(status, journal, state):
    journal.append(record(D1))
    [path] = (state / "journal" / "sessions" / str(D1)).glob("*.json")
    path.write_text(path.read_text().replace('"schema_version": 2', '"schema_version": 9'))

    done = status()

    assert done.status == 1
    line = done.line()
    assert line.startswith(f"tecl status: cannot read the journal: record {path} has ")
    assert line.endswith("; upgrade the pipeline to read it")
    assert "schema_version 9" in line and "trading" not in line


def test_a_missing_bucket_is_one_line_exit_1_naming_it(status, place, monkeypatch, aws_sandbox):
    monkeypatch.setenv("TECL_STATE_URI", "s3://no-such-bucket-for-status/tecl")
    monkeypatch.setenv("TECL_LOCAL_DIR", str(place / "local"))

    done = status()

    assert done.status == 1
    line = done.line()
    assert line.startswith("tecl status: cannot read the journal:")
    assert "no-such-bucket-for-status" in line and "trading" not in line


def test_a_spool_folder_that_cannot_be_listed_is_one_line_exit_1_not_an_empty_spool(
    status, journal, state, monkeypatch
):
    """Its records would otherwise show as missing. The listing is made to fail (root, as
    the tests may run, ignores a folder's permissions); Path.glob would swallow it."""
    journal.append(record(D1))
    spool = spool_record(state, journal, record(D2)).parent
    listing = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == spool:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)

    done = status()

    assert done.status == 1 and done.out == ""
    assert done.line() == f"tecl status: cannot read the spool {spool}: Permission denied"


def test_an_aws_profile_that_does_not_exist_is_one_line_exit_1_not_a_bug(tmp_path):
    """A setting of the person's, said as one: no "internal error", no traceback, no error
    file. A separate process, with the profile set as a person's shell sets it."""
    done = tecl(
        ["status"],
        tmp_path,
        TECL_STATE_URI="s3://tecl-bucket/x",
        AWS_PROFILE="nope",
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
    )

    assert done.returncode == 1
    assert Done(done.returncode, done.stdout, done.stderr).line() == (
        "tecl status: cannot open the journal: the AWS profile 'nope' (AWS_PROFILE) is not "
        "set up in the AWS config or credentials file"
    )
    assert done.stdout == ""
    assert list(tmp_path.rglob("tecl-error-*")) == [], "no error file: it is no bug"


def test_no_aws_region_is_one_line_exit_1_naming_the_settings(status, place, monkeypatch):
    """Any botocore setup error from making the S3 client is the AWS settings' to fix."""
    from botocore.exceptions import NoRegionError

    from tecl_pipeline.defs.resources import StateResource

    def journal(*args: Any, **kwargs: Any) -> Any:
        raise NoRegionError()

    monkeypatch.setattr(StateResource, "journal", journal)
    monkeypatch.setenv("TECL_STATE_URI", "s3://tecl-bucket/x")
    monkeypatch.setenv("TECL_LOCAL_DIR", str(place / "local"))

    done = status()

    assert done.status == 1 and done.out == ""
    assert done.line() == (
        "tecl status: cannot open the journal: no AWS region is set (AWS_REGION, "
        "AWS_DEFAULT_REGION or the profile's region)"
    )


def test_an_unreadable_alert_file_is_one_line_exit_1_naming_it(status, journal, place):
    journal.append(record(D1))
    (place / "logs" / "alerts.jsonl").mkdir(parents=True)

    done = status()

    assert done.status == 1
    assert done.line().startswith(f"tecl status: cannot read the alert file {place / 'logs'}")


def test_bad_settings_are_a_configuration_error_in_one_line_exit_1(status, place, monkeypatch):
    monkeypatch.setenv("TECL_STATE_URI", "ftp://example.com/state")

    done = status()

    assert done.status == 1
    assert done.line().startswith("tecl: configuration error:")
    assert "TECL_STATE_URI" in done.line()


def test_a_record_that_is_not_a_record_is_named_left_in_place_and_the_rest_shown(
    status, journal, state
):
    """Skipped and said, not quarantined: the next run moves it and alerts (D3)."""
    for each in three_records():
        journal.append(each)
    garbage = state / "journal" / "sessions" / str(D2) / "99999999T999999Z-garbage.json"
    garbage.write_text("{")

    done = status()

    assert done.status == 0 and done.err == ""
    [line] = [line for line in done.out.splitlines() if line.startswith("not read ")]
    assert line.startswith(f"not read   {garbage}: ") and line.endswith(f"; {LEFT_IN_PLACE}")
    assert row(done.out, D2.isoformat())[2] == dollars(E2), "the session's valid record"
    [invalid] = status("--json").json()["invalid"]
    assert invalid["location"] == str(garbage) and invalid["reason"] in line
    assert "quarantined" not in status("--json").json()
    assert garbage.exists()


def test_an_alert_never_shows_a_secret_of_the_environment(status, journal, place, monkeypatch):
    """Alerts are redacted when sent; a file from before a secret was known is masked still."""
    secret = "sk-status-0123456789abcdef"
    monkeypatch.setenv("ALPACA_SECRET_KEY", secret)
    journal.append(record(D1))
    send_alerts(place / "logs", Alert("auth", f"key {secret} refused", session=D1))

    out = status().out + status("--json").out

    assert "alert auth: key" in out
    assert secret not in out


# -- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0", "-1", "ten", "1.5", "³", "٣", " 3", "+3"])
def test_sessions_must_be_a_whole_number_from_1_or_it_is_a_usage_error(status, state, bad):
    """A usage error, 64 as for every command: 2 would read as "refused" to a scheduler.
    "³" is a digit to str.isdigit() but no number to int(): still the option's own words."""
    done = status("--sessions", bad)

    assert done.status == 64
    line = done.line()
    assert "usage error: argument --sessions: " in line
    assert f"{bad!r} is not a whole number of sessions >= 1" in line


def test_help_says_what_the_positions_are_and_how_exact_the_json_is(place, capsys):
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())

    assert "positions as of the last record" in help_text
    assert "positions now" not in help_text
    assert "money and quantities as exact decimal strings" in help_text
    assert "rounded to 4 places" in help_text


def test_the_default_is_ten_sessions(status, journal):
    start = date(2024, 3, 1)
    for day in [start + timedelta(days=n) for n in range(20)]:
        if day.weekday() < 5:
            journal.append(record(day))

    document = status("--json").json()

    assert sum(s["recorded"] for s in document["sessions"]) == 10
    assert document["sessions"][-1]["session"] == str(date(2024, 3, 20))


def test_the_readme_example_is_what_it_prints(status, journal, place):
    """README's example is this output of the three records above (its journal line aside,
    which names a folder of the reader's own)."""
    for each in three_records():
        journal.append(each)
    send_alerts(
        place / "logs",
        Alert("refused", "tecl run refused to trade", session=MISSING),
        Alert("residuals", f"session {D4}: residuals remain", session=D4),
    )
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [example] = [
        block.split("```", 1)[0]
        for block in readme.split("```text\n")[1:]
        if block.startswith("journal    ")
    ]

    assert status().out.splitlines()[1:] == example.splitlines()[1:]
