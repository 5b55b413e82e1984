"""The running stack (`make stack`), as the tests of `make test-stack` reach it: the
webserver's GraphQL API, the broker simulator's controls, the instance's PostgreSQL and the
volumes under .stack/. Every test here is marked `stack`, which `make test` leaves out.

A stack that is not running fails these tests (it is never a skip): `make test-stack` is
only ever run after `make stack`.
"""

import dataclasses
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar, cast

import boto3
import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from deploy.stack.__main__ import STACK_DIR, default_env_file, local_extras
from deploy.stack.compose import LocalService, Plan, plan
from deploy.stack.local import LocalStack
from tecl_pipeline.adapters.journal_store import open_journal
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.state.journal.records import SessionRecord

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
LOCATION = "tecl_pipeline"
JOB = "daily_trading_job"
RUN_S = 300
REEXECUTE = """
mutation Reexecute($parentRunId: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: FROM_FAILURE}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
DONE = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


# Tests that leave the stack changed for every test after them, in the order they run after
# all others: sensor ticks stored ahead of the clock; the stack stopped.
RUN_LAST = [
    "test_the_daemon_alerts_a_session_whose_decision_time_passed_without_a_run",
    "test_stack_down_leaves_no_process_or_port_behind",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.stack)
    items.sort(key=lambda item: RUN_LAST.index(item.name) if item.name in RUN_LAST else -1)


T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | bool | None], timeout: float, what: str, *, every: float = 1.0
) -> T:
    """The stack acts in its own time: every test polls for it alike, and names what never came."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            # Truthy: a T, or the True of a predicate (whose caller wants no value).
            return cast("T", value)
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(every)


def _graphql(the_plan: Plan) -> DagsterGraphQLClient:
    return DagsterGraphQLClient("127.0.0.1", port_number=the_plan.service("webserver").ports[3000])


@dataclass
class Stack:
    plan: Plan
    local: LocalStack
    graphql: DagsterGraphQLClient
    webserver_url: str
    simulator_url: str
    instance: DagsterInstance

    def service(self, name: str) -> LocalService:
        return self.plan.service(name)

    @property
    def state_uri(self) -> str:
        """The journal's place, as the code server (where runs start) has it."""
        return self.service("codeserver").environment["TECL_STATE_URI"]

    @property
    def logs_dir(self) -> Path:
        return self.plan.stack_dir / "volumes" / "tecl-logs"

    # The broker simulator ------------------------------------------------------------

    def sim(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.simulator_url}/_sim/{path}",
            data=data,
            method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def open_session(self, session: date, *, reset: bool = True) -> None:
        """The simulator's clock at `session`'s decision time; with `reset`, a new account
        (100,000 in cash, nothing held), so the session has orders to send."""
        if reset:
            self.sim("reset", {})
        self.sim("clock", {"now": CALENDAR.decision_time(session).isoformat()})

    def submissions(self) -> list[dict[str, Any]]:
        return self.sim("state")["submissions"]

    # Runs ------------------------------------------------------------------------------

    def client(self) -> "Stack":
        """This stack with a GraphQL client of its own (one client per thread)."""
        return dataclasses.replace(self, graphql=_graphql(self.plan))

    def submit(self, session: date, **tags: str) -> str:
        return self.graphql.submit_job_execution(
            JOB,
            repository_location_name=LOCATION,
            repository_name="__repository__",
            tags={"dagster/partition": session.isoformat(), **tags},
        )

    def reexecute_from_failure(self, run_id: str) -> str:
        """The run's re-execution from its failed steps, launched through the webserver as
        the UI's "Re-execute from failure" does; the new run's id."""
        # The GraphQL client has no re-execution call: the mutation the UI sends.
        request = urllib.request.Request(
            f"{self.webserver_url}/graphql",
            data=json.dumps({"query": REEXECUTE, "variables": {"parentRunId": run_id}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert "errors" not in body, body
        answer = body["data"]["launchRunReexecution"]
        assert answer["__typename"] == "LaunchRunSuccess", answer
        return answer["run"]["runId"]

    def wait(self, run_id: str, timeout: float = RUN_S) -> DagsterRunStatus:
        def done() -> DagsterRunStatus | None:
            status = self.graphql.get_run_status(run_id)
            return status if status in DONE else None

        return wait_for(done, timeout, f"run {run_id} to end")

    def journal(self, session: date, *run_ids: str) -> list[SessionRecord]:
        """The session's journal records written by `run_ids`, in the order written, read
        where the stack keeps them (S3 or a volume)."""
        store = open_journal(
            f"{self.state_uri.rstrip('/')}/journal",
            spool_dir=self.plan.stack_dir / "test-spool",
            s3_client=self._s3_client(),
        )
        return [record for record in store.records(session) if record.run_id in run_ids]

    def _s3_client(self) -> object | None:
        if not self.state_uri.startswith("s3://"):
            return None
        env = self.service("codeserver").environment
        return boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        ).client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])

    def alerts(self) -> list[dict[str, Any]]:
        path = self.logs_dir / "alerts.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    env_file = default_env_file(STACK_DIR)
    the_plan = plan(env_file=env_file, stack_dir=STACK_DIR, venv=VENV)
    local = LocalStack(the_plan, venv=VENV, extras=local_extras(env_file))
    down = [state.name for state in local.status() if not state.healthy]
    if down:
        pytest.fail(f"the stack is not running ({', '.join(down)} down): run `make stack` first")
    daemon = the_plan.service("daemon")
    webserver_port = the_plan.service("webserver").ports[3000]
    (simulator,) = [extra for extra in local.extras if extra.name == "simulator"]
    # The instance as the daemon opens it: its DAGSTER_HOME and PostgreSQL settings.
    with pytest.MonkeyPatch.context() as patch:
        for key, value in daemon.environment.items():
            if key.startswith("DAGSTER_"):
                patch.setenv(key, value)
        with DagsterInstance.get() as instance:
            yield Stack(
                plan=the_plan,
                local=local,
                graphql=_graphql(the_plan),
                webserver_url=f"http://127.0.0.1:{webserver_port}",
                simulator_url=simulator.url,
                instance=instance,
            )


class Sessions:
    """Sessions of the simulator's demo data, one per test that trades, in order; each
    run of `make test-stack` on a fresh stack uses the same ones."""

    def __init__(self, first: date) -> None:
        self._next = first

    def take(self) -> date:
        session, self._next = self._next, CALENDAR.next_session(self._next)
        return session


@pytest.fixture(scope="session")
def sessions() -> Sessions:
    return Sessions(date(2026, 11, 2))


@pytest.fixture
def session(sessions: Sessions) -> date:
    return sessions.take()


def started_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's own process, from the engine event the launcher writes; None
    before the run started."""
    for entry in instance.all_logs(run_id):
        message = entry.message or ""
        if "Started process for run" in message and "pid: " in message:
            return int(message.split("pid: ")[1].split(")")[0])
    return None


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    pairs = (item.partition("=") for item in raw if "=" in item)
    return {key: value for key, _, value in pairs}
