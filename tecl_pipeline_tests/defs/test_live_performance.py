"""How the account is doing, in the UI: each session's figures on post_trade_positions, and
live_performance beside the backtest of the same sessions, brought up to date after each
session by a sensor."""

import base64
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    SensorDefinition,
    SkipReason,
    build_sensor_context,
)

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.performance import account_figures
from tecl_pipeline.core.performance_charts import INLINE_LIMIT
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.performance import (
    LIVE_PERFORMANCE_JOB,
    STUCK_AFTER,
    build_live_performance_sensor,
    live_performance_sensor,
)
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.state.journal.records import account_point, encode_record, record_basis

SESSIONS = (date(2026, 7, 27), date(2026, 7, 28), date(2026, 7, 30), date(2026, 7, 31))
SKIPPED = date(2026, 7, 29)


def _metadata(result: ExecuteInProcessResult, asset: str) -> dict[str, object]:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(asset)
    ]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


@pytest.fixture
def account(tmp_path: Path, csv_dir: Callable[..., Path]) -> tuple[Definitions, DagsterInstance]:
    settings = Settings(
        state_uri=(tmp_path / "state").as_uri(),
        data_dir=csv_dir(SESSIONS[-1]),
        local_dir=tmp_path / "local",
    )
    return build_definitions(settings), DagsterInstance.ephemeral()


def _trade(defs: Definitions, instance: DagsterInstance, session: date) -> ExecuteInProcessResult:
    job = defs.resolve_job_def("daily_trading_job")
    result = job.execute_in_process(
        partition_key=session.isoformat(), instance=instance, raise_on_error=False
    )
    assert result.success, session
    return result


def test_each_session_carries_its_account_figures_as_numbers(account, tmp_path):
    defs, instance = account
    results = [_trade(defs, instance, day) for day in SESSIONS[:3]]

    journal = LocalJournal(tmp_path / "state" / "journal")
    expected = account_figures([account_point(r) for r in journal.history()])
    for result, figures in zip(results, expected, strict=True):
        shown = _metadata(result, "post_trade_positions")
        # Numbers (the Plots tab draws only numbers), equal to the journal's own figures.
        for key in ("equity", "cash", "day_pnl", "total_pnl", "total_return", "drawdown"):
            assert isinstance(shown[key], float), key
            assert shown[key] == pytest.approx(float(getattr(figures, key))), key
        assert shown["first_session"] == str(SESSIONS[0])
    assert expected[-1].total_pnl == expected[-1].equity - expected[0].equity
    assert expected[-1].day_pnl == expected[-1].equity - expected[-2].equity

    last = journal.latest(SESSIONS[2])
    assert last is not None and last.prices and last.schema_version == 2
    positions = str(_metadata(results[-1], "post_trade_positions")["positions"])
    for symbol, qty in last.positions.items():
        value = (qty * last.prices[symbol]).quantize(Decimal("0.01"))
        assert f"| {symbol} | {qty} |" in positions
        assert f"${value:,.2f}" in positions


def test_live_performance_is_the_journal_beside_the_backtest(account, tmp_path):
    defs, instance = account
    for day in SESSIONS:  # SKIPPED never runs: the backtest trades it, the account does not
        _trade(defs, instance, day)

    result = defs.resolve_job_def(LIVE_PERFORMANCE_JOB).execute_in_process(instance=instance)
    shown = _metadata(result, "live_performance")

    journal = LocalJournal(tmp_path / "state" / "journal")
    history = journal.history()
    assert shown["sessions"] == len(SESSIONS)
    assert shown["equity"] == pytest.approx(float(history[-1].equity))
    assert shown["live_return"] == pytest.approx(
        float(history[-1].equity / history[0].equity - 1), abs=1e-6
    )
    # The plot of both curves is inline: under the UI's limit, an image, and it decodes.
    inline = str(shown["equity_curves"])
    assert len(inline) < INLINE_LIMIT
    prefix = "![live and backtest equity](data:image/svg+xml;base64,"
    assert inline.startswith(prefix) and inline.endswith(")")
    svg = base64.b64decode(inline[len(prefix) : -1]).decode()
    assert svg.count("<polyline") == 2
    assert Path(str(shown["plot_path"])).read_bytes().startswith(b"\x89PNG")
    assert "| live |" in str(shown["figures"]) and "| backtest |" in str(shown["figures"])
    # The skipped session is where the two held different things, and says why.
    divergences = str(shown["divergences"])
    assert f"| {SKIPPED} | no record" in divergences
    assert shown["divergent_sessions"] == divergences.count("\n| 20")
    for day in SESSIONS:
        assert f"| {day} |" in str(shown["tracking_by_session"])


