"""The project's own log lines reach each run's event log (what the run's page in the UI
shows), through the instance configs' `python_logs.managed_python_loggers`, and a secret in
such a line is masked there as everywhere else (S2)."""

from datetime import date
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

from tecl_pipeline.app.cli import DAGSTER_YAML, ensure_dagster_home
from tecl_pipeline.observability.logs import LOGGER_NAME
from tecl_pipeline_tests.observability.helpers import CANARY, LoggerState

REPO = Path(__file__).resolve().parents[2]
DEMO_SESSION = date(2026, 11, 24)
EARLIER_SESSION = date(2026, 11, 20)


@pytest.mark.parametrize(
    "config",
    [DAGSTER_YAML, (REPO / "deploy" / "dagster.yaml").read_text()],
    ids=["local (tecl run, make dev)", "deploy/dagster.yaml"],
)
def test_instance_configs_hand_the_project_loggers_to_dagster(config):
    assert LOGGER_NAME in yaml.safe_load(config)["python_logs"]["managed_python_loggers"]


def test_project_log_lines_reach_the_run_event_log_masked(
    run_daily, state_dir, tmp_path, monkeypatch
):
    """A journal record that is not valid JSON, under a name holding a secret: the journal
    quarantines it and says so through its module logger, the alert goes out through the
    "tecl_pipeline.alerts" logger, and both lines are in the run's event log on the instance
    `tecl run` sets up, with the secret masked."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("DEMO_WEBHOOK_TOKEN", CANARY)  # a secret the redactor knows
    bad = state_dir / "journal" / "sessions" / EARLIER_SESSION.isoformat() / f"{CANARY}.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    state = LoggerState()
    try:
        home = ensure_dagster_home()
        with DagsterInstance.from_config(str(home)) as instance:
            result = run_daily(DEMO_SESSION, instance=instance)
            messages = [record.user_message for record in instance.all_logs(result.run_id)]
    finally:
        state.restore()

    assert result.success
    # The journal's own line (journal/records.py's module logger), masked. The step's
    # context.log echo of the same event is another path, not this test's.
    journal = [m for m in messages if m.startswith("journal quarantine: ")]
    assert any("sessions/2026-11-20/***.json" in m for m in journal), journal
    # The alert's line exists only through the "tecl_pipeline.alerts" logger.
    [alert] = [m for m in messages if m.startswith("alert quarantine: ")]
    assert "sessions/2026-11-20/***.json" in alert and CANARY not in alert
