"""`tecl run`'s exit status tells the truth (P1), and every failure of a `tecl` command is one
clear line (P2): each test runs the real command as a separate process against the broker
simulator (a separate `tecl simulator` process), injects the fault, and reads what a person
or a scheduler would read: the exit status, stdout, stderr and the alert file."""

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance

from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.defs.run_tags import OUTCOME_TAG, OutcomeLabel
from tecl_pipeline.simulator.engine import DEMO_API_KEY, DEMO_API_SECRET
from tecl_pipeline_tests.app.cli_helpers import REAL_LAST_SESSION, tecl_process, user_environ
from tecl_pipeline_tests.app.cli_helpers import tecl as run_tecl
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    CLI_SESSION,
    hold_bil,
    sim_admin,
    sim_state,
)

SESSION = CLI_SESSION


def _in(cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` over a Dagster instance and an alert file of `cwd`'s own."""
    return {
        "DAGSTER_HOME": str(cwd / ".dagster"),
        "TECL_ALERT_FILE": str(cwd / "alerts.jsonl"),
        **env,
    }


def _environ(cwd: Path, **env: str) -> dict[str, str]:
    return user_environ(**_in(cwd, env))


def tecl(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_tecl(args, cwd, **_in(cwd, env))


def _sigterm_once(
    run: subprocess.Popen[str],
    ready: Callable[[], bool],
    never: str,
    within: float,
    every: float,
) -> tuple[str, str]:
    """SIGTERM `run` as soon as `ready()` holds (polled every `every` s, for at most
    `within` s, failing with `never`); its stdout and stderr. A process left is killed."""
    try:
        deadline = time.monotonic() + within
        while not ready():
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, never
            time.sleep(every)
        run.send_signal(signal.SIGTERM)
        return run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def one_line(stderr: str) -> str:
    """The promise of P2: stderr is exactly one line, and no traceback anywhere."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def alerts(cwd: Path) -> list[dict]:
    path = cwd / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_submissions(url: str) -> list[dict]:
    return [s for s in sim_state(url)["submissions"] if s["client_order_id"].startswith("tecl-")]


# -- P1: exit 3 -------------------------------------------------------------------------------


def test_orders_sent_but_session_not_clean_exits_3_with_report_and_alert(
    tmp_path,
    simulator_process,
):
    """The run sells BIL, then its TECL buy is rejected (TECL halted): orders were sent, the
    session is away from its target. Exit 3, not "refused": the report is printed with what
    to look at, one line on stderr, and the alert names it."""
    url = simulator_process
    hold_bil(url)
    sim_admin(url, "/_sim/assets/TECL", {"halted": True})

    done = tecl(["run", "--session", SESSION], tmp_path, TECL_BROKER_URL=url)

    assert done.returncode == 3, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert "refused" not in done.stdout + done.stderr
    assert "did not end clean" in line and "TECL" in line
    assert "sent this run:" in done.stdout and "tecl-20261124-sell-BIL-1" in done.stdout
    assert "look at" in done.stdout and "halted" in done.stdout
    outcomes = {(s["side"], s["symbol"]): s["outcome"] for s in run_submissions(url)}
    assert outcomes[("buy", "TECL")].startswith("rejected")
    [sold] = [o for o in sim_state(url)["orders"] if o["client_order_id"].startswith("tecl-")]
    assert (sold["side"], sold["symbol"], sold["status"]) == ("sell", "BIL", "filled")
    [alert] = [a for a in alerts(tmp_path) if a["kind"] == "not_clean"]
    assert alert["session"] == SESSION and "TECL" in alert["detail"]
    assert "halted" in alert["detail"] and "halted" in line


def test_refusal_is_exit_2_and_says_refused_once(tmp_path, csv_dir):
    """Exit 2 only when this run sent no order; "refused to trade" said once, naming the
    symbol and the date."""
    folder = csv_dir(REAL_LAST_SESSION)
    tqqq = pd.read_csv(folder / "TQQQ.csv")
    tqqq.iloc[:-2].to_csv(folder / "TQQQ.csv", index=False)

    done = tecl(["run", "--session", "2026-07-31"], tmp_path, TECL_DATA_DIR=str(folder))

    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.count("refused to trade") == 1 and (done.stdout + done.stderr).count("refused") == 1
    assert "TQQQ" in line and "2026-07-29" in line


def test_sip_on_the_free_data_plan_is_exit_2_naming_tecl_data_feed(tmp_path, simulator_process):
    """A paper run on Alpaca's free plan (`tecl simulator`'s default, as a new account's)
    with TECL_DATA_FEED=sip: Alpaca refuses recent SIP data, so no price to decide on. Exit 2
    in one line naming the variable and the feed that works; nothing sent."""
    url = simulator_process
    assert (sim_state(url)["data_plan"], sim_state(url)["account_kind"]) == ("basic", "margin")

    done = tecl(
        ["run", "--session", SESSION],
        tmp_path,
        TECL_MODE="paper",
        TECL_BROKER_URL=url,
        TECL_DATA_URL=url,
        ALPACA_API_KEY=DEMO_API_KEY,
        ALPACA_SECRET_KEY=DEMO_API_SECRET,
        TECL_DATA_FEED="sip",
    )

    assert done.returncode == 2, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert "refused to trade" in line and "recent SIP data" in line
    assert "TECL_DATA_FEED=iex" in line
    assert run_submissions(url) == []


# -- P1/C1: SIGTERM ---------------------------------------------------------------------------


def test_sigterm_while_an_order_is_working_stops_cleanly_and_exits_1(
    tmp_path,
    simulator_process,
):
    """SIGTERM while the run's BIL sell is held by the simulator (delayed fill): no order is
    sent after the signal (the TECL buy never goes out), the run alerts, says which order it
    left working, and exits 1 with a sentence."""
    url = simulator_process
    hold_bil(url)
    sim_admin(url, "/_sim/fills", {"mode": "delayed", "delay_polls": 1_000_000})
    run = tecl_process(
        ["run", "--session", SESSION], tmp_path, **_in(tmp_path, {"TECL_BROKER_URL": url})
    )
    stdout, stderr = _sigterm_once(
        run, lambda: bool(run_submissions(url)), "the run never sent its sell", 180, 0.1
    )

    assert run.returncode == 1, stdout + stderr
    line = one_line(stderr)
    assert "stopped by SIGTERM" in line and "tecl-20261124-sell-BIL-1" in line
    assert "TradingStopped" not in stdout + stderr
    [sell] = run_submissions(url)
    assert (sell["symbol"], sell["side"]) == ("BIL", "sell")
    [alert] = [a for a in alerts(tmp_path) if a["kind"] == "stopped"]
    assert alert["session"] == SESSION and "tecl-20261124-sell-BIL-1" in alert["detail"]
    # The UI's Runs page tells a stop from an error (README "In the UI").
    demo_home = tmp_path / ".dagster" / "demo"
    stopped = DagsterInstance.from_config(str(demo_home)).get_run_by_id(alert["run_id"])
    assert stopped is not None and stopped.tags[OUTCOME_TAG] == OutcomeLabel.STOPPED


def test_an_order_in_a_status_alpaca_does_not_document_is_exit_3_in_one_line(
    tmp_path,
    simulator_process,
):
    """B3 from the command line: while the run waits for its BIL sell, the broker shows it in
    a status nobody documents. The run stops at once (no TECL buy goes out), alerts, and says
    in one line which order and which status; no traceback, no retry loop. Exit 3, not 1: an
    order is out, so the session needs a person's attention."""
    url = simulator_process
    hold_bil(url)
    sim_admin(url, "/_sim/fills", {"mode": "never"})
    run = tecl_process(
        ["run", "--session", SESSION], tmp_path, **_in(tmp_path, {"TECL_BROKER_URL": url})
    )
    try:
        deadline = time.monotonic() + 180
        while not run_submissions(url):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the run never sent its sell"
            time.sleep(0.1)
        sim_admin(url, "/_sim/orders/tecl-20261124-sell-BIL-1/status", {"status": "on_ice"})
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

    assert run.returncode == 3, stdout + stderr
    line = one_line(stderr)
    assert line.startswith("tecl: attention: session 2026-11-24 did not end clean")
    assert "order tecl-20261124-sell-BIL-1 is in status 'on_ice'" in line
    assert "not one of Alpaca's documented order statuses" in line
    assert [s["side"] for s in run_submissions(url)] == ["sell"]
    assert any("on_ice" in a["detail"] for a in alerts(tmp_path))


# -- P1: usage errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--session", "31/07/2026"],
        ["run", "--sesion", "2026-07-31"],
        ["fly"],
        ["backfill", "--start", "2026-01-02"],
    ],
)
def test_usage_error_is_never_exit_2(tmp_path, args):
    done = tecl(args, tmp_path)

    assert done.returncode == 64
    assert "usage error" in one_line(done.stderr)


def test_run_help_shows_every_exit_status(tmp_path):
    done = tecl(["run", "--help"], tmp_path)

    assert done.returncode == 0
    for status in ("0", "1", "2", "3", "64"):
        assert f"\n  {status} " in done.stdout, done.stdout


# -- P2: one clear line -----------------------------------------------------------------------


def header_only_dir(root: Path) -> Path:
    folder = root / "header-only"
    folder.mkdir()
    for symbol in SYMBOLS:
        (folder / f"{symbol}.csv").write_text("date,adj_close\n")
    return folder


def test_header_only_csv_without_session_is_one_line(tmp_path):
    """`tecl run` with no --session defaults to the data's latest session: there is none."""
    folder = header_only_dir(tmp_path)
    done = tecl(["run"], tmp_path, TECL_DATA_DIR=str(folder))

    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "no price rows" in line and "TECL.csv" in line
    [alert] = [a for a in alerts(tmp_path) if a["kind"] == "refused"]
    assert "no price rows" in alert["detail"]


def test_simulator_on_header_only_csv_is_one_line(tmp_path):
    folder = header_only_dir(tmp_path)
    done = tecl(["simulator", "--port", "0", "--data-dir", str(folder)], tmp_path)

    assert done.returncode == 1
    assert "no price rows" in one_line(done.stderr)


def test_simulator_on_a_port_in_use_is_one_line(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = tecl(["simulator", "--port", str(port)], tmp_path)

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"127.0.0.1:{port}" in line and "in use" in line


def test_an_empty_price_cell_is_named_without_numpy_reprs(tmp_path, csv_dir):
    folder = csv_dir(REAL_LAST_SESSION)
    spy = pd.read_csv(folder / "SPY.csv")
    spy.loc[len(spy) - 1, "adj_close"] = None
    spy.to_csv(folder / "SPY.csv", index=False)

    done = tecl(["run", "--session", "2026-07-31"], tmp_path, TECL_DATA_DIR=str(folder))

    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "SPY" in line and "2026-07-31" in line
    assert "np." not in line and "float64" not in line


@pytest.mark.parametrize(
    ("home", "named"),
    [
        ("relative/home", "not an absolute path"),
        ("{tmp}/a-file", "is a file"),
        ("{tmp}/a-file/below", "cannot create"),
        ("/proc/self/fdinfo", "cannot write"),
    ],
)
def test_unusable_dagster_home_is_one_line_naming_it(tmp_path, market_dir, home, named):
    (tmp_path / "a-file").write_text("not a directory\n")
    # On real (CSV) data: the home is DAGSTER_HOME itself, not its demo folder.
    done = tecl(
        ["run"], tmp_path, DAGSTER_HOME=home.format(tmp=tmp_path), TECL_DATA_DIR=str(market_dir)
    )

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "DAGSTER_HOME" in line and named in line


def test_bad_dagster_yaml_is_one_line_naming_the_file(tmp_path):
    # The demo market's instance is the demo folder of DAGSTER_HOME.
    home = tmp_path / "home" / "demo"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("run_storage: [\n")
    done = tecl(["run"], tmp_path, DAGSTER_HOME=str(home.parent))

    assert done.returncode == 1
    assert str(home / "dagster.yaml") in one_line(done.stderr)


def test_a_session_that_is_not_a_partition_yet_says_when_it_will_be(tmp_path):
    """A run for tomorrow's session (or today's before dawn in New York) is refused in one
    line that says when the session becomes a partition."""
    from datetime import datetime

    from tecl_pipeline.core.calendar import EXCHANGE_TZ
    from tecl_pipeline.defs.partitions import CALENDAR, partition_opens

    upcoming = CALENDAR.next_session(datetime.now(EXCHANGE_TZ).date())
    done = run_tecl(["run", "--session", upcoming.isoformat()], tmp_path)

    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr + done.stdout)
    opens = partition_opens(upcoming)
    assert f"{upcoming} is not a trading partition yet" in line
    assert f"{opens:%Y-%m-%d %H:%M}" in line


def test_backfill_outside_the_history_is_one_line(tmp_path, market_dir):
    done = tecl(
        ["backfill", "--start", "1990-01-01", "--end", "1990-12-31"],
        tmp_path,
        TECL_DATA_DIR=str(market_dir),
    )

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "1990-01-01" in line and "partition" in line


def test_paper_mode_without_keys_is_one_line_naming_both(tmp_path):
    """C4/S4: no order, no network, no Dagster trace after the message."""
    done = tecl(
        ["run", "--session", "2026-07-31"],
        tmp_path,
        TECL_MODE="paper",
        TECL_BROKER_URL="http://127.0.0.1:9",
        TECL_DATA_URL="http://127.0.0.1:9",
    )

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "ALPACA_API_KEY is not set" in line and "ALPACA_SECRET_KEY is not set" in line


def test_bad_alert_webhook_url_is_a_configuration_error_naming_it(tmp_path, market_dir):
    """C4/S2: exit 1 naming TECL_ALERT_WEBHOOK_URL, before anything runs, its value hidden."""
    url = "http://alerts.example.com/services/T000/B000/very-secret-path"
    done = tecl(
        ["run", "--session", "2026-07-31"],
        tmp_path,
        TECL_DATA_DIR=str(market_dir),
        TECL_ALERT_WEBHOOK_URL=url,
    )

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "TECL_ALERT_WEBHOOK_URL" in line and "configuration" in line
    assert "very-secret-path" not in done.stdout + done.stderr
    assert not (tmp_path / ".tecl" / "state" / "journal").exists()
    # The webhook is what is broken: the routes that remain carry the alert, URL hidden.
    [alert] = alerts(tmp_path)
    assert "TECL_ALERT_WEBHOOK_URL" in alert["detail"] + alert["title"]
    logged = "".join(p.read_text() for p in (tmp_path / ".tecl" / "logs").glob("*.jsonl"))
    assert "very-secret-path" not in logged


# -- P1: warning checks are not refusals ------------------------------------------------------


def test_live_vs_history_mismatch_after_trading_is_exit_3_not_refused(
    run_daily, csv_dir, state_dir, real_closes
):
    """signal_parity only warns: the run traded, so the outcome is 3 with the mismatch in the
    report's look-at list, never 2 ("refused") for a run that sent its orders."""
    from tecl_pipeline.core.strategy import signal_history
    from tecl_pipeline.defs.run_report import EXIT_NOT_CLEAN, explain_result
    from tecl_pipeline.state.history_store import write_signals

    day = signal_history(real_closes).loc[[pd.Timestamp(REAL_LAST_SESSION)]]
    other = "R5a" if day["leaf"].iloc[0] != "R5a" else "B4b"
    write_signals(state_dir / "history.sqlite", day.assign(leaf=other))

    result = run_daily(REAL_LAST_SESSION, data_dir=csv_dir(REAL_LAST_SESSION))
    outcome = explain_result(result, REAL_LAST_SESSION)

    assert outcome.exit_code == EXIT_NOT_CLEAN
    assert "sent this run:" in outcome.report and "look at" in outcome.report
    assert any(other in item for item in outcome.attention)
    assert "refused" not in outcome.reason


def test_journal_broker_difference_after_trading_is_exit_3_naming_the_symbols(run_daily, state_dir):
    """pre_trade_ready's journal/broker difference (a split between sessions) warns and
    the run goes on: 3 with the symbols in the look-at list, not a refusal."""
    from datetime import date

    from tecl_pipeline.defs.run_report import EXIT_NOT_CLEAN, EXIT_OK, explain_result
    from tecl_pipeline.state.journal.local import LocalJournal

    first = date(2026, 11, 23)
    assert explain_result(run_daily(first), first).exit_code == EXIT_OK
    journal = LocalJournal(state_dir / "journal")
    record = journal.latest(first)
    assert record is not None, f"no journal record for {first}"
    wrong = {s: q * 2 for s, q in record.positions.items()}
    journal.append(record.model_copy(update={"positions": wrong, "run_id": "tampered"}))

    session = date(2026, 11, 24)
    outcome = explain_result(run_daily(session), session)

    assert outcome.exit_code == EXIT_NOT_CLEAN, outcome.reason
    assert wrong and all(any(s in item for item in outcome.attention) for s in wrong)
    assert "refused" not in outcome.reason


def test_a_bug_is_one_line_with_the_traceback_in_a_file_and_no_secret(tmp_path):
    """The safety net under every `tecl` command: an exception nobody expected is one line
    (exit 1) naming where its traceback went; the secret in its message is masked in both."""
    canary = "canary-secret-value-1234"
    crash = (
        "import sys\n"
        "import tecl_pipeline.app.cli as cli\n"
        "def broken(*args):\n"
        f"    raise ZeroDivisionError('while pricing with {canary}')\n"
        "cli._command = broken\n"
        "sys.exit(cli.main(['run']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", crash],
        cwd=tmp_path,
        env=_environ(tmp_path, ALPACA_SECRET_KEY=canary, TECL_LOG_DIR=str(tmp_path / "logs")),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "internal error" in line and "while pricing with ***" in line
    [details] = (tmp_path / "logs").glob("tecl-error-*.txt")
    assert str(details) in line
    text = details.read_text()
    assert "ZeroDivisionError" in text and "Traceback" in text
    assert canary not in done.stderr + done.stdout + text


def test_broker_unreachable_is_exit_1_in_one_line_naming_the_call(tmp_path):
    """Nothing listens at the broker URL: after its retries the run is an error (1), not a
    refusal, in one line naming the call that got no answer."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    done = tecl(["run", "--session", SESSION], tmp_path, TECL_BROKER_URL=f"http://127.0.0.1:{port}")

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "/v2/account" in line and "no answer from the broker" in line
    assert "refused to trade" not in line
    assert f"http://127.0.0.1:{port} did not answer: connection refused" in line
    assert "ConnectionError" not in line and "HTTPConnectionPool" not in line


# -- C4/P1: a configuration failure before any run is alerted ---------------------------------

CANARY_KEY = "PKCANARYKEY0123456789"


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("paper mode, secret key unset", "ALPACA_SECRET_KEY is not set"),
        ("relative DAGSTER_HOME", "DAGSTER_HOME"),
        ("DAGSTER_HOME is a file", "DAGSTER_HOME"),
        ("dagster.yaml is not YAML", "dagster.yaml"),
        ("dagster.yaml is a list", "dagster.yaml"),
        ("dagster.yaml's PostgreSQL is unreachable", "database cannot be reached"),
    ],
)
def test_configuration_error_before_the_run_is_one_line_and_one_alert(tmp_path, case, named):
    """No Dagster run exists, so no run-failure hook or sensor can see it: `tecl run` itself
    alerts once, naming what is wrong, never a secret's value, and exits 1."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"DAGSTER_HOME": str(home), "TECL_DATA_DIR": str(header_only_dir(tmp_path))}
    if case == "paper mode, secret key unset":
        env.update(
            TECL_MODE="paper",
            TECL_BROKER_URL="http://127.0.0.1:9",
            TECL_DATA_URL="http://127.0.0.1:9",
            ALPACA_API_KEY=CANARY_KEY,
        )
    elif case == "relative DAGSTER_HOME":
        env["DAGSTER_HOME"] = "relative/home"
    elif case == "DAGSTER_HOME is a file":
        (tmp_path / "a-file").write_text("not a directory\n")
        env["DAGSTER_HOME"] = str(tmp_path / "a-file")
    else:
        (home / "dagster.yaml").write_text(
            {
                "dagster.yaml is not YAML": "run_storage: [\n",
                "dagster.yaml is a list": "- telemetry\n- enabled\n",
                "dagster.yaml's PostgreSQL is unreachable": (
                    "storage:\n  postgres:\n    postgres_url: postgresql://u@127.0.0.1:9/db\n"
                ),
            }[case]
        )

    done = tecl(["run", "--session", "2026-07-31"], tmp_path, **env)

    assert done.returncode == 1, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert "configuration error" in line and named in line
    assert "internal error" not in line
    [alert] = alerts(tmp_path)
    assert alert["kind"] == "config_error" and named in alert["detail"]
    assert CANARY_KEY not in json.dumps(alert) + done.stderr


# -- C1/P1: SIGTERM before the run starts ------------------------------------------------------


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has its SIGTERM handler installed (SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_sigterm_before_the_run_starts_exits_1_with_a_sentence_and_an_alert(tmp_path, market_dir):
    """The handler is the first thing `tecl run` installs: a stop while it still loads
    Dagster is reported (one sentence, exit 1, one alert), not a silent rc 143, and no
    order, record or run follows it."""
    # Coverage measures subprocesses with a SIGTERM handler of its own (`sigterm = true`),
    # installed before tecl's: the probe below could not tell the two apart, so this one
    # process goes unmeasured.
    env = {
        name: value
        for name, value in _environ(tmp_path, TECL_DATA_DIR=str(market_dir)).items()
        if not name.startswith("COVERAGE_")
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "tecl_pipeline.app.cli", "run", "--session", "2026-07-31"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = _sigterm_once(
        run,
        lambda: _catches_sigterm(run.pid),
        "tecl run never installed its SIGTERM handler",
        60,
        0.005,
    )

    assert run.returncode == 1, stdout + stderr
    line = one_line(stderr)
    assert "stopped by SIGTERM before the run started: nothing sent" in line
    assert stdout == ""
    [alert] = alerts(tmp_path)
    assert alert["kind"] == "stopped" and alert["session"] == "2026-07-31"
    assert not (tmp_path / ".tecl" / "state" / "journal").exists()


# -- P1/P2: backfill is quiet and names the real cause -----------------------------------------


def test_backfill_with_an_off_calendar_bar_is_exit_2_naming_the_symbol_and_day(tmp_path, csv_dir):
    """SPY has an extra Saturday bar: the line names SPY and that day (not the other symbols
    that merely lack it), exit 2 as for any untrustworthy data, no Dagster log, no
    traceback, and nothing stored."""
    folder = csv_dir(REAL_LAST_SESSION)
    spy = pd.read_csv(folder / "SPY.csv")
    saturday = pd.DataFrame({"date": ["2026-07-25"], "adj_close": [spy["adj_close"].iloc[-1]]})
    pd.concat([spy, saturday]).sort_values("date").to_csv(folder / "SPY.csv", index=False)

    done = tecl(
        ["backfill", "--start", "2026-01-01", "--end", "2026-07-31"],
        tmp_path,
        TECL_DATA_DIR=str(folder),
    )

    assert done.returncode == 2, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert "SPY" in line and "2026-07-25" in line and "not an XNYS trading session" in line
    assert "TQQQ" not in line and "DEBUG" not in line
    assert "FAILED" in done.stdout and "0 session(s)" in done.stdout


def test_backfill_on_header_only_data_is_exit_2_in_one_line(tmp_path):
    done = tecl(
        ["backfill", "--start", "2026-01-01", "--end", "2026-07-31"],
        tmp_path,
        TECL_DATA_DIR=str(header_only_dir(tmp_path)),
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "no price rows" in one_line(done.stderr)


def test_successful_backfill_prints_nothing_on_stderr(tmp_path, market_dir):
    done = tecl(
        ["backfill", "--start", "2026-01-01", "--end", "2026-07-31"],
        tmp_path,
        TECL_DATA_DIR=str(market_dir),
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "ok" in done.stdout and "in one run" in done.stdout


# -- P2: the project's own errors read as sentences --------------------------------------------


def test_the_projects_own_errors_read_as_sentences_whatever_module_defines_them():
    """A journal error (defined in state/errors.py) that fails a step is told by its
    sentence, as a broker error is; a foreign exception keeps its class name."""
    from dagster import asset, materialize

    from tecl_pipeline.core.errors import describe
    from tecl_pipeline.defs.run_report import error_cause
    from tecl_pipeline.state.errors import JournalWriteError
    from tecl_pipeline.trading.errors import OutcomeUnknownError

    sentence = "journal write to s3://tecl-state/x failed: SlowDown; the record was spooled"

    @asset
    def journal_write() -> None:
        raise JournalWriteError(sentence, action="append", resource="s3://x", code="SlowDown")

    result = materialize([journal_write], raise_on_error=False)
    [failure] = result.get_step_failure_events()

    assert error_cause(failure.step_failure_data.error) == sentence
    unknown = "POST /v2/orders: the request may have reached the broker but no answer arrived"
    assert describe(OutcomeUnknownError(unknown)) == unknown
    assert describe(KeyError("TECL")) == "KeyError: 'TECL'"


def test_an_error_recorded_without_its_class_is_told_by_its_message():
    """Dagster may record an error without a class name: the report still has the words,
    and such an error is no refusal of untrusted input."""
    from dagster_shared.error import SerializableErrorInfo

    from tecl_pipeline.defs.run_report import error_cause, is_untrusted_input

    cause = SerializableErrorInfo("the feed stopped at 2026-07-30\n", [], None)
    wrapped = SerializableErrorInfo(
        "dagster._core.errors.DagsterExecutionStepExecutionError: Error in step\n",
        [],
        "DagsterExecutionStepExecutionError",
        cause=cause,
    )

    assert error_cause(wrapped) == "the feed stopped at 2026-07-30"
    assert not is_untrusted_input(wrapped)
