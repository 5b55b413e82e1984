"""How a run fails and what it leaves behind, injected into whole runs of daily_trading_job:
an unexpected exception in a step (C1), a log sink that cannot write (C5), and the run's
own log lines (D7). The broker is the simulator over HTTP (fault plans seeded, seed
printed: R2)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tecl_pipeline.config.settings import Settings
from tecl_pipeline_tests.failure_modes.helpers import (
    FAST_BROKER,
    materialized,
    run_failure_alert,
    run_session,
    stop_reasons,
    with_env_keys,
)
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_SESSION

SEED = 20261125
BUG = "injected bug: the strategy step divided by zero"


def demo_book_orders(state_dir: Path) -> list[dict]:
    book = state_dir / "demo-broker" / "account.json"
    return json.loads(book.read_text())["orders"] if book.exists() else []


def _raise_bug(*args: object, **kwargs: object) -> object:
    raise RuntimeError(BUG)


def step_errors_in_event_log(instance: DagsterInstance, run_id: str) -> str:
    """The step failures as stored in the instance's event log (what the UI shows)."""
    texts = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.is_step_failure and event.step_failure_data.error:
            texts.append(f"{event.step_key}: {event.step_failure_data.error.to_string()}")
    return "\n".join(texts)


# -- C1: an exception in a step fails the run, with its cause in the event log ---------------


def test_unexpected_exception_in_a_step_fails_the_run_with_its_cause_in_the_event_log(
    tmp_path, monkeypatch
):
    """C1: a bug (not a refusal) raised inside the signal step: the run fails, nothing
    downstream runs and no order is sent, and the run's stored event log holds the
    exception's type and message under the failed step."""
    monkeypatch.setattr("tecl_pipeline.defs.assets.evaluate_tecl_table", _raise_bug)
    state = tmp_path / "state"
    instance = DagsterInstance.ephemeral()

    result = run_session(Settings(state_uri=state.as_uri()), SIM_SESSION, instance=instance)

    assert not result.success
    assert materialized(result) == {"market_data", "indicators"}
    assert demo_book_orders(state) == []
    stored = step_errors_in_event_log(instance, result.run_id)
    assert stored.startswith("signal: ")
    assert "RuntimeError" in stored and BUG in stored


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("cause", ["bug in a step", "broker unreachable", "credentials refused"])
def test_run_failure_alert_names_the_cause(simulator, tmp_path, monkeypatch, cause):
    """C1/B2/B4/S7: the alert a failed run raises names what went wrong, not only which
    step failed: the bug's message, the broker call that got no answer, or the broker's
    refusal of the credentials (a security event a person must see as one)."""
    state = tmp_path / "state"
    if cause == "bug in a step":
        monkeypatch.setattr("tecl_pipeline.defs.assets.evaluate_tecl_table", _raise_bug)
        settings, expected = Settings(state_uri=state.as_uri()), BUG
    elif cause == "broker unreachable":
        nowhere = f"http://127.0.0.1:{_closed_port()}"
        settings = Settings(state_uri=state.as_uri(), broker_url=nowhere)
        expected = "no answer from the broker"
    else:
        monkeypatch.setenv("ALPACA_API_KEY", "PKOLDROTATEDAWAY01")
        monkeypatch.setenv("ALPACA_SECRET_KEY", "old-secret-value-rotated-away")
        settings = with_env_keys(Settings(state_uri=state.as_uri(), broker_url=simulator.url))
        expected = "still refused after refreshing"
    instance = DagsterInstance.ephemeral()

    result = run_session(
        settings,
        SIM_SESSION,
        resources={"broker": FAST_BROKER},
        instance=instance,
    )

    assert not result.success
    assert expected in stop_reasons(result)  # the cause is known to the run ...
    alert = run_failure_alert(result, settings.logs_dir)
    assert expected in alert["detail"]  # ... and must reach the alert


# -- C5: a failing log sink never fails the trade path --------------------------------------


def test_unwritable_log_directory_never_fails_the_trade(simulator, tmp_path, capfd):
    """C5: the log directory cannot be created (its parent is a file) while the broker
    makes the run log retry warnings in the middle of trading: the run still trades to the
    target, and what could not be written to the file goes to stderr instead."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    print(f"fault plan seed={SEED}")
    simulator.simulator.set_faults(
        seed=SEED, rules=[{"endpoint": "GET /v2/orders", "kind": "server_error", "times": 3}]
    )
    settings = Settings(
        state_uri=(tmp_path / "state").as_uri(),
        broker_url=simulator.url,
        log_dir=blocker / "logs",
    )

    result = run_session(settings, SIM_SESSION, resources={"broker": FAST_BROKER})

    assert result.success, stop_reasons(result)
    sent = result.asset_value("executed_orders").sent
    assert sent and all(o.status.value == "filled" for o in sent)
    assert result.asset_value("post_trade_positions").residuals == {}
    err = capfd.readouterr().err
    assert "sink tecl_pipeline.file failed" in err
    assert "broker call failed (attempt 1)" in err


# -- D7: the run's log lines are structured and carry the run id and session ------------------


def test_every_log_line_of_a_run_carries_its_run_id_and_session(simulator, tmp_path):
    """D7: during a run whose broker needs retries, every line of the JSON log file is a
    JSON object naming the run and the session it was written for."""
    print(f"fault plan seed={SEED}")
    simulator.simulator.set_faults(
        seed=SEED, rules=[{"endpoint": "GET /v2/account", "kind": "server_error", "times": 1}]
    )
    logs = tmp_path / "logs"
    settings = Settings(
        state_uri=(tmp_path / "state").as_uri(), broker_url=simulator.url, log_dir=logs
    )

    result = run_session(settings, SIM_SESSION, resources={"broker": FAST_BROKER})

    assert result.success
    lines = [json.loads(line) for line in (logs / "tecl_pipeline.jsonl").read_text().splitlines()]
    assert any(line["logger"] == "tecl_pipeline.adapters.alpaca.transport" for line in lines)
    for line in lines:
        assert (line["run_id"], line["session"]) == (result.run_id, SIM_SESSION.isoformat())
