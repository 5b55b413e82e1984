"""C1/X9: a failed daily run alerts, once, whatever started it: `tecl run` (in process, no
daemon), the launchpad (a launched run: a process of its own), the schedule (the run its
tick requests). Each run here executes for real and the alert is read back from
the alert file the deployment configures (TECL_ALERT_FILE); no sensor is evaluated."""

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from dagster import (
    DagsterEvent,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    JobDefinition,
    ReexecutionOptions,
    build_schedule_context,
    execute_job,
    instance_for_test,
    reconstructable,
)

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.failure_alerts import RUN_ALERTED_TAG
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.run_tags import MODE_TAG, OUTCOME_TAG, OutcomeLabel
from tecl_pipeline.defs.schedules import daily_trading_schedule

if TYPE_CHECKING:
    from dagster._core.instance.ref import InstanceRef

DEMO_SESSION = date(2026, 11, 24)
REAL_LAST_SESSION = date(2026, 7, 31)


def daily_trading_job_from_env() -> JobDefinition:
    """The job as a code location loads it from the environment; module level so that a
    launched run's process can rebuild it (`reconstructable`)."""
    settings = Settings.from_env(os.environ, cwd=Path.cwd())
    return build_definitions(settings).resolve_job_def("daily_trading_job")


def _execute(instance_ref: "InstanceRef", tags: dict[str, str], parent: str | None) -> str:
    with DagsterInstance.from_ref(instance_ref) as instance:
        again = None if parent is None else ReexecutionOptions.from_failure(parent, instance)
        return execute_job(
            reconstructable(daily_trading_job_from_env),
            instance=instance,
            tags=tags,
            reexecution_options=again,
        ).run_id


