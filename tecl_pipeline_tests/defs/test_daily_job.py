"""The daily chain end to end on an ephemeral instance: demo data, CSV replay of real data,
and every way bad data must stop it before an order."""

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tecl_pipeline.core.strategy import signal_history
from tecl_pipeline.state.journal.local import LocalJournal

DEMO_SESSION = date(2026, 11, 24)
REAL_LAST_SESSION = date(2026, 7, 31)
CHAIN = (
    "market_data",
    "indicators",
    "signal",
    "target_allocation",
    "executed_orders",
    "post_trade_positions",
)


def broker_orders(state_dir: Path) -> list[dict]:
    """The demo broker's orders, read from its account file (none if it never traded)."""
    book = state_dir / "demo-broker" / "account.json"
    return json.loads(book.read_text())["orders"] if book.exists() else []


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_chain_materializes_and_reaches_the_target(run_daily, state_dir):
    result = run_daily(DEMO_SESSION)

    assert result.success
    assert materialized(result) == set(CHAIN)
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {
        "market_data_fresh",
        "market_data_sane",
        "post_trade_reconciled",
        "pre_trade_ready",
        "signal_parity",
    }
    # No history row to compare the live signal with: not checked, which is no pass.
    [parity] = [c for c in checks if c.check_name == "signal_parity"]
    assert not parity.passed and parity.description.startswith("not checked")
    assert all(c.passed for c in checks if c is not parity)
    decision = result.asset_value("signal")
    orders = result.asset_value("executed_orders")
    after = result.asset_value("post_trade_positions")
    # From an all-cash account, the run buys exactly the symbols the decision holds ...
    assert orders.sent, "a fresh demo account must trade into the target"
    assert {o.symbol for o in orders.sent} == set(decision.allocation)
    assert all(o.side.value == "buy" and o.status.value == "filled" for o in orders.sent)
    # ... and ends on the planned quantities, never spending more than the cash it had.
    assert after.residuals == {}
    assert after.positions == {s: q for s, q in orders.plan.targets.items() if q}
    assert after.cash >= 0
    # The UI shows what the data are and why the decision was taken.
    [md] = result.asset_materializations_for_node("market_data")
    assert "DEMO" in md.metadata["source"].value
    [sig] = result.asset_materializations_for_node("signal")
    assert sig.metadata["leaf"].value == decision.leaf
    assert decision.reason in sig.metadata["reason"].value


def test_session_is_journaled_for_the_next_session(run_daily, state_dir):
    """D5: the decision, orders and positions of a session are readable afterwards."""
    result = run_daily(DEMO_SESSION)
    record = LocalJournal(state_dir / "journal").latest(DEMO_SESSION)

    assert record is not None
    assert record.run_id == result.run_id
    assert record.leaf == result.asset_value("signal").leaf
    assert [o.client_order_id for o in record.orders] == [
        o.client_order_id for o in result.asset_value("executed_orders").sent
    ]
    assert record.positions == result.asset_value("post_trade_positions").positions


def test_same_session_twice_trades_once(run_daily, state_dir):
    """X3: a duplicate trigger for a session sends no second order."""
    first = run_daily(DEMO_SESSION)
    orders_after_first = broker_orders(state_dir)
    second = run_daily(DEMO_SESSION)

    assert first.success and second.success
    assert second.asset_value("executed_orders").sent == ()
    assert broker_orders(state_dir) == orders_after_first
    assert (
        second.asset_value("post_trade_positions").positions
        == first.asset_value("post_trade_positions").positions
    )
    assert len(LocalJournal(state_dir / "journal").records(DEMO_SESSION)) == 2


def test_next_session_rebalances_from_broker_positions(run_daily, state_dir):
    """D5: the next session starts from what the broker holds, not from a blank slate."""
    run_daily(date(2026, 11, 23))
    held_before = run_daily(DEMO_SESSION).asset_value("target_allocation").broker_before.held

    assert held_before, "the second session must see the first session's positions"


@pytest.mark.parametrize("session", [date(2022, 6, 16), REAL_LAST_SESSION])
def test_real_history_session_trades_the_history_signal(run_daily, csv_dir, real_closes, session):
    """CSV replay of real data: the chain's decision equals signal_history on that day."""
    result = run_daily(session, data_dir=csv_dir(session))

    assert result.success
    expected = signal_history(real_closes).loc[pd.Timestamp(session)]
    assert isinstance(expected, pd.Series)
    decision = result.asset_value("signal")
    assert decision.leaf == expected["leaf"]
    assert {s: w for s, w in expected.drop("leaf").items() if w != 0} == dict(decision.allocation)


def _assert_stopped_before_orders(result, state_dir: Path) -> None:
    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert broker_orders(state_dir) == []


def _failed_check_text(result) -> str:
    """The failed check's reason (the checks left unrun only repeat it, marked unchecked)."""
    [check] = [
        c
        for c in result.get_asset_check_evaluations()
        if not c.passed and "checked" not in c.metadata
    ]
    return check.description


