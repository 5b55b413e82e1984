"""The project's own log lines reach each run's event log (what the run's page in the UI
shows), through the instance configs' `python_logs.managed_python_loggers`, and a secret in
such a line is masked there as everywhere else (S2)."""

from datetime import date
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance
from pydantic import SecretStr

from deploy.instance.render import deployments, render_text
from tecl_pipeline.app.cli import DAGSTER_YAML, ensure_dagster_home
from tecl_pipeline.config.settings import Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.observability.logs import LOGGER_NAME
from tecl_pipeline_tests.observability.helpers import CANARY, LoggerState

REPO = Path(__file__).resolve().parents[2]
DEMO_SESSION = date(2026, 11, 24)
EARLIER_SESSION = date(2026, 11, 20)


@pytest.mark.parametrize(
    "config",
    [DAGSTER_YAML, *(render_text(deployment) for deployment in deployments())],
    ids=["local (tecl run, make dev)", *(f"deploy/instance {d}" for d in deployments())],
)
def test_instance_configs_hand_the_project_loggers_to_dagster(config):
    assert LOGGER_NAME in yaml.safe_load(config)["python_logs"]["managed_python_loggers"]


@pytest.mark.parametrize(
    "config",
    [DAGSTER_YAML, *(render_text(deployment) for deployment in deployments())],
    ids=["local (tecl run, make dev)", *(f"deploy/instance {d}" for d in deployments())],
)
def test_no_instance_opens_the_community_dialog_over_the_ui(config):
    """The UI's "Join the Dagster community" dialog, shown in every new browser, is off."""
    assert yaml.safe_load(config)["nux"] == {"enabled": False}


def test_dagster_reads_that_setting_as_the_dialog_turned_off(tmp_path):
    # The local instance (SQLite); the deployments' need their PostgreSQL to be built.
    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML)
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.nux_enabled is False


def test_project_log_lines_reach_the_run_event_log_masked(state_dir, tmp_path, monkeypatch):
    """A journal record that is not valid JSON, under a name holding a secret: the journal
    quarantines it and says so through its module logger, the alert goes out through the
    "tecl_pipeline.alerts" logger, and both lines are in the run's event log on the instance
    `tecl run` sets up, with the secret masked."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    # A secret the redactor knows, as Settings.read() registers every secret-like variable.
    settings = Settings(state_uri=state_dir.as_uri(), secret_values=(SecretStr(CANARY),))
    job = build_definitions(settings).resolve_job_def("daily_trading_job")
    bad = state_dir / "journal" / "sessions" / EARLIER_SESSION.isoformat() / f"{CANARY}.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    state = LoggerState()
    try:
        home = ensure_dagster_home()
        with DagsterInstance.from_config(str(home)) as instance:
            result = job.execute_in_process(
                partition_key=DEMO_SESSION.isoformat(), instance=instance, raise_on_error=False
            )
            messages = [record.user_message for record in instance.all_logs(result.run_id)]
    finally:
        state.restore()

    assert result.success
    # Whatever path a line took (a module logger, the alert logger, a step's own
    # context.log), the run's event log never holds the secret.
    assert [m for m in messages if CANARY in m] == []
    # The journal's own line (journal/records.py's module logger), masked.
    journal = [m for m in messages if m.startswith("journal quarantine: ")]
    assert any("sessions/2026-11-20/***.json" in m for m in journal), journal
    # The alert's line exists only through the "tecl_pipeline.alerts" logger.
    [alert] = [m for m in messages if m.startswith("alert quarantine: ")]
    assert "sessions/2026-11-20/***.json" in alert and CANARY not in alert
