"""The ECS deployment's Dagster instance (deploy/instance/ecs.yaml over shared.yaml).

Checked against the schemas Dagster itself applies when it loads an instance, without
dagster-postgres installed: the `storage: postgres` block is validated by dagster core's
own pg_config schema, the launcher and compute-log blocks by the dagster-aws classes.
"""

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

# Private, because Dagster has no public validator for an instance file; a Dagster upgrade
# that moves it fails here loudly, which is what a config check should do.
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config_schema

from deploy.instance.render import render

REPO = Path(__file__).resolve().parents[2]
INSTANCE_FILES = (
    REPO / "deploy" / "instance" / "shared.yaml",
    REPO / "deploy" / "instance" / "ecs.yaml",
)

# The environment a deployment must provide (documented in the file's header).
REQUIRED_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "TECL_STATE_BUCKET": "tecl-state",
    "TECL_COMPUTE_LOG_PREFIX": "tecl/logs/compute",
    "TECL_ECS_RUN_TASK_DEFINITION": "tecl-run",
}


@pytest.fixture(scope="module")
def instance() -> dict[str, Any]:
    return render("ecs")


@pytest.fixture
def deployment_env(monkeypatch):
    for name, value in REQUIRED_ENV.items():
        monkeypatch.setenv(name, value)


def env_names(node: Any) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return {name for value in node.values() for name in env_names(value)}
    if isinstance(node, list):
        return {name for item in node for name in env_names(item)}
    return set()


def configurable_class(block: dict[str, Any]) -> type:
    return getattr(importlib.import_module(block["module"]), block["class"])


def test_instance_file_is_valid_for_dagster(instance, deployment_env):
    result = process_config(dagster_instance_config_schema(), instance)
    assert result.success, result.errors


def test_every_env_var_it_reads_is_documented(instance):
    header = "".join(path.read_text().split("\nstorage:")[0] for path in INSTANCE_FILES)
    used = env_names(instance) | set(instance["run_launcher"]["config"]["env_vars"])
    assert set(REQUIRED_ENV) <= used
    assert [name for name in sorted(used) if name not in header] == []


def test_postgres_credentials_come_from_the_environment(instance):
    database = instance["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "db_name", "username", "password"):
        assert set(database[key]) == {"env"}, key
    # In transit encryption to the database (S5).
    assert database["params"]["sslmode"] in {"require", "verify-ca", "verify-full"}


def test_compute_logs_go_to_s3_encrypted(instance, deployment_env):
    block = instance["compute_logs"]
    manager = configurable_class(block)
    assert manager.__name__ == "S3ComputeLogManager"
    result = process_config(manager.config_type(), block["config"])
    assert result.success and result.value is not None, result.errors
    assert result.value["bucket"] == REQUIRED_ENV["TECL_STATE_BUCKET"]
    assert result.value["prefix"] == REQUIRED_ENV["TECL_COMPUTE_LOG_PREFIX"]
    assert block["config"]["upload_extra_args"]["ServerSideEncryption"] in {"AES256", "aws:kms"}


def test_runs_launch_on_ecs_without_secrets_in_overrides(instance, deployment_env):
    block = instance["run_launcher"]
    launcher = configurable_class(block)
    assert launcher.__name__ == "EcsRunLauncher"
    result = process_config(launcher.config_type(), block["config"])
    assert result.success and result.value is not None, result.errors
    # The tag lookup needs secretsmanager:ListSecrets on "*" (S3): it stays off.
    assert result.value["secrets_tag"] is None
    # Run-task overrides are readable in the ECS API: no secret value may travel in them (S2).
    forwarded = result.value["env_vars"]
    assert not [v for v in forwarded if re.search(r"PASSWORD|SECRET_KEY|API_KEY|TOKEN", v)]
    assert all("=" not in v for v in forwarded), "values belong to the daemon's environment"


def test_runs_have_a_max_runtime_and_are_never_retried_or_resumed(instance):
    monitoring = instance["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["max_runtime_seconds"] <= 3600
    assert monitoring["max_resume_run_attempts"] == 0
    assert instance["run_retries"]["enabled"] is False