def _refusal_text(result) -> str:
    """The reason the run gave, whether a blocking check or a step refused."""
    failed_checks = [c.description for c in result.get_asset_check_evaluations() if not c.passed]
    refusals = [
        e.step_failure_data.user_failure_data.description
        for e in result.get_step_failure_events()
        if e.step_failure_data.user_failure_data is not None
    ]
    assert failed_checks or refusals, "the run stopped without saying why"
    return "; ".join(failed_checks + refusals)


def test_stale_symbol_blocks_orders(run_daily, csv_dir, state_dir):
    """T1: one symbol's latest bar is older than the session -> blocking check, no orders."""
    folder = csv_dir(REAL_LAST_SESSION)
    kmlm = pd.read_csv(folder / "KMLM.csv")
    kmlm.iloc[:-1].to_csv(folder / "KMLM.csv", index=False)

    result = run_daily(REAL_LAST_SESSION, data_dir=folder)

    _assert_stopped_before_orders(result, state_dir)
    text = _failed_check_text(result)
    assert "KMLM" in text and "2026-07-30" in text and str(REAL_LAST_SESSION) in text


def test_nan_close_blocks_orders(run_daily, csv_dir, state_dir):
    """T1: a missing close in the window -> refusal names the symbol and date, no orders."""
    folder = csv_dir(REAL_LAST_SESSION)
    spy = pd.read_csv(folder / "SPY.csv")
    spy.loc[spy.index[-3], "adj_close"] = np.nan
    spy.to_csv(folder / "SPY.csv", index=False)
    bad_day = spy["date"].iloc[-3]

    result = run_daily(REAL_LAST_SESSION, data_dir=folder)

    _assert_stopped_before_orders(result, state_dir)
    text = _refusal_text(result)
    assert "SPY" in text and bad_day in text


def test_too_little_history_blocks_orders(run_daily, csv_dir, state_dir):
    """T1: fewer bars than the warm-up (KMLM before late 2021) is a data error, not a default."""
    session = date(2021, 6, 1)
    result = run_daily(session, data_dir=csv_dir(session))

    _assert_stopped_before_orders(result, state_dir)
    text = _failed_check_text(result)
    assert "KMLM" in text and "250" in text


def test_missing_symbol_file_refuses(run_daily, csv_dir, state_dir):
    """T1: a symbol with no data at all stops the run with its name, before any order."""
    folder = csv_dir(REAL_LAST_SESSION)
    (folder / "BSV.csv").unlink()

    result = run_daily(REAL_LAST_SESSION, data_dir=folder)

    _assert_stopped_before_orders(result, state_dir)
    [failure] = result.get_step_failure_events()
    user = failure.step_failure_data.user_failure_data
    assert user.metadata["outcome"].value == "refused"
    assert "BSV" in user.description


@pytest.mark.parametrize("symbol", ["TECL", "SPY"])
def test_non_positive_price_blocks_orders(run_daily, csv_dir, state_dir, symbol):
    """Bad input: a zero price is refused with the symbol named, before any order."""
    folder = csv_dir(REAL_LAST_SESSION)
    frame = pd.read_csv(folder / f"{symbol}.csv")
    frame.loc[frame.index[-1], "adj_close"] = 0
    frame.to_csv(folder / f"{symbol}.csv", index=False)

    result = run_daily(REAL_LAST_SESSION, data_dir=folder)

    _assert_stopped_before_orders(result, state_dir)
    [failure] = result.get_step_failure_events()
    assert symbol in failure.step_failure_data.user_failure_data.description


def test_two_runs_in_one_process_are_independent(tmp_path, run_daily):
    """T10: nothing leaks between runs in one process: two fresh states give equal results."""
    from dagster import DagsterInstance

    from tecl_pipeline.config.settings import Settings
    from tecl_pipeline.definitions import build_definitions

    results = []
    for name in ("a", "b"):
        settings = Settings(state_uri=(tmp_path / name).as_uri())
        job = build_definitions(settings).resolve_job_def("daily_trading_job")
        results.append(
            job.execute_in_process(
                partition_key=DEMO_SESSION.isoformat(), instance=DagsterInstance.ephemeral()
            )
        )
    sent = [
        [
            (o.symbol, o.side, o.qty, o.filled_avg_price)
            for o in r.asset_value("executed_orders").sent
        ]
        for r in results
    ]
    assert sent[0] == sent[1] and sent[0]