def launched_run(
    instance: DagsterInstance, tags: dict[str, str], *, reexecuting: str | None = None
) -> tuple[DagsterRun, list[DagsterEvent]]:
    """A run executed as the code server executes a launched run: in a new process that
    loads the job from this environment (a process that executed one run keeps that run's
    job loaded); with `reexecuting`, that run's re-execution from failure. The run and its
    events, read back from the instance."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        run_id = pool.apply(_execute, (instance.get_ref(), tags, reexecuting))
    run = instance.get_run_by_id(run_id)
    assert run is not None
    events = [r.dagster_event for r in instance.all_logs(run_id) if r.dagster_event is not None]
    return run, events


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_failure_alerts(alert_file: Path) -> list[dict]:
    """Every alert the alert file holds: a failed run's is the only one these runs send."""
    lines = alert_file.read_text().splitlines() if alert_file.exists() else []
    return list(map(json.loads, lines))


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A code location's environment: state and alert file under tmp_path. Returns the
    alert file."""
    for key in [k for k in os.environ if k.startswith("TECL_")]:
        monkeypatch.delenv(key)
    alert_file = tmp_path / "alerts" / "alerts.jsonl"
    monkeypatch.setenv("TECL_STATE_URI", (tmp_path / "state").as_uri())
    monkeypatch.setenv("TECL_ALERT_FILE", str(alert_file))
    return alert_file


@pytest.fixture
def instance(tmp_path: Path):
    """A persistent instance, like the webserver's and the daemon's."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def test_cli_run_with_the_broker_down_alerts_naming_the_cause(tmp_path, deployment):
    """C1/B2: `tecl run` in its own process, the broker unreachable: exit status 1 and one
    run-failure alert in TECL_ALERT_FILE naming the session, the step and the cause."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    environ["TECL_BROKER_URL"] = f"http://127.0.0.1:{closed_port()}"

    done = subprocess.run(
        [sys.executable, "-m", "tecl_pipeline.app.cli", "run", "--session", str(DEMO_SESSION)],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 1, done.stderr
    [alert] = run_failure_alerts(deployment)
    assert alert["session"] == DEMO_SESSION.isoformat() and alert["severity"] == "critical"
    assert "target_allocation: " in alert["detail"]
    assert "no answer from the broker" in alert["detail"]
    demo_home = tmp_path / ".dagster" / "demo"
    run = DagsterInstance.from_config(str(demo_home)).get_run_by_id(alert["run_id"])
    assert run is not None and run.tags[RUN_ALERTED_TAG] == "hook"
    assert (run.tags[OUTCOME_TAG], run.tags[MODE_TAG]) == (OutcomeLabel.ERROR, "demo")


def test_launched_run_alerts_once_when_two_steps_fail_at_once(
    csv_dir, deployment, instance, monkeypatch
):
    """C1: a run launched as the launchpad launches it (a reconstructable job in its own
    process) whose two blocking data checks both fail: the alert hook runs in both failed
    steps, one after the other in the run's one process, and the run alerts once, as a
    refusal, naming the failed check and its reason."""
    folder = csv_dir(REAL_LAST_SESSION)
    kmlm = pd.read_csv(folder / "KMLM.csv")
    kmlm.iloc[:-1].to_csv(folder / "KMLM.csv", index=False)  # stale: market_data_fresh
    spy = pd.read_csv(folder / "SPY.csv")
    spy.loc[spy.index[-1], "adj_close"] *= 3  # an impossible jump: market_data_sane
    spy.to_csv(folder / "SPY.csv", index=False)
    monkeypatch.setenv("TECL_DATA_DIR", str(folder))

    run, events = launched_run(instance, {"dagster/partition": REAL_LAST_SESSION.isoformat()})

    assert run.status == DagsterRunStatus.FAILURE
    failed = {e.step_key for e in events if e.is_step_failure}
    assert failed == {"market_data_market_data_fresh", "market_data_market_data_sane"}
    hooked = [e.step_key for e in events if e.event_type_value == "HOOK_COMPLETED"]
    assert sorted(hooked, key=str) == sorted(failed, key=str)
    # Why the hooks need no lock between them: no step ran in a process of its own.
    assert len({e.pid for e in events if e.step_key and e.pid is not None}) == 1
    [alert] = run_failure_alerts(deployment)
    assert alert["kind"] == "refused"
    assert alert["run_id"] == run.run_id
    assert alert["session"] == REAL_LAST_SESSION.isoformat()
    assert ("market_data_fresh: " in alert["detail"] and "KMLM" in alert["detail"]) or (
        "market_data_sane: " in alert["detail"] and "SPY" in alert["detail"]
    )


def test_scheduled_run_alerts_when_it_fails(tmp_path, deployment, instance, monkeypatch):
    """C1/A3: the run the schedule requests at a session's decision time, executed as the
    daemon launches it (the request's partition and tags), fails on missing market data
    and alerts for that session, once: the refusal the step itself sent."""
    empty = tmp_path / "no-market-data"
    empty.mkdir()
    monkeypatch.setenv("TECL_DATA_DIR", str(empty))
    project = build_definitions(Settings.from_env(os.environ, cwd=Path.cwd()))
    repository = project.get_repository_def()
    tick = daily_trading_schedule.evaluate_tick(
        build_schedule_context(
            scheduled_execution_time=CALENDAR.decision_time(DEMO_SESSION),
            repository_def=repository,
        )
    )
    [request] = tick.run_requests or []

    assert request.partition_key is not None
    run, _ = launched_run(
        instance,
        {
            **request.tags,
            "dagster/partition": request.partition_key,
            "dagster/schedule_name": daily_trading_schedule.name,
        },
    )

    assert run.status == DagsterRunStatus.FAILURE
    [alert] = run_failure_alerts(deployment)
    assert alert["kind"] == "refused"
    assert alert["run_id"] == run.run_id
    assert alert["session"] == DEMO_SESSION.isoformat()
    assert "no data file" in alert["detail"]
    assert run.tags[RUN_ALERTED_TAG] == "step"
    assert run.tags[OUTCOME_TAG] == OutcomeLabel.REFUSED


def test_a_reexecution_that_fails_alerts_and_is_tagged_on_its_own(
    tmp_path, csv_dir, deployment, instance, monkeypatch
):
    """C1: "Re-execute from failure" starts a run with its parent's tags, the parent's sent
    alert and outcome among them (the UI copies them). The re-execution still alerts its own
    failure and is tagged with how it ended, not how its parent did."""
    empty = tmp_path / "no-market-data"
    empty.mkdir()
    monkeypatch.setenv("TECL_DATA_DIR", str(empty))
    parent, _ = launched_run(instance, {"dagster/partition": REAL_LAST_SESSION.isoformat()})
    assert parent.tags[OUTCOME_TAG] == OutcomeLabel.REFUSED and parent.tags[RUN_ALERTED_TAG]
    # The data is there now; the broker is not.
    monkeypatch.setenv("TECL_DATA_DIR", str(csv_dir(REAL_LAST_SESSION)))
    monkeypatch.setenv("TECL_BROKER_URL", f"http://127.0.0.1:{closed_port()}")

    child, _ = launched_run(instance, dict(parent.tags), reexecuting=parent.run_id)

    assert child.status == DagsterRunStatus.FAILURE
    assert child.parent_run_id == parent.run_id
    assert child.tags[OUTCOME_TAG] == OutcomeLabel.ERROR
    assert child.tags[RUN_ALERTED_TAG] == "hook"
    refused, failed = run_failure_alerts(deployment)
    assert (refused["run_id"], refused["kind"]) == (parent.run_id, "refused")
    assert (failed["run_id"], failed["kind"]) == (child.run_id, "run_failure")
    assert "no answer from the broker" in failed["detail"]
