"""Failures of what the pipeline depends on, injected into whole runs of daily_trading_job:
the broker stalled or in maintenance (B2, B8), refusing the credentials (B4, X6, S7), a
dependency that cannot be reached at all (A8), and Secrets Manager refusing access (S7, S4).

The broker is the simulator over HTTP with a fault plan (the seed is printed, R2); AWS is
moto in server mode on loopback. Each test asserts that no order reached the broker, that
the run says which dependency failed, and where the promise says so, that an alert names it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tecl_pipeline.config.settings import Mode, Settings
from tecl_pipeline_tests.failure_modes.helpers import (
    FAST_BROKER,
    materialized,
    read_alerts,
    run_failure_alert,
    run_session,
    stop_reasons,
    with_env_keys,
)
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_KEY, SIM_SECRET, SIM_SESSION

SEED = 20261124


def closed_port() -> int:
    """A loopback port that was just free: nothing listens there, connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def faults(simulator, *rules: dict, seed: int = SEED) -> None:
    print(f"fault plan seed={seed}")
    simulator.simulator.set_faults(seed=seed, rules=list(rules))


def submissions(simulator) -> list[dict]:
    return simulator.simulator.state()["submissions"]


def demo_against(simulator, tmp_path: Path) -> Settings:
    return Settings(state_uri=(tmp_path / "state").as_uri(), broker_url=simulator.url)


# -- B2: outage before trading: no orders, alert; the next attempt trades, once --------------


def test_broker_stalling_before_trading_sends_no_orders_alerts_and_the_rerun_trades_once(
    simulator, tmp_path
):
    """B2: every broker answer stalls past the client's timeout: each call ends at the
    timeout (the run does not hang), the run fails before any order with the timed-out
    call in its event log, and the run-failure alert is delivered for the session and the
    failed step. When the broker answers again, the next attempt for the session trades,
    each order once. (That the alert also names the cause: test_run_failures.py.)"""
    faults(simulator, {"endpoint": "*", "kind": "timeout", "delay": 3.0})
    settings = demo_against(simulator, tmp_path)
    fast = {"broker": {**FAST_BROKER, "timeout_seconds": 0.3}}
    instance = DagsterInstance.ephemeral()

    down = run_session(settings, SIM_SESSION, resources=fast, instance=instance)

    assert not down.success
    assert "executed_orders" not in materialized(down)
    assert submissions(simulator) == []
    assert "no answer from the broker" in stop_reasons(down)
    assert "timed out" in stop_reasons(down)
    alert = run_failure_alert(down, settings.logs_dir)
    assert alert["session"] == SIM_SESSION.isoformat() and alert["run_id"] == down.run_id
    assert "target_allocation" in alert["detail"]

    simulator.simulator.clear_faults()
    again = run_session(settings, SIM_SESSION, resources=fast)

    assert again.success
    sent = again.asset_value("executed_orders").sent
    ids = [s["client_order_id"] for s in submissions(simulator)]
    assert sent and ids == [o.client_order_id for o in sent] and len(ids) == len(set(ids))


# -- B8: maintenance: no orders, clear reason, retried on the next attempt --------------------


def test_broker_maintenance_stops_the_run_naming_it_and_the_next_attempt_trades(
    simulator, tmp_path
):
    """B8: the broker answers 503 maintenance to everything: after the adapter's bounded
    retries the run stops before any order with the broker's reason; the operator's (or
    the next tick's) run after the window trades the session."""
    faults(simulator, {"endpoint": "*", "kind": "maintenance", "retry_after": 0})
    settings = demo_against(simulator, tmp_path)

    down = run_session(settings, SIM_SESSION, resources={"broker": FAST_BROKER})

    assert not down.success
    assert "executed_orders" not in materialized(down)
    assert submissions(simulator) == []
    reasons = stop_reasons(down)
    assert "503" in reasons and "maintenance" in reasons
    assert simulator.simulator.state()["faults_injected"]["maintenance"] >= 2  # it retried

    simulator.simulator.clear_faults()
    again = run_session(settings, SIM_SESSION, resources={"broker": FAST_BROKER})

    assert again.success and again.asset_value("executed_orders").sent
    assert all(s["http_status"] == 200 for s in submissions(simulator))


# -- B4, X6, S7: refused credentials: refresh once, retry once, then stop and alert -------------


