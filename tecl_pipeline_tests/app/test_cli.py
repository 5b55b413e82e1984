"""`tecl run` as a user runs it: a separate process, a report, and an honest exit status."""

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from tecl_pipeline.app.cli import _parser
from tecl_pipeline.simulator import AccountKind, DataPlan
from tecl_pipeline.simulator.engine import RATE_LIMIT_PER_MINUTE
from tecl_pipeline.simulator.model import MARKET_BUY_COLLAR
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline_tests.app.cli_helpers import REAL_LAST_SESSION, tecl


def test_run_prints_the_report_and_persists_the_run(tmp_path, csv_dir):
    folder = csv_dir(REAL_LAST_SESSION)
    done = tecl(["run", "--session", "2026-07-31"], tmp_path, TECL_DATA_DIR=str(folder))

    assert done.returncode == 0, done.stderr
    for heading in ("session", "data", "decision", "target", "orders", "positions"):
        assert heading in done.stdout
    assert "leaf " in done.stdout and "2026-07-31" in done.stdout
    # Project-local defaults: the run history and the journal outlive the process.
    assert any((tmp_path / ".dagster").iterdir())
    assert LocalJournal(tmp_path / ".tecl" / "state" / "journal").latest(REAL_LAST_SESSION)


def test_run_twice_trades_once_and_says_so(tmp_path, csv_dir):
    """X3 across processes: the second run finds the target reached and sends nothing."""
    folder = csv_dir(REAL_LAST_SESSION)
    first = tecl(["run", "--session", "2026-07-31"], tmp_path, TECL_DATA_DIR=str(folder))
    second = tecl(["run", "--session", "2026-07-31"], tmp_path, TECL_DATA_DIR=str(folder))

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "sent this run:" in first.stdout
    assert "none needed" in second.stdout and "sent earlier this session" in second.stdout


def test_stale_data_exits_2_with_the_reason(tmp_path, csv_dir):
    """T1: refusing to trade is exit status 2 with the symbol and date on stderr."""
    folder = csv_dir(REAL_LAST_SESSION)
    tqqq = pd.read_csv(folder / "TQQQ.csv")
    tqqq.iloc[:-2].to_csv(folder / "TQQQ.csv", index=False)

    done = tecl(["run", "--session", "2026-07-31"], tmp_path, TECL_DATA_DIR=str(folder))

    assert done.returncode == 2
    assert "refused to trade" in done.stderr
    assert "TQQQ" in done.stderr and "2026-07-29" in done.stderr


def test_default_session_is_the_latest_of_the_data(tmp_path, csv_dir):
    folder = csv_dir(date(2026, 7, 30))
    done = tecl(["run"], tmp_path, TECL_DATA_DIR=str(folder))

    assert done.returncode == 0, done.stderr
    assert "session      2026-07-30" in done.stdout


def test_holiday_is_not_a_session(tmp_path):
    """T3: no trading on an exchange holiday; the date and the reason are named."""
    done = tecl(["run", "--session", "2026-11-26"], tmp_path)

    assert done.returncode == 2
    assert "2026-11-26" in done.stderr


def test_bad_configuration_is_an_error_naming_the_key(tmp_path):
    """C4: a malformed setting fails before anything runs and names the variable."""
    done = tecl(["run"], tmp_path, TECL_MODE="sandbox")

    assert done.returncode == 1
    assert "TECL_MODE" in done.stderr


def test_bad_session_argument_is_rejected(tmp_path):
    done = tecl(["run", "--session", "31/07/2026"], tmp_path)

    assert done.returncode == 64  # a usage error, never 2 ("refused to trade")
    assert "YYYY-MM-DD" in done.stderr


def test_backfill_stores_every_historical_signal(tmp_path, market_dir, real_closes):
    """`tecl backfill` fills the queryable history table in one run; its signals equal
    signal_history on the same data."""
    import sqlite3

    from tecl_pipeline.core.strategy import signal_history

    done = tecl(
        ["backfill", "--start", "2021-01-01", "--end", "2026-07-31"],
        tmp_path,
        TECL_DATA_DIR=str(market_dir),
    )

    assert done.returncode == 0, done.stderr
    assert "in one run" in done.stdout
    table = tmp_path / ".tecl" / "state" / "history.sqlite"
    with sqlite3.connect(table) as db:
        stored = dict(db.execute("SELECT session, leaf FROM signals").fetchall())
    expected = signal_history(real_closes)["leaf"]
    days = expected.index
    assert isinstance(days, pd.DatetimeIndex)
    assert stored == {
        day.date().isoformat(): leaf for day, leaf in zip(days, expected, strict=True)
    }


def test_backfill_with_start_after_end_is_an_error(tmp_path):
    done = tecl(["backfill", "--start", "2026-01-02", "--end", "2025-01-02"], tmp_path)
    assert done.returncode == 1 and "after" in done.stderr


def test_the_simulators_modes_on_the_command_line_are_the_simulators_own():
    """`tecl simulator --account/--data-plan` offer the simulator's kinds and plans, Alpaca's
    defaults unless told (a margin account on the free data plan)."""
    args = _parser().parse_args(["simulator"])
    assert (args.account, args.data_plan) == (AccountKind.MARGIN.value, DataPlan.BASIC.value)
    for kind, plan in zip(AccountKind, [*DataPlan, DataPlan.BASIC], strict=False):
        args = _parser().parse_args(["simulator", "--account", kind, "--data-plan", plan])
        assert (AccountKind(args.account), DataPlan(args.data_plan)) == (kind, plan)
    with pytest.raises(SystemExit):
        _parser().parse_args(["simulator", "--account", "pdt-ish"])


def test_the_simulators_market_buy_collar_is_alpacas_strict_end_unless_told(capsys):
    assert _parser().parse_args(["simulator"]).market_buy_collar == MARKET_BUY_COLLAR
    args = _parser().parse_args(["simulator", "--market-buy-collar", "0.025"])
    assert args.market_buy_collar == Decimal("0.025")
    for bad in ("0.3", "-0.1", "lots", "NaN", "sNaN", "Infinity"):
        with pytest.raises(SystemExit) as usage:
            _parser().parse_args(["simulator", "--market-buy-collar", bad])
        assert usage.value.code == 64
        assert f"{bad!r} is not" in capsys.readouterr().err


def test_the_simulators_rate_limit_is_alpacas_unless_told(capsys):
    """200 requests a minute per key by default, a whole number to change it, 0 for none."""
    assert _parser().parse_args(["simulator"]).rate_limit == RATE_LIMIT_PER_MINUTE == 200
    assert _parser().parse_args(["simulator", "--rate-limit", "50"]).rate_limit == 50
    assert _parser().parse_args(["simulator", "--rate-limit", "0"]).rate_limit == 0
    for bad in ("-1", "2.5", "lots"):
        with pytest.raises(SystemExit) as usage:
            _parser().parse_args(["simulator", "--rate-limit", bad])
        assert usage.value.code == 64
        assert f"{bad!r} is not a whole number of requests >= 0" in capsys.readouterr().err
