"""Trading-side failure modes injected into whole runs of daily_trading_job (the real
Dagster job, the broker simulator over HTTP, real market data where the scenario needs it):
the wrong time by the broker's clock (T2), an early close (T3), crash days and unadjusted
splits in the data (T4), configured risk limits (T9), a second run for a busy session (C2),
malformed trading policy (C4), a non-USD account (X8), and order parameters outside the
broker's rules (X1). Each asserts the promise: no order reached the broker, and the run
says why."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import AssetCheckEvaluation, ExecuteInProcessResult
from pydantic import ValidationError

from tecl_pipeline.config.settings import ConfigError, Settings
from tecl_pipeline.defs.run_report import EXIT_NOT_CLEAN, EXIT_REFUSED, explain_result
from tecl_pipeline.state.locks import session_lock
from tecl_pipeline.trading.models import OrderRequest, OrderSide
from tecl_pipeline_tests.app.cli_helpers import tecl_process
from tecl_pipeline_tests.failure_modes.helpers import (
    materialized,
    read_alerts,
    run_session,
    stop_reasons,
)
from tecl_pipeline_tests.simulator.simulator_fixtures import hold_bil, market_order, trading_client

NY = ZoneInfo("America/New_York")
SESSION = date(2026, 11, 24)  # the simulator fixture's session (a Tuesday)
EARLY_CLOSE = date(2025, 11, 28)  # the day after Thanksgiving 2025: closes at 13:00
REAL_LAST_SESSION = date(2026, 7, 31)


def submissions(simulator) -> list[dict]:
    return simulator.simulator.state()["submissions"]


def demo_book_orders(state_dir: Path) -> list[dict]:
    """The embedded demo broker's orders (none if it never traded)."""
    book = state_dir / "demo-broker" / "account.json"
    return json.loads(book.read_text())["orders"] if book.exists() else []


def against(simulator, tmp_path: Path) -> Settings:
    """Demo-mode settings trading through the test's simulator instead of an embedded one."""
    return Settings(state_uri=(tmp_path / "state").as_uri(), broker_url=simulator.url)


def check(result: ExecuteInProcessResult, name: str) -> AssetCheckEvaluation:
    [found] = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return found


# -- T2: a run at the wrong time refuses to trade ------------------------------------------


@pytest.mark.parametrize(
    ("moment", "named"),
    [
        (datetime(2026, 11, 24, 10, 0, tzinfo=NY), "10:00"),  # the morning of the session
        (datetime(2026, 11, 24, 16, 30, tzinfo=NY), "16:30"),  # after the close
        (datetime(2026, 11, 25, 15, 45, tzinfo=NY), "2026-11-25"),  # the next session
    ],
    ids=["morning", "after-close", "next-day"],
)
def test_run_at_the_wrong_broker_time_refuses_before_any_order(simulator, tmp_path, moment, named):
    """T2: the broker's clock is not inside the session's window (New York time): the
    blocking pre-trade check fails naming the broker's time, and nothing is sent."""
    simulator.simulator.set_clock(moment)

    result = run_session(against(simulator, tmp_path), SESSION)

    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert submissions(simulator) == []
    ready = check(result, "pre_trade_ready")
    assert not ready.passed and ready.description is not None
    assert named in ready.description and "outside session 2026-11-24" in ready.description


# -- T3: an early close moves the run; a closed market refuses -------------------------------


def test_close_passing_while_the_sell_waits_sends_no_buy_and_ends_not_clean(simulator, tmp_path):
    """T3/P1: the run's BIL sell is held (delayed fill) and the broker's clock passes 16:00
    New York while the run waits for it: the TECL buy is never sent, the run says why, and
    the session ends not clean (exit 3), not as a crash."""
    hold_bil(simulator.url)
    simulator.simulator.set_fill_mode("delayed", delay_polls=1_000_000)
    done = threading.Event()

    def close_once_the_sell_is_out() -> None:
        while not done.is_set():
            if any(s["client_order_id"].startswith("tecl-") for s in submissions(simulator)):
                simulator.simulator.set_clock(datetime(2026, 11, 24, 16, 5, tzinfo=NY))
                return
            done.wait(0.05)

    mover = threading.Thread(target=close_once_the_sell_is_out)
    mover.start()
    try:
        result = run_session(against(simulator, tmp_path), SESSION)
    finally:
        done.set()
        mover.join()

    outcome = explain_result(result, SESSION)
    assert outcome.exit_code == EXIT_NOT_CLEAN, outcome
    sent = [s["client_order_id"] for s in submissions(simulator)]
    assert sent == ["manual-bil-1", "tecl-20261124-sell-BIL-1"]
    [why] = [line for line in outcome.attention if line.startswith("TECL not sent: ")]
    assert "broker clock 2026-11-24 16:05 EST is outside session 2026-11-24" in why


