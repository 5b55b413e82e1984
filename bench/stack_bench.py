"""The benchmarks on the stack: the compose services as `make stack` runs them (PostgreSQL
instance, gRPC code server, webserver, daemon), started for this in a scratch directory,
the same session and real data as the in-process benchmarks, runs submitted through the
webserver's GraphQL API as the UI and the schedule submit them.

It needs the stack's ports free: with `make stack` running, `make stack-down` first.
"""

import json
import os
import secrets
import shutil
import socket
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient
from harness import Check, Result

from deploy.stack.__main__ import SIMULATOR_PORT, local_extras
from deploy.stack.compose import plan
from deploy.stack.local import LocalStack, stop, write_private
from tecl_pipeline.defs.history import (
    HISTORY_DB,
    HISTORY_JOB,
    PARTITION_RANGE_END_TAG,
    PARTITION_RANGE_START_TAG,
    history_partition_keys,
)
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.simulator.engine import DEMO_API_KEY, DEMO_API_SECRET

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
JOB = "daily_trading_job"
LOCATION = "tecl_pipeline"
STACK_DAILY_RUNS = 5
STACK_BACKFILL_RUNS = 3
POLL_S = 0.1
RUN_TIMEOUT_S = 300


class StackBenchFailed(RuntimeError):
    """The stack could not be measured: a run failed, or the stack is not free to start."""


@dataclass
class BenchStack:
    local: LocalStack
    graphql: DagsterGraphQLClient
    simulator: str
    instance: DagsterInstance

    def sim(self, path: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.simulator}/_sim/{path}",
            data=None if payload is None else json.dumps(payload).encode(),
            method="GET" if payload is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def submit(self, job: str, tags: Mapping[str, str]) -> str:
        return self.graphql.submit_job_execution(
            job,
            repository_location_name=LOCATION,
            repository_name="__repository__",
            tags=dict(tags),
        )

    def wait(self, run_id: str) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            status = self.graphql.get_run_status(run_id)
            if status == DagsterRunStatus.SUCCESS:
                return
            if status in {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}:
                raise StackBenchFailed(f"run {run_id} ended {status.value}")
            if time.monotonic() > deadline:
                raise StackBenchFailed(f"run {run_id} still {status.value} after {RUN_TIMEOUT_S}s")
            time.sleep(POLL_S)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_stack(root: Path, data: Path) -> Iterator[BenchStack]:
    """The stack in `root`: paper mode against the broker simulator on the real closes,
    the journal and the history table on the stack's volumes."""
    env_file = root / ".env"
    write_private(
        env_file,
        f"DAGSTER_PG_PASSWORD={secrets.token_hex(16)}\n"
        "TECL_MODE=paper\n"
        f"TECL_BROKER_URL=http://127.0.0.1:{SIMULATOR_PORT}\n"
        f"TECL_DATA_URL=http://127.0.0.1:{SIMULATOR_PORT}\n"
        f"TECL_DATA_DIR={data}\n"
        f"ALPACA_API_KEY={DEMO_API_KEY}\n"
        f"ALPACA_SECRET_KEY={DEMO_API_SECRET}\n",
    )
    the_plan = plan(env_file=env_file, stack_dir=root / "stack", venv=VENV)
    taken = [p for s in the_plan.services for p in s.ports.values() if _listening(p)]
    if taken or _listening(SIMULATOR_PORT):
        raise StackBenchFailed(f"ports in use ({taken}): is `make stack` running? stop it first")
    local = LocalStack(the_plan, venv=VENV, extras=local_extras(env_file))
    daemon = the_plan.service("daemon").environment
    saved = {key: os.environ.get(key) for key in daemon if key.startswith("DAGSTER_")}
    try:
        local.up()
        os.environ.update({k: v for k, v in daemon.items() if k.startswith("DAGSTER_")})
        port = the_plan.service("webserver").ports[3000]
        with DagsterInstance.get() as instance:
            yield BenchStack(
                local=local,
                graphql=DagsterGraphQLClient("127.0.0.1", port_number=port),
                simulator=f"http://127.0.0.1:{SIMULATOR_PORT}",
                instance=instance,
            )
    finally:
        stop(root / "stack")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _last_check_at(instance: DagsterInstance, run_id: str) -> float:
    records = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    if not records:
        raise StackBenchFailed(f"run {run_id} evaluated no check")
    return max(record.timestamp for record in records)


def _daily_runs(stack: BenchStack, session: date) -> tuple[list[float], list[float]]:
    to_first_order: list[float] = []
    to_last_check: list[float] = []
    for _ in range(STACK_DAILY_RUNS):
        # A new account each time, so that every run trades.
        stack.sim("reset", {})
        stack.sim("clock", {"now": CALENDAR.decision_time(session).isoformat()})
        submitted = time.time()
        run_id = stack.submit(JOB, {"dagster/partition": session.isoformat()})
        while not stack.sim("state")["submissions"]:
            if time.time() - submitted > RUN_TIMEOUT_S:
                raise StackBenchFailed(f"run {run_id} sent no order")
            time.sleep(POLL_S)
        to_first_order.append(time.time() - submitted)
        stack.wait(run_id)
        to_last_check.append(_last_check_at(stack.instance, run_id) - submitted)
    return to_first_order, to_last_check


def _backfills(stack: BenchStack, start: date, end: date, local_dir: Path) -> list[float]:
    """The whole history in one run, as `tecl backfill` and the UI's single-run backfill
    make it, submitted to the stack; each from an empty history table."""
    keys = history_partition_keys(start, end, stack.instance)
    tags = {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}
    runs: list[float] = []
    for _ in range(STACK_BACKFILL_RUNS):
        (local_dir / HISTORY_DB).unlink(missing_ok=True)
        submitted = time.time()
        run_id = stack.submit(HISTORY_JOB, tags)
        stack.wait(run_id)
        finished = stack.instance.get_run_record_by_id(run_id)
        if finished is None or finished.end_time is None:
            raise StackBenchFailed(f"run {run_id} has no end time")
        runs.append(finished.end_time - submitted)
    return runs


def bench_stack(data: Path, session: date, start: date, end: date) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="tecl-bench-stack-") as name:
        root = Path(name)
        # PostgreSQL runs as its own user when this runs as root: it must reach its data.
        root.chmod(0o755)
        try:
            with running_stack(root, data) as stack:
                first_order, daily = _daily_runs(stack, session)
                local_dir = root / "stack" / "volumes" / "tecl-local"
                backfill = _backfills(stack, start, end, local_dir)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    sessions = len(CALENDAR.sessions(start, end))
    where = "on the stack (PostgreSQL instance, code server, daemon), submitted through GraphQL"
    return [
        Result(
            "stack_submit_to_first_order",
            tuple(first_order),
            f"daily_trading_job for {session} {where}: submission to the first order the "
            "simulator accepted",
            checks=(Check("median", _median(first_order), 10.0, "s"),),
        ),
        Result(
            "stack_daily_run",
            tuple(daily),
            "the same runs: submission to the last asset check (post_trade_reconciled)",
            checks=(Check("median", _median(daily), 20.0, "s"),),
        ),
        Result(
            "stack_history_backfill",
            tuple(backfill),
            f"every signal {start}..{end} ({sessions} sessions) in one run {where}: "
            "submission to the run's end, from an empty history table",
            checks=(Check("median", _median(backfill), 15.0, "s"),),
            extra={"sessions": sessions},
        ),
    ]


def _median(values: list[float]) -> float:
    return statistics.median(values)
