"""Kubernetes through Dagster's Helm chart (deploy/helm/values.yaml): the instance the chart
builds from these values says what deploy/instance/shared.yaml says, everywhere that file
says something, and the code server pod is compose's code server: the same command, the
same places for state, the same launcher, the same user.

The chart itself is not rendered here (no helm, no cluster): what is checked is that each
shared setting sits at the chart's key for it, with the same value.
"""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.instance.render import render
from deploy.stack.compose import COMPOSE_FILE

REPO = Path(__file__).resolve().parents[2]
VALUES_FILE = REPO / "deploy" / "helm" / "values.yaml"
VOLUMES_FILE = REPO / "deploy" / "helm" / "volumes.yaml"
SHARED_FILE = REPO / "deploy" / "instance" / "shared.yaml"
CLOUDFORMATION = REPO / "deploy" / "cloudformation.yaml"

DAEMON = ("dagsterDaemon",)
QUEUE = (*DAEMON, "runCoordinator", "config", "queuedRunCoordinator")
MONITORING = (*DAEMON, "runMonitoring")

# Each setting of shared.yaml, and the chart's key that renders it into the instance.
# `storage` is the chart's own (postgresql.*), checked on its own below.
SHARED_IN_THE_CHART: dict[tuple[str, ...], tuple[str, ...]] = {
    ("run_queue", "dequeue_interval_seconds"): (*QUEUE, "dequeueIntervalSeconds"),
    ("run_queue", "max_concurrent_runs"): (*QUEUE, "maxConcurrentRuns"),
    ("run_queue", "tag_concurrency_limits"): (*QUEUE, "tagConcurrencyLimits"),
    ("run_monitoring", "enabled"): (*MONITORING, "enabled"),
    ("run_monitoring", "start_timeout_seconds"): (*MONITORING, "startTimeoutSeconds"),
    ("run_monitoring", "cancel_timeout_seconds"): (*MONITORING, "cancelTimeoutSeconds"),
    ("run_monitoring", "poll_interval_seconds"): (*MONITORING, "pollIntervalSeconds"),
    ("run_monitoring", "max_runtime_seconds"): (*MONITORING, "maxRuntimeSeconds"),
    ("run_monitoring", "max_resume_run_attempts"): (*MONITORING, "maxResumeRunAttempts"),
    ("run_retries", "enabled"): (*DAEMON, "runRetries", "enabled"),
    ("python_logs", "managed_python_loggers"): ("pythonLogs", "managedPythonLoggers"),
    ("retention", "schedule", "purge_after_days"): ("retention", "schedule", "purgeAfterDays"),
    ("retention", "sensor", "purge_after_days"): ("retention", "sensor", "purgeAfterDays"),
    ("telemetry", "enabled"): ("telemetry", "enabled"),
    ("nux", "enabled"): ("additionalInstanceConfig", "nux", "enabled"),
}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES_FILE.read_text())


@pytest.fixture(scope="module")
def code_server(values) -> dict[str, Any]:
    [deployment] = values["dagster-user-deployments"]["deployments"]
    return deployment


@pytest.fixture(scope="module")
def compose_code_server() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]["codeserver"]


