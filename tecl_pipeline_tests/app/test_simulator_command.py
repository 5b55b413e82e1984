"""`tecl simulator` on its own, `tecl run` pointed at it (through a proxy, then directly):
the same session run twice sends its orders once (X3)."""

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tecl_pipeline_tests.app.cli_helpers import tecl, user_environ
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    CLI_SESSION,
    hold_bil,
    sim_admin,
    sim_state,
    trading_client,
)

SESSION = CLI_SESSION


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextmanager
def tcp_proxy(target_port: int) -> Iterator[int]:
    """A plain TCP forwarder on loopback, as a corporate proxy or sidecar would sit."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with suppress(OSError):
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", target_port))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def tecl_run(cwd: Path, url: str) -> subprocess.CompletedProcess[str]:
    return tecl(
        ["run", "--session", SESSION], cwd, TECL_BROKER_URL=url, DAGSTER_HOME=str(cwd / ".dagster")
    )


def test_separate_simulator_same_session_twice_orders_once(tmp_path, simulator_process):
    port = int(simulator_process.rsplit(":", 1)[1])
    with tcp_proxy(port) as proxy_port:
        first = tecl_run(tmp_path, f"http://127.0.0.1:{proxy_port}")
    second = tecl_run(tmp_path, simulator_process)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "sent this run:" in first.stdout
    assert "none needed" in second.stdout
    state = sim_state(simulator_process)
    ids = [s["client_order_id"] for s in state["submissions"]]
    assert ids and len(ids) == len(set(ids))
    assert all(s["http_status"] == 200 for s in state["submissions"])
    assert {o["status"] for o in state["orders"]} == {"filled"}


def _run_submissions(url: str) -> list[dict]:
    return [s for s in sim_state(url)["submissions"] if s["client_order_id"].startswith("tecl-")]


def test_run_killed_between_sells_and_buys_is_completed_by_the_rerun(
    tmp_path, simulator_process, seed
):
    """A2: a `tecl run` process is killed (SIGKILL) after its sell reached the broker while
    its first buy is still in flight; the re-run for the session ends at the target, with
    no order sent twice."""
    url = simulator_process
    hold_bil(url)
    # The run's second order POST (its first buy) hangs long enough to be killed mid-way.
    sim_admin(
        url,
        "/_sim/faults",
        {
            "seed": seed,
            "rules": [
                {
                    "endpoint": "POST /v2/orders",
                    "kind": "latency",
                    "delay": 4.0,
                    "after": 2,
                    "times": 1,
                }
            ],
        },
    )
    env = user_environ(TECL_BROKER_URL=url, DAGSTER_HOME=str(tmp_path / ".dagster"))
    doomed = subprocess.Popen(
        [sys.executable, "-m", "tecl_pipeline.app.cli", "run", "--session", SESSION],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while sim_state(url)["requests"].get("POST /v2/orders", 0) < 3:
        assert doomed.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    doomed.kill()
    doomed.wait(timeout=30)
    [sell] = [s for s in _run_submissions(url) if s["side"] == "sell"]
    assert sell["symbol"] == "BIL"
    time.sleep(4.5)  # the in-flight buy lands (or not) after the kill, as at a real broker

    rerun = tecl_run(tmp_path, url)

    assert rerun.returncode == 0, rerun.stderr
    ids = [s["client_order_id"] for s in _run_submissions(url)]
    assert len(ids) == len(set(ids)), ids
    positions = {p.symbol: p for p in trading_client(url).get_all_positions()}
    assert set(positions) == {"TECL"}
    buys = [
        o
        for o in sim_state(url)["orders"]
        if o["client_order_id"].startswith("tecl-")
        and o["side"] == "buy"
        and o["status"] == "filled"
    ]
    assert len(buys) == 1, "exactly one TECL buy, whoever sent it"