def test_before_a_second_session_it_says_what_is_missing(account):
    defs, instance = account
    _trade(defs, instance, SESSIONS[0])
    result = defs.resolve_job_def(LIVE_PERFORMANCE_JOB).execute_in_process(instance=instance)
    shown = _metadata(result, "live_performance")
    assert shown["sessions"] == 1
    assert "starts with the second" in str(shown["comparison"])


def _ask(
    instance: DagsterInstance,
    defs: Definitions,
    cursor: str | None,
    sensor: SensorDefinition = live_performance_sensor,
) -> tuple:
    """One evaluation of the sensor, as the daemon makes it: (its answer, its cursor after)."""
    with build_sensor_context(instance=instance, definitions=defs, cursor=cursor) as context:
        answer = sensor(context)
        return answer, context.cursor


def test_a_recorded_session_asks_for_one_update_and_waits_for_an_unfinished_one(account):
    defs, instance = account
    answer, cursor = _ask(instance, defs, None)
    assert isinstance(answer, SkipReason) and cursor is None

    _trade(defs, instance, SESSIONS[0])
    answer, cursor = _ask(instance, defs, cursor)
    assert isinstance(answer, RunRequest) and cursor is not None
    assert answer.run_key == f"after-{cursor}"
    assert isinstance(_ask(instance, defs, cursor)[0], SkipReason)  # asked once

    # Two more sessions while an update has not started yet: nothing is asked, the cursor
    # stays, and once that run is done one run covers both.
    queued = instance.create_run_for_job(
        defs.resolve_job_def(LIVE_PERFORMANCE_JOB), status=DagsterRunStatus.NOT_STARTED
    )
    for day in SESSIONS[1:3]:
        _trade(defs, instance, day)
    answer, after = _ask(instance, defs, cursor)
    assert isinstance(answer, SkipReason) and "not finished" in str(answer.skip_message)
    assert after == cursor
    instance.report_run_canceled(queued)
    answer, after = _ask(instance, defs, cursor)
    assert isinstance(answer, RunRequest) and after != cursor
    assert isinstance(_ask(instance, defs, after)[0], SkipReason)

    # A run left unfinished for more than an hour (its worker killed) is not waited on.
    stuck = instance.create_run_for_job(
        defs.resolve_job_def(LIVE_PERFORMANCE_JOB), status=DagsterRunStatus.NOT_STARTED
    )
    _trade(defs, instance, SESSIONS[3])
    assert isinstance(_ask(instance, defs, after)[0], SkipReason)
    later = build_live_performance_sensor(
        clock=lambda: datetime.now(UTC) + STUCK_AFTER + timedelta(minutes=1)
    )
    answer, _ = _ask(instance, defs, after, later)
    assert isinstance(answer, RunRequest), stuck.run_id


def test_figures_come_from_the_previous_record_and_never_stop_a_traded_session(
    account, tmp_path, monkeypatch
):
    """Each record keeps what the next session's figures are measured from, so a run reads
    one record. A record without it (written before, version 1) is bridged from the whole
    journal; if the journal cannot give the figures, the session's record is still written
    and the step succeeds, saying the figures are unavailable."""
    defs, instance = account
    journal = LocalJournal(tmp_path / "state" / "journal")
    _trade(defs, instance, SESSIONS[0])
    first = journal.latest(SESSIONS[0])
    assert first is not None and record_basis(first) is not None
    assert (first.first_session, first.first_equity) == (SESSIONS[0], first.equity)

    # The first session's record as the pipeline before this one wrote it.
    [path] = (tmp_path / "state" / "journal" / "sessions" / str(SESSIONS[0])).iterdir()
    path.write_bytes(encode_record(first.model_copy(update={"schema_version": 1})))
    monkeypatch.setattr(LocalJournal, "history", _unreadable)
    blind = _metadata(_trade(defs, instance, SESSIONS[1]), "post_trade_positions")
    assert "unavailable" in str(blind["account"]) and "total_pnl" not in blind
    second = journal.latest(SESSIONS[1])
    assert second is not None and record_basis(second) is None

    monkeypatch.undo()
    shown = _metadata(_trade(defs, instance, SESSIONS[2]), "post_trade_positions")
    expected = account_figures([account_point(r) for r in journal.history()])[-1]
    assert shown["total_pnl"] == pytest.approx(float(expected.total_pnl))
    assert shown["drawdown"] == pytest.approx(float(expected.drawdown))
    third = journal.latest(SESSIONS[2])
    assert third is not None and third.first_session == SESSIONS[0]


def _unreadable(self: LocalJournal) -> list:
    raise OSError(5, "Input/output error")