def test_early_close_refuses_at_the_regular_time_and_trades_at_1245(simulator, tmp_path):
    """T3: on the day after Thanksgiving (close 13:00) a run at the regular 15:45 finds the
    market closed and sends nothing, naming the window; at the moved decision time, 12:45
    New York, the same session trades."""
    settings = against(simulator, tmp_path)
    simulator.simulator.set_clock(datetime(2025, 11, 28, 15, 45, tzinfo=NY))

    late = run_session(settings, EARLY_CLOSE)

    assert not late.success and "executed_orders" not in materialized(late)
    assert submissions(simulator) == []
    reason = check(late, "pre_trade_ready").description
    assert reason is not None
    assert "12:30-13:00" in reason and "2025-11-28" in reason

    simulator.simulator.set_clock(datetime(2025, 11, 28, 12, 45, tzinfo=NY))
    on_time = run_session(settings, EARLY_CLOSE)

    assert on_time.success
    sent = on_time.asset_value("executed_orders").sent
    assert sent and {s["client_order_id"] for s in submissions(simulator)} == {
        o.client_order_id for o in sent
    }


# -- T4: gaps and crashes are data, an unexplained jump is not --------------------------------


@pytest.mark.parametrize(
    "session",
    [date(2025, 4, 3), date(2025, 4, 4), date(2025, 4, 9)],
    ids=["crash-day-1", "crash-day-2", "rally-day"],
)
def test_crash_and_rally_sessions_trade_without_a_false_data_alarm(
    run_daily, csv_dir, state_dir, real_closes, session
):
    """T4: the real April 2025 crash and rally days (TECL moving by a quarter or more in a
    day) pass both blocking data checks and trade: a big real move is not "stale" or
    "implausible"."""
    move = real_closes["TECL"].pct_change().loc[pd.Timestamp(session)]
    assert abs(move) > 0.15, f"TECL moved only {move:.1%} on {session}; not a gap day"

    result = run_daily(session, data_dir=csv_dir(session))

    assert result.success, stop_reasons(result)
    assert check(result, "market_data_fresh").passed
    assert check(result, "market_data_sane").passed
    assert result.asset_value("executed_orders").sent
    assert demo_book_orders(state_dir)


def test_unadjusted_split_in_the_data_blocks_orders_naming_symbol_and_date(
    run_daily, csv_dir, state_dir
):
    """T4/X2: TECL's closes halve three sessions before the end with no corporate action
    adjusted in: the blocking sanity check fails naming TECL and the day, nothing is sent,
    and the refusal reaches the alert file."""
    folder = csv_dir(REAL_LAST_SESSION)
    tecl = pd.read_csv(folder / "TECL.csv")
    tecl.loc[tecl.index[-3] :, "adj_close"] /= 2
    tecl.to_csv(folder / "TECL.csv", index=False)
    jump_day = tecl["date"].iloc[-3]

    result = run_daily(REAL_LAST_SESSION, data_dir=folder)

    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert demo_book_orders(state_dir) == []
    sane = check(result, "market_data_sane")
    assert not sane.passed and sane.description is not None
    assert "TECL" in sane.description and jump_day in sane.description
    [alert] = [a for a in read_alerts(state_dir.parent / "logs") if a["kind"] == "refused"]
    assert "TECL" in alert["detail"] and jump_day in alert["detail"]


# -- T9: configured risk limits are enforced before any order --------------------------------


@pytest.mark.parametrize(
    ("limit", "named"),
    [
        ({"kill_switch": True}, "kill switch"),
        ({"max_order_notional": "1000"}, "max_order_notional"),
        ({"max_position_weight": "0.5"}, "max_position_weight"),
        ({"max_daily_turnover": "0.5"}, "max_daily_turnover"),
    ],
    ids=["kill-switch", "order-notional", "position-weight", "daily-turnover"],
)
def test_configured_risk_limit_refuses_the_run_before_any_order(tmp_path, limit, named):
    """T9: each limit, set in the trading_policy resource's config (as in the launchpad),
    stops a fresh account's first rebalance before any order, naming the limit, and the
    refusal is alerted. (Every leaf of the strategy puts at least 75% in one symbol, and a
    first rebalance turns over about the whole equity.)"""
    state = tmp_path / "state"

    result = run_session(
        Settings(state_uri=state.as_uri()), SESSION, resources={"trading_policy": limit}
    )

    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert demo_book_orders(state) == []
    assert named in stop_reasons(result)
    [alert] = [a for a in read_alerts(tmp_path / "logs") if a["kind"] == "refused"]
    assert named in alert["detail"]


# -- C2: two runs for one session: one trades, the other stops without orders -----------------


def test_run_that_would_reverse_another_hosts_fill_of_the_session_refuses_with_exit_2(
    simulator, tmp_path
):
    """C2/X3: another host, deciding differently, bought BIL for this session (its order is
    at the broker, no journal shared); this run decides TECL, which would sell that BIL. It
    refuses before any order (exit 2), naming the other host's order."""
    market_order(trading_client(simulator.url), "BIL", 100, "tecl-20261124-buy-BIL-1")

    result = run_session(against(simulator, tmp_path), SESSION)

    outcome = explain_result(result, SESSION)
    assert outcome.exit_code == EXIT_REFUSED, outcome
    assert (
        "session 2026-11-24 already bought BIL (tecl-20261124-buy-BIL-1); "
        "this run's decision would sell it: not sending"
    ) in outcome.reason
    assert [s["client_order_id"] for s in submissions(simulator)] == ["tecl-20261124-buy-BIL-1"]