def test_refused_broker_credentials_stop_the_run_after_one_refresh_and_alert(
    simulator, tmp_path, monkeypatch
):
    """B4/X6/S7: the broker refuses the configured key pair (a rotated key, the old one
    still configured): the adapter refreshes the credentials once and retries once, then
    the run stops before any order with the refusal in its event log; the run-failure
    alert is delivered for the session, and no secret value appears in it. Once the new
    pair is configured, the session trades. (That the alert also names the cause:
    test_run_failures.py.)"""
    monkeypatch.setenv("ALPACA_API_KEY", "PKOLDROTATEDAWAY01")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "old-secret-value-rotated-away")
    settings = demo_against(simulator, tmp_path)
    instance = DagsterInstance.ephemeral()

    result = run_session(
        with_env_keys(settings),
        SIM_SESSION,
        resources={"broker": FAST_BROKER},
        instance=instance,
    )

    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert submissions(simulator) == []
    requests = simulator.simulator.state()["requests"]
    assert requests == {"GET /v2/account": 2}, "one call, one refresh, one retry, then stop"
    assert "still refused after refreshing" in stop_reasons(result)
    alert = run_failure_alert(result, settings.logs_dir)
    assert alert["session"] == SIM_SESSION.isoformat() and alert["run_id"] == result.run_id
    assert "old-secret-value-rotated-away" not in json.dumps(alert)

    # The rotated pair, once configured, trades: the stop was the credentials, nothing else.
    monkeypatch.setenv("ALPACA_API_KEY", SIM_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SIM_SECRET)
    fixed = run_session(
        with_env_keys(settings),
        SIM_SESSION,
        resources={"broker": FAST_BROKER},
    )
    assert fixed.success and submissions(simulator)


# -- A8: every dependency unreachable: stop before trading, naming it --------------------------


def _paper(simulator, tmp_path: Path, monkeypatch, **changes) -> Settings:
    monkeypatch.setenv("ALPACA_API_KEY", SIM_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SIM_SECRET)
    values = {
        "mode": Mode.PAPER,
        "state_uri": (tmp_path / "state").as_uri(),
        "broker_url": simulator.url,
        "data_url": simulator.url,
        "log_dir": tmp_path / "logs",
        **changes,
    }
    # The keys, the secret's region and its endpoint as the deployment's environment says.
    return with_env_keys(Settings(**values))


@pytest.mark.parametrize("dependency", ["broker", "market data", "journal (S3)", "secrets"])
def test_unreachable_dependency_stops_the_run_before_trading_naming_it(
    simulator, tmp_path, monkeypatch, aws_sandbox, dependency
):
    """A8: one dependency at an address where nothing listens (a wrong VPC route or
    security group looks the same from here), the others healthy: the run stops before any
    order and says which dependency failed and where."""
    port = closed_port()
    nowhere = f"http://127.0.0.1:{port}"
    if dependency == "broker":
        settings = _paper(simulator, tmp_path, monkeypatch, broker_url=nowhere)
        named = (f"127.0.0.1:{port} did not answer", "no answer from the broker")
    elif dependency == "market data":
        settings = _paper(simulator, tmp_path, monkeypatch, data_url=nowhere)
        named = (f"127.0.0.1:{port} did not answer", "/v2/stocks/bars")
    elif dependency == "journal (S3)":
        monkeypatch.setenv("AWS_ENDPOINT_URL", nowhere)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", nowhere)
        settings = _paper(
            simulator, tmp_path, monkeypatch, state_uri="s3://tecl-state/paper", local_dir=tmp_path
        )
        named = (f"127.0.0.1:{port}", "unreachable")
    else:
        monkeypatch.setenv("TECL_SECRETS_ENDPOINT_URL", nowhere)
        settings = _paper(simulator, tmp_path, monkeypatch, secret_id="tecl/alpaca")
        named = ("Secrets Manager is unavailable", "tecl/alpaca", "EndpointConnectionError")

    result = run_session(settings, SIM_SESSION, resources={"broker": FAST_BROKER})

    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert submissions(simulator) == []
    reasons = stop_reasons(result)
    for part in named:
        assert part in reasons, f"{dependency}: {part!r} not in\n{reasons}"


# -- S7, S4: a secret-access failure stops trading and is alerted ------------------------------


def test_secret_access_failure_refuses_before_any_order_and_alerts(
    simulator, tmp_path, monkeypatch, aws_sandbox
):
    """S7/S4: the configured secret does not exist in Secrets Manager: the run refuses
    before any order, and the alert file receives the refusal naming the secret and AWS's
    error code (not found is a definite answer: stop and say so)."""
    secret_id = f"tecl/alpaca-missing-{tmp_path.name}"
    settings = _paper(simulator, tmp_path, monkeypatch, secret_id=secret_id)

    result = run_session(settings, SIM_SESSION, resources={"broker": FAST_BROKER})

    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert submissions(simulator) == []
    [refusal] = [a for a in read_alerts(tmp_path / "logs") if a["kind"] == "refused"]
    assert secret_id in refusal["detail"]
    assert "ResourceNotFoundException" in refusal["detail"]
    assert refusal["session"] == SIM_SESSION.isoformat()
