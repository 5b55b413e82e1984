"""C2 across hosts: two `tecl run` processes for one session that share the broker and the
journal but nothing local (each its own `TECL_LOCAL_DIR` and `DAGSTER_HOME`, so no session
lock stands between them). The first is caught by the simulator's latency fault at one point
of its work and held there (SIGSTOP) while the second runs the whole session; then it goes
on with what it had read before. No leg may fill twice and the account ends at the target."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tecl_pipeline.simulator import SimulatorServer
from tecl_pipeline_tests.app.cli_helpers import tecl_process
from tecl_pipeline_tests.simulator.simulator_fixtures import set_sim_faults, sim_requests

SESSION = date(2026, 11, 24)  # the simulator fixture's session; the demo decision is all TECL
SEED = 1124


@dataclass(frozen=True)
class Point:
    endpoint: str
    after: int  # requests to that endpoint before the held one
    fill_mode: str = "immediate"


POINTS = {
    # target_allocation looks TECL up once; the second lookup is execute's own plan, made
    # from positions already read.
    "asset lookup": Point("GET /v2/assets/{symbol}", after=1),
    "order POST": Point("POST /v2/orders", after=0),
    "fill wait": Point("GET /v2/orders/{id}", after=0, fill_mode="delayed"),
}


def _tecl_run(host: Path, url: str, state_uri: str) -> subprocess.Popen[str]:
    host.mkdir(parents=True, exist_ok=True)
    return tecl_process(
        ["run", "--session", SESSION.isoformat()],
        host,
        TECL_BROKER_URL=url,
        TECL_STATE_URI=state_uri,
        TECL_LOCAL_DIR=str(host / "local"),
        TECL_LOG_DIR=str(host / "logs"),
        DAGSTER_HOME=str(host / "dagster"),
    )


def _wait_for_request(url: str, endpoint: str, count: int, run: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while sim_requests(url, endpoint) < count:
        assert run.poll() is None, f"the first run ended before {endpoint}: {run.communicate()}"
        assert time.monotonic() < deadline, f"the first run never reached {endpoint}"
        time.sleep(0.02)


@pytest.mark.parametrize("point", list(POINTS))
def test_runs_on_two_hosts_fill_each_leg_once(tmp_path, simulator: SimulatorServer, point):
    """The second run starts while the first is slowed at `point` and trades the whole
    session; the first then carries on: one order per leg, filled once, whichever run sent
    it; the account ends at the target; a run that sent nothing says why."""
    where = POINTS[point]
    url = simulator.url
    state_uri = (tmp_path / "state").as_uri()
    simulator.simulator.set_fill_mode(where.fill_mode, delay_polls=2)
    set_sim_faults(
        url,
        {
            "endpoint": where.endpoint,
            "kind": "latency",
            "delay": 2.0,
            "after": where.after,
            "times": 1,
        },
        seed=SEED,
    )

    first = _tecl_run(tmp_path / "host-a", url, state_uri)
    try:
        _wait_for_request(url, where.endpoint, where.after + 1, first)
        first.send_signal(signal.SIGSTOP)  # held at `point` for as long as the other needs
        second = _tecl_run(tmp_path / "host-b", url, state_uri)
        second_out, second_err = second.communicate(timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    first_out, first_err = first.communicate(timeout=300)
    outputs = {"first": (first_out, first_err), "second": (second_out, second_err)}

    assert second.returncode == 0, outputs
    assert first.returncode == 0, outputs
    traded = [name for name, (out, _) in outputs.items() if "sent this run:" in out]
    assert len(traded) == 1, outputs
    for name, (out, _) in outputs.items():
        if name not in traded:
            # Held back by the other run's order, it says so; never "at target" then.
            held_back = "another run" in out
            assert ("none sent this run" if held_back else "none needed") in out, outputs
    if point == "asset lookup":
        # The first run's plan predates the second run's fill: it must say why it held back.
        assert traded == ["second"]
        assert "tecl-20261124-buy-TECL-1" in first_out and "another run" in first_out, first_out

    orders = simulator.simulator.orders_with_prefix("tecl-20261124-")
    assert [(o["client_order_id"], o["status"]) for o in orders] == [
        ("tecl-20261124-buy-TECL-1", "filled")
    ], orders
    state = simulator.simulator.state()
    assert set(state["positions"]) == {"TECL"}
    assert Decimal(state["positions"]["TECL"]["qty"]) == Decimal(orders[0]["filled_qty"])
    equity = Decimal(state["cash"]) + Decimal(orders[0]["filled_qty"]) * Decimal(
        orders[0]["filled_avg_price"]
    )
    # At the target: fully invested but for the policy's cash reserve (0.5%).
    assert 0 <= Decimal(state["cash"]) <= equity * Decimal("0.006"), state["cash"]
