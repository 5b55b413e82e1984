"""The compose deployment's Dagster instance (deploy/instance/compose.yaml over shared.yaml),
the one the containers and `make stack` load.

Checked against the schemas Dagster itself applies when it loads an instance: the
`storage: postgres` block by dagster core's own pg_config schema, the storage and
compute-log blocks by their classes.
"""

import importlib
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
    REPO / "deploy" / "instance" / "compose.yaml",
)

# The environment a deployment must provide (documented in the file's header).
REQUIRED_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_STORAGE_DIR": "/var/lib/dagster",
    "DAGSTER_COMPUTE_LOG_DIR": "/var/lib/dagster/compute_logs",
}


@pytest.fixture(scope="module")
def instance() -> dict[str, Any]:
    return render("compose")


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
    used = env_names(instance)
    assert set(REQUIRED_ENV) <= used
    assert [name for name in sorted(used) if name not in header] == []


def test_postgres_credentials_come_from_the_environment(instance):
    database = instance["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "port", "db_name", "username", "password"):
        assert set(database[key]) == {"env"}, key


def test_captured_logs_and_outputs_are_on_the_shared_volume(instance, deployment_env):
    """What the webserver shows and what a re-execution reads outlives a replaced
    container: both are on the volume compose mounts at DAGSTER_STORAGE_DIR."""
    for block, key in (("compute_logs", "base_dir"), ("local_artifact_storage", "base_dir")):
        storage = configurable_class(instance[block])
        result = process_config(storage.config_type(), instance[block]["config"])
        assert result.success and result.value is not None, result.errors
        assert result.value[key].startswith(REQUIRED_ENV["DAGSTER_STORAGE_DIR"]), block


def test_runs_start_in_the_code_server(instance):
    launcher = configurable_class(instance["run_launcher"])
    assert launcher.__name__ == "CodeServerRunLauncher"


def test_runs_have_a_max_runtime_and_are_never_retried_or_resumed(instance):
    monitoring = instance["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["max_runtime_seconds"] <= 3600
    assert monitoring["max_resume_run_attempts"] == 0
    assert instance["run_retries"]["enabled"] is False