def at(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        assert isinstance(tree, dict) and key in tree, f"no {'.'.join(path)}"
        tree = tree[key]
    return tree


def leaves(tree: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The settings of an instance file: paths down to a value that is not a mapping, or to
    a retention's mapping of days by tick status (one setting)."""
    found = []
    for key, value in tree.items():
        here = (*path, key)
        if isinstance(value, dict) and key != "purge_after_days":
            found += leaves(value, here)
        else:
            found.append(here)
    return found


def test_every_shared_setting_has_the_charts_key_for_it():
    shared = yaml.safe_load(SHARED_FILE.read_text())
    settings = [path for path in leaves(shared) if path[0] != "storage"]
    assert sorted(settings) == sorted(SHARED_IN_THE_CHART)


@pytest.mark.parametrize("setting", sorted(SHARED_IN_THE_CHART), ids=".".join)
def test_the_chart_is_given_the_shared_value(setting, values):
    shared = yaml.safe_load(SHARED_FILE.read_text())
    assert at(values, SHARED_IN_THE_CHART[setting]) == at(shared, setting)


def test_what_the_chart_needs_to_write_those_settings_is_on(values):
    # Each is rendered only when its switch is on (the daemon's blocks, retention).
    assert values["dagsterDaemon"].get("enabled", True) is True
    assert at(values, (*DAEMON, "runCoordinator", "enabled")) is True
    assert at(values, (*DAEMON, "runCoordinator", "type")) == "QueuedRunCoordinator"
    assert values["retention"]["enabled"] is True


def test_nothing_else_reaches_those_settings(values):
    """The blocks that hold shared settings hold nothing beside them, and the instance
    settings the chart copies verbatim add only what compose's overlay adds and a shared
    setting the chart has no key for: a retry, a second monitoring block or a queue limit
    slipped in beside them would go unseen."""
    mapped = set(SHARED_IN_THE_CHART.values())
    for block in (QUEUE, MONITORING):
        extra = {(*block, key) for key in at(values, block)} - mapped
        # Dagster's own default, which the chart writes whether or not it is given.
        assert extra <= {(*MONITORING, "freeSlotsAfterRunEndSeconds")}, extra
    assert at(values, (*MONITORING, "freeSlotsAfterRunEndSeconds")) == 0
    assert set(values["additionalInstanceConfig"]) == {"local_artifact_storage", "nux"}
    assert "concurrency" not in values, "a second home for the queue's limits"


def test_the_database_password_is_a_secret_the_operator_creates(values):
    database = values["postgresql"]
    assert database["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in database
    # The same database and user as the compose stack's, encrypted in transit (S5).
    compose = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["postgres"]["environment"]
    assert database["postgresqlDatabase"] == compose["POSTGRES_DB"]
    assert database["postgresqlUsername"] == compose["POSTGRES_USER"]
    assert database["postgresqlParams"]["sslmode"] in {"require", "verify-ca", "verify-full"}


def test_runs_start_in_the_code_server_as_in_compose(values):
    launcher = at(values, ("runLauncher",))
    assert launcher["type"] == "CustomRunLauncher"
    custom = launcher["config"]["customRunLauncher"]
    compose = render("compose")["run_launcher"]
    assert (custom["module"], custom["class"]) == (compose["module"], compose["class"])


def test_the_code_server_runs_composes_command(code_server, compose_code_server):
    command = compose_code_server["command"]
    # `dagster api grpc -h 0.0.0.0 -p <port>` is the chart's; the rest is ours.
    assert command[:3] == ["dagster", "api", "grpc"]
    port = command[command.index("-p") + 1]
    assert code_server["port"] == int(port)
    assert code_server["dagsterApiGrpcArgs"] == command[command.index("-p") + 2 :]
    assert "codeServerArgs" not in code_server


def compose_value(value: str) -> str:
    """A compose environment value as the container gets it when the env file leaves it
    unset: `${NAME:-default}` is the default."""
    interpolated = re.fullmatch(r"\$\{[A-Z_]+:-(.*)\}", value)
    return interpolated.group(1) if interpolated else value


def test_the_code_server_has_composes_settings_and_nothing_over_the_env_file(
    code_server, compose_code_server
):
    """The pod's own variables win over the env file's Secret, as compose's `environment`
    wins over its env_file: the same names, with compose's values and defaults."""
    environment = {item["name"]: item["value"] for item in code_server["env"]}
    compose_env = compose_code_server["environment"]
    # Compose's others are the chart's own (DAGSTER_PG_*, the code server's address for
    # the webserver and daemon) or this deployment's instance settings (storage, logs).
    ours = {name for name in compose_env if name.startswith("TECL_") and "CODE_SERVER" not in name}
    assert set(environment) == ours
    for name in ours:
        assert environment[name] == compose_value(compose_env[name]), name
    assert code_server["envSecrets"] == [{"name": "tecl-pipeline-env"}]


def test_state_a_later_run_needs_is_where_compose_keeps_it(
    values, code_server, compose_code_server
):
    compose_env = compose_code_server["environment"]
    claims = {
        volume["name"]: volume["persistentVolumeClaim"]["claimName"]
        for volume in code_server["volumes"]
        if "persistentVolumeClaim" in volume
    }
    mounted = {
        mount["mountPath"]: claims[mount["name"]]
        for mount in code_server["volumeMounts"]
        if mount["name"] in claims
    }
    declared = {doc["metadata"]["name"] for doc in yaml.safe_load_all(VOLUMES_FILE.read_text())}
    for mount in compose_code_server["volumes"]:
        volume, path = mount.split(":")
        assert path in mounted, f"{volume} at {path}"
        assert mounted[path] in declared, mounted[path]
    storage = values["additionalInstanceConfig"]["local_artifact_storage"]
    compose_storage = render("compose")["local_artifact_storage"]
    assert (storage["module"], storage["class"]) == (
        compose_storage["module"],
        compose_storage["class"],
    )
    assert storage["config"]["base_dir"] == compose_env["DAGSTER_STORAGE_DIR"]
    assert storage["config"]["base_dir"] in mounted
    # One pod at a time on those volumes: a second would hold the same session lock.
    assert code_server["deploymentStrategy"]["type"] == "Recreate"
    # Their files belong to the image's user, who writes locks, spool and logs there.
    assert code_server["podSecurityContext"] == {"fsGroup": 10001}


def test_the_code_server_loads_the_charts_instance(values, code_server):
    """The chart mounts its instance file into the webserver and the daemon only: the code
    server mounts it too, where the image keeps its own (the compose one)."""
    dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    [image_home] = re.findall(r"DAGSTER_HOME=(\S+)", dockerfile)
    assert values["global"]["dagsterHome"] == image_home
    config_maps = {
        volume["name"]: volume["configMap"]["name"]
        for volume in code_server["volumes"]
        if "configMap" in volume
    }
    [mount] = [m for m in code_server["volumeMounts"] if m["name"] in config_maps]
    assert mount["mountPath"] == f"{image_home}/dagster.yaml"
    assert mount["subPath"] == "dagster.yaml"
    assert config_maps[mount["name"]] == f"{values['fullnameOverride']}-instance"


def test_the_location_has_composes_name(values, code_server, compose_code_server):
    command = compose_code_server["command"]
    [server] = values["dagsterWebserver"]["workspace"]["servers"]
    assert values["dagsterWebserver"]["workspace"]["enabled"] is True
    assert server == {
        "host": code_server["name"],
        "port": code_server["port"],
        "name": command[command.index("--location-name") + 1],
    }


def test_every_service_runs_the_image_as_its_user(values, code_server):
    dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    assert "--uid 10001" in dockerfile
    images = {
        values["dagsterWebserver"]["image"]["repository"],
        values["dagsterDaemon"]["image"]["repository"],
        code_server["image"]["repository"],
    }
    assert len(images) == 1
    for context in (
        values["dagsterWebserver"]["securityContext"],
        values["dagsterDaemon"]["securityContext"],
        code_server["securityContext"],
    ):
        assert context == {"runAsNonRoot": True, "runAsUser": 10001}
    # A user cannot bind a port below 1024.
    assert values["dagsterWebserver"]["service"]["port"] >= 1024
    assert values["ingress"]["enabled"] is False


def test_captured_logs_go_encrypted_where_the_bucket_expires_them(values):
    """A10: the runs' captured logs are written under the state prefix's logs/, which the
    bucket's lifecycle expires, and encrypted (S5)."""
    from cfnlint.decode import decode_str

    manager = values["computeLogManager"]
    assert manager["type"] == "S3ComputeLogManager"
    config = manager["config"]["s3ComputeLogManager"]
    assert config["uploadExtraArgs"]["ServerSideEncryption"] in {"AES256", "aws:kms"}
    template, _ = decode_str(CLOUDFORMATION.read_text())
    assert template is not None
    state_prefix = template["Parameters"]["StatePrefix"]["Default"]
    rules = template["Resources"]["StateBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    logs_rule = next(rule for rule in rules if rule["Id"] == "expire-compute-logs")
    assert logs_rule["Prefix"] == {"Fn::Sub": "${StatePrefix}/logs/"}
    assert f"{config['prefix']}/".startswith(f"{state_prefix}/logs/")