def test_split_at_the_broker_without_adjusted_prices_refuses(run_daily, state_dir):
    """X2/T4: the account's shares split between sessions while the decision prices were not
    adjusted: the run refuses naming the symbol instead of selling the "excess" shares."""
    from tecl_pipeline.core.calendar import TradingCalendar
    from tecl_pipeline.marketdata.demo import DemoMarketData
    from tecl_pipeline.simulator import BrokerSimulator

    run_daily(date(2026, 11, 23))
    held = next(
        iter(json.loads((state_dir / "demo-broker" / "account.json").read_text())["positions"])
    )
    calendar = TradingCalendar()
    moment = calendar.decision_time(DEMO_SESSION)
    BrokerSimulator(
        DemoMarketData(calendar, now=lambda: moment),
        calendar,
        now=moment,
        book_path=state_dir / "demo-broker" / "account.json",
    ).split(held, 2)
    orders_before = broker_orders(state_dir)

    result = run_daily(DEMO_SESSION)

    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert held in _refusal_text(result) and "disagree" in _refusal_text(result)
    assert broker_orders(state_dir) == orders_before


def test_refusal_reaches_the_alert_sink_naming_symbol_and_date(run_daily, csv_dir, state_dir):
    """T1/X9: the blocking check's refusal is delivered to the alert file with the symbol,
    the stale date and the session."""
    folder = csv_dir(REAL_LAST_SESSION)
    spy = pd.read_csv(folder / "SPY.csv")
    spy.iloc[:-1].to_csv(folder / "SPY.csv", index=False)

    run_daily(REAL_LAST_SESSION, data_dir=folder)

    alerts_file = state_dir.parent / "logs" / "alerts.jsonl"
    alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    [alert] = [a for a in alerts if a["kind"] == "refused"]
    assert "SPY" in alert["detail"] and "2026-07-30" in alert["detail"]
    assert alert["session"] == REAL_LAST_SESSION.isoformat()


def _parity(result):
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "signal_parity"]
    return check


def test_signal_parity_agrees_with_history_and_warns_when_it_does_not(
    run_daily, csv_dir, state_dir, real_closes
):
    """The live signal equals the history's signal from the session's close; when the stored
    history says otherwise the check warns with both values, and the run still trades."""
    from tecl_pipeline.core.strategy import signal_history
    from tecl_pipeline.state.history_store import write_signals

    history = signal_history(real_closes)
    day = history.loc[[pd.Timestamp(REAL_LAST_SESSION)]]
    write_signals(state_dir / "history.sqlite", day)
    agreeing = run_daily(REAL_LAST_SESSION, data_dir=csv_dir(REAL_LAST_SESSION))
    assert agreeing.success and _parity(agreeing).passed

    other = "R5a" if day["leaf"].iloc[0] != "R5a" else "B4b"
    write_signals(state_dir / "history.sqlite", day.assign(leaf=other))
    disagreeing = run_daily(REAL_LAST_SESSION, data_dir=csv_dir(REAL_LAST_SESSION))

    check = _parity(disagreeing)
    assert disagreeing.success
    assert not check.passed and check.severity.value == "WARN"
    assert day["leaf"].iloc[0] in check.description and other in check.description


def test_journal_broker_mismatch_fails_the_pre_trade_check_naming_the_symbol(run_daily, state_dir):
    """D4: the journal says one thing, the broker another: pre_trade_ready reports the
    differing symbols (as a warning: a corporate action must not stop the trading day, X2)."""
    first = run_daily(date(2026, 11, 23))
    record = LocalJournal(state_dir / "journal").latest(date(2026, 11, 23))
    assert record is not None
    wrong = {s: q * 2 for s, q in record.positions.items()}
    LocalJournal(state_dir / "journal").append(
        record.model_copy(update={"positions": wrong, "run_id": "tampered"})
    )

    second = run_daily(DEMO_SESSION)

    assert first.success and second.success
    [check] = [c for c in second.get_asset_check_evaluations() if c.check_name == "pre_trade_ready"]
    assert not check.passed and check.severity.value == "WARN"
    assert wrong and all(symbol in check.description for symbol in wrong)


def test_unfilled_order_fails_the_post_trade_check_naming_the_residual(tmp_path, simulator):
    """B6/D4: an order that never fills is cancelled at the fill timeout; the run records the
    shortfall and post_trade_reconciled fails, naming the symbol."""
    from dagster import DagsterInstance

    from tecl_pipeline.config.settings import Settings
    from tecl_pipeline.definitions import build_definitions

    simulator.simulator.set_fill_mode("never")
    settings = Settings(state_uri=(tmp_path / "state").as_uri(), broker_url=simulator.url)
    job = build_definitions(settings).resolve_job_def("daily_trading_job")
    policy = {"config": {"fill_timeout_seconds": 0.3, "poll_interval_seconds": 0.1}}

    result = job.execute_in_process(
        partition_key=DEMO_SESSION.isoformat(),
        instance=DagsterInstance.ephemeral(),
        run_config={"resources": {"trading_policy": policy}},
        raise_on_error=False,
    )

    assert result.success
    report = result.asset_value("executed_orders")
    assert report.cancelled and all(o.status.value == "canceled" for o in report.sent)
    [check] = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "post_trade_reconciled"
    ]
    assert not check.passed
    assert all(o.symbol in check.description for o in report.sent)