def test_run_for_a_session_another_run_is_trading_sends_no_orders(run_daily, state_dir):
    """C2: while another run holds the session (its lock), a run for the same session stops
    at once with the reason, sending nothing; once the other is done, a run trades."""
    with session_lock(state_dir / "locks", SESSION):
        blocked = run_daily(SESSION)

    assert not blocked.success
    assert "executed_orders" not in materialized(blocked)
    assert demo_book_orders(state_dir) == []
    assert "another run is trading session 2026-11-24" in stop_reasons(blocked)

    after = run_daily(SESSION)
    assert after.success and after.asset_value("executed_orders").sent


def _tecl_run(cwd: Path) -> subprocess.Popen[str]:
    return tecl_process(["run", "--session", SESSION.isoformat()], cwd)


def test_two_processes_started_together_for_one_session_trade_once(tmp_path):
    """C2: two `tecl run` processes for the same session, started at the same moment on one
    machine: exactly one sends orders; the other is refused (the session lock) or finds
    the target already reached; no client order id is used twice at the broker."""
    first, second = _tecl_run(tmp_path), _tecl_run(tmp_path)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    codes = [first.returncode, second.returncode]

    traded = [out for out, _ in outputs if "sent this run:" in out]
    assert len(traded) == 1, outputs
    assert sorted(codes) in ([0, 0], [0, 2]), outputs
    for (out, err), code in zip(outputs, codes, strict=True):
        if code == 2:
            assert "another run is trading session 2026-11-24" in err
        elif "sent this run:" not in out:
            assert "none needed" in out
    orders = demo_book_orders(tmp_path / ".tecl" / "demo" / "state")
    ids = [o["client_order_id"] for o in orders]
    assert ids and len(ids) == len(set(ids))


# -- C4: malformed trading policy fails before any order, naming the key ---------------------


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"max_order_notional": "lots"}, "max_order_notional"),
        ({"cash_reserve": "1.5"}, "cash_reserve"),
        ({"min_trade_notional": "-1"}, "min_trade_notional"),
    ],
)
def test_malformed_trading_policy_fails_before_any_order_naming_the_key(tmp_path, config, key):
    """C4: a policy value that does not parse or is out of range stops everything before the
    first order (the resource refuses to be built, so no run starts), and the error is one
    line naming the config key. The same value set in the launchpad fails that run before
    any step: defs/test_resources.py."""
    state = tmp_path / "state"

    with pytest.raises(ConfigError) as refused:
        run_session(
            Settings(state_uri=state.as_uri()), SESSION, resources={"trading_policy": config}
        )

    message = str(refused.value)
    assert message.startswith(f"{key}: ") and "\n" not in message
    assert demo_book_orders(state) == []


# -- X8: a non-USD account stops trading ---------------------------------------------------------


def test_non_usd_account_refuses_the_run_before_any_order(simulator, tmp_path):
    """X8: the broker reports the account in EUR: the run refuses before any order, names
    the currency, and alerts."""
    simulator.simulator.set_account(currency="EUR")

    result = run_session(against(simulator, tmp_path), SESSION)

    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert submissions(simulator) == []
    assert "EUR" in stop_reasons(result)
    [alert] = [a for a in read_alerts(tmp_path / "logs") if a["kind"] == "refused"]
    assert "EUR" in alert["detail"] and alert["session"] == SESSION.isoformat()


# -- X1: order parameters are validated before submit ------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_in_force": "gtc"}, "time_in_force"),
        ({"time_in_force": "ioc"}, "time_in_force"),
        ({"type": "limit"}, "type"),
        ({"qty": Decimal("0")}, "qty"),
        ({"qty": Decimal("-0.5")}, "qty"),
        ({"client_order_id": "x" * 129}, "client_order_id"),
    ],
)
def test_order_outside_the_brokers_rules_cannot_be_built_so_never_reaches_it(change, field):
    """X1: the only order the pipeline can express is a DAY market order with a positive
    quantity and a valid client order id (what Alpaca accepts for fractional shares): any
    other parameter is refused when the request is built, naming the field, so no such
    request can be sent. (A 422 the broker still returns is named by the adapter:
    tecl_pipeline_tests/adapters/alpaca/test_broker.py.)"""
    request = {
        "symbol": "TECL",
        "side": OrderSide.BUY,
        "qty": Decimal("0.5"),
        "client_order_id": "tecl-20261124-buy-TECL-1",
        **change,
    }

    with pytest.raises(ValidationError) as caught:
        OrderRequest(**request)

    assert field in str(caught.value)
