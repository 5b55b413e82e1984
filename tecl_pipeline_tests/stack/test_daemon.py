"""The schedule and the missed-session sensor live in the stack's real daemon.

The daemon decides when a tick is due by its own clock, so these tests run it under
Debian's `faketime` (`make test-stack` installs it): a minute before a session's decision
time for the schedule, a few minutes ahead for the sensor's next evaluation. The stack's
own daemon is put back after each test.
"""

import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta

import pytest
from dagster import DagsterRunStatus, RunsFilter

from deploy.stack.local import StackError
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.schedules import daily_trading_schedule
from tecl_pipeline.defs.sensors.missed_session import MissedSessionCursor
from tecl_pipeline_tests.stack.conftest import REPO, VENV, Stack, wait_for

WORKSPACE = ["-w", "deploy/docker/workspace.yaml"]
SCHEDULE = daily_trading_schedule.name
# A session of the simulator's data that no other test of the stack trades.
SCHEDULED_SESSION = date(2026, 12, 3)


# Debian's libfaketime (0.9.10) and Python's clocks: with the monotonic clock faked too, a
# thread's timed wait (its deadline on the faked clock, the kernel's on the real one) never
# ends, and the daemon's loops with it; so the monotonic clock stays real. Then time.sleep,
# an absolute wait on that clock which libfaketime rewrites, fails with EINVAL: SLEEP_SHIM
# (a sitecustomize on the faked process's path) sleeps as a timed wait instead, which
# libfaketime leaves alone.
FAKETIME_ENV = {"TZ": "UTC", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
SLEEP_SHIM = """
import threading
import time


def _sleep(seconds):
    threading.Event().wait(seconds)


time.sleep = _sleep
"""


@pytest.fixture(scope="module")
def faketime_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    shim = tmp_path_factory.mktemp("faketime_shim")
    (shim / "sitecustomize.py").write_text(SLEEP_SHIM)
    return {**FAKETIME_ENV, "PYTHONPATH": str(shim)}


def faketime(moment: datetime) -> list[str]:
    """`faketime` starting the wall clock at `moment` and letting it run (with FAKETIME_ENV)."""
    return ["faketime", "-f", f"@{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"]


def dagster_cli(
    stack: Stack, *args: str, at: datetime | None = None, faked: dict[str, str] | None = None
) -> str:
    """`dagster ...` as the daemon's container would run it, at `at` if given (with the
    `faked` environment)."""
    daemon = stack.service("daemon")
    env = {**stack.local.environment_for(daemon.environment), **(faked or {})}
    command = [*(faketime(at) if at else []), str(VENV / "bin" / "dagster"), *args, *WORKSPACE]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def daemon_at(stack: Stack, faketime_env: dict[str, str]) -> Iterator:
    """Replaces the stack's daemon by one whose clock starts at the given moment; the
    stack's own is back afterwards."""

    def start(moment: datetime) -> None:
        stack.local.kill("daemon")
        stack.local.start(
            stack.service("daemon"), wrapper=faketime(moment), environment=faketime_env
        )
        # A daemon that dies at once under the faked clock would fail the test only later,
        # by a timeout that says nothing.
        time.sleep(5)
        assert stack.local.pid("daemon") is not None, "the daemon under faketime exited"

    try:
        yield start
    finally:
        with suppress(StackError):
            stack.local.kill("daemon")
        stack.local.up()


def test_the_daemon_ticks_the_schedule_at_the_decision_time_and_runs_the_session_once(
    stack: Stack, daemon_at, faketime_env
):
    decision = CALENDAR.decision_time(SCHEDULED_SESSION)
    assert SCHEDULED_SESSION not in traded_sessions(stack), (
        "the stack traded this session before: run the stack's tests on a new stack "
        "(make stack-down; rm -rf .stack; make stack)"
    )
    stack.open_session(SCHEDULED_SESSION)
    # Turned on a minute and a half before the decision time, the daemon started a minute
    # before it: the 15:45 tick is the first it may evaluate.
    dagster_cli(
        stack,
        "schedule",
        "start",
        SCHEDULE,
        at=decision - timedelta(seconds=90),
        faked=faketime_env,
    )
    try:
        daemon_at(decision - timedelta(minutes=1))
        partition = RunsFilter(tags={"dagster/partition": SCHEDULED_SESSION.isoformat()})
        run = wait_for(
            lambda: stack.instance.get_runs(partition),
            300,
            f"a run the daemon queued for {SCHEDULED_SESSION}",
            every=2,
        )[0]
        assert run.tags["dagster/schedule_name"] == SCHEDULE
        assert run.tags["dagster/run_key"] == SCHEDULED_SESSION.isoformat()
        assert stack.wait(run.run_id) == DagsterRunStatus.SUCCESS
        # Later ticks of the schedule: the daemon's loop goes on (two more evaluations at
        # least), and no second run for the session.
        time.sleep(70)
        runs = stack.instance.get_runs(partition)
        assert [r.run_id for r in runs] == [run.run_id]
    finally:
        dagster_cli(stack, "schedule", "stop", SCHEDULE)
    (record,) = stack.journal(SCHEDULED_SESSION, run.run_id)
    assert record.orders and all(o.filled_qty == o.qty for o in record.orders)


def test_the_daemon_alerts_a_session_whose_decision_time_passed_without_a_run(
    stack: Stack, daemon_at
):
    now = datetime.now(EXCHANGE_TZ)
    # The last session whose decision time and grace have passed: no test trades it.
    missed = CALENDAR.session_on_or_before(now.date())
    if CALENDAR.decision_time(missed) + timedelta(minutes=30) > now:
        missed = CALENDAR.previous_session(missed)
    assert missed not in traded_sessions(stack)
    # Watching since just before its decision time, as if the sensor had been on then.
    since = CALENDAR.decision_time(missed) - timedelta(minutes=1)
    cursor = MissedSessionCursor(since=since, alerted=frozenset()).dumps()
    dagster_cli(stack, "sensor", "cursor", "missed_session_sensor", "--set", cursor)
    # The daemon evaluates a sensor every 5 minutes: one whose clock is 6 minutes ahead
    # evaluates it at once. Its ticks are then stored 6 minutes ahead, and the stack's own
    # daemon evaluates no sensor for as long: this test runs last but one (conftest).
    daemon_at(datetime.now(UTC) + timedelta(minutes=6))

    wait_for(
        lambda: any(a["kind"] == "missed_session" for a in stack.alerts()),
        180,
        "a missed_session alert from the daemon",
        every=2,
    )
    alerts = [a for a in stack.alerts() if a["kind"] == "missed_session"]
    assert [a["session"] for a in alerts] == [missed.isoformat()]
    assert alerts[0]["severity"] == "critical"


def traded_sessions(stack: Stack) -> set[date]:
    runs = stack.instance.get_runs(RunsFilter(job_name="daily_trading_job"))
    return {date.fromisoformat(r.tags["dagster/partition"]) for r in runs}
