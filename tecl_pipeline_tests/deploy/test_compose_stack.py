"""deploy/docker/compose.yaml is what `make stack` runs: every service has a local
counterpart with the container's command, environment and health check, translated only
for loopback and .stack/ (deploy/stack/compose.py); a service or setting without one fails
here. And what a later run depends on lives on the stack's volumes, never only in a
container."""

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config_schema

from deploy.instance.render import OverlayConflict, deployments, lay_over, render
from deploy.stack.__main__ import S3_PORT, SIMULATOR_PORT
from deploy.stack.compose import (
    COMPOSE_FILE,
    DOCKERFILE,
    LOOPBACK,
    REPO,
    UnsupportedService,
    interpolate,
    plan,
    read_dockerfile,
    read_env_file,
)

VENV = REPO / ".venv"
BUILT = ("codeserver", "webserver", "daemon")
PG_PASSWORD = "a-long-test-password"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(f"DAGSTER_PG_PASSWORD={PG_PASSWORD}\nALPACA_API_KEY=k\nALPACA_SECRET_KEY=s\n")
    return path


def planned(env_file: Path, tmp_path: Path, compose_file: Path = COMPOSE_FILE):
    return plan(
        env_file=env_file, stack_dir=tmp_path / "stack", venv=VENV, compose_file=compose_file
    )


def test_every_service_of_the_compose_file_has_a_local_counterpart(env_file, tmp_path):
    the_plan = planned(env_file, tmp_path)
    assert [s.name for s in the_plan.services] == list(compose()["services"])
    assert [s.name for s in the_plan.start_order()] == [
        "postgres",
        "codeserver",
        "webserver",
        "daemon",
    ]
    postgres = the_plan.service("postgres")
    assert postgres.postgres is not None
    assert (postgres.postgres.major, postgres.postgres.user, postgres.postgres.database) == (
        15,
        "dagster",
        "dagster",
    )
    assert postgres.postgres.password == PG_PASSWORD


@pytest.mark.parametrize("name", BUILT)
def test_each_process_runs_the_containers_command_translated_only_for_loopback(
    name, env_file, tmp_path
):
    the_plan = planned(env_file, tmp_path)
    service = the_plan.service(name)
    container = compose()["services"][name]
    ports = {c: p for s in the_plan.services for c, p in s.ports.items()}
    assert len(service.argv) == len(container["command"])
    for local, original in zip(service.argv, container["command"], strict=True):
        if original in compose()["services"] or original == "0.0.0.0":
            assert local == LOOPBACK
        elif original.isdigit() and int(original) in ports:
            assert local == str(ports[int(original)])
        else:
            assert local == original
    # The health check is the container's too.
    health = container["healthcheck"]["test"][1:]
    assert service.health is not None and len(service.health.argv) == len(health)
    assert service.health.argv[0] == health[0]


@pytest.mark.parametrize("name", BUILT)
def test_each_process_has_the_containers_environment(name, env_file, tmp_path):
    """Image ENV, then the env file (the code server's only), then `environment:`, as compose
    layers them."""
    service = planned(env_file, tmp_path).service(name)
    container = compose()["services"][name]
    expected_keys = set(read_dockerfile().environment) | set(container["environment"])
    if "env_file" in container:
        expected_keys |= set(read_env_file(env_file))
    assert set(service.environment) == expected_keys
    # The broker's keys reach the code server alone.
    assert ("ALPACA_SECRET_KEY" in service.environment) == (name == "codeserver")


def test_the_code_servers_environment_is_the_containers_translated_for_here(env_file, tmp_path):
    """Every value the code server's container has, as the local process has it: container
    paths become the checkout, .venv, .stack/dagster_home or a volume's directory; service
    names 127.0.0.1; a service's port its loopback port; the rest, the env file's values
    (a password that looks like a host name, say) included, unchanged."""
    env_file.write_text(
        "DAGSTER_PG_PASSWORD=postgres\nALPACA_API_KEY=k\nALPACA_SECRET_KEY=s\n"
        "TECL_MODE=paper  # live after a month\n"
    )
    stack = tmp_path / "stack"
    volumes = stack / "volumes"
    assert dict(planned(env_file, tmp_path).service("codeserver").environment) == {
        "PYTHONUNBUFFERED": "1",
        "VIRTUAL_ENV": str(VENV),
        "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
        "DAGSTER_HOME": str(stack / "dagster_home"),
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "DAGSTER_PG_PASSWORD": "postgres",
        "ALPACA_API_KEY": "k",
        "ALPACA_SECRET_KEY": "s",
        "DAGSTER_PG_HOST": LOOPBACK,
        "DAGSTER_PG_PORT": "25432",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USERNAME": "dagster",
        "DAGSTER_STORAGE_DIR": str(volumes / "dagster-storage"),
        "DAGSTER_COMPUTE_LOG_DIR": str(volumes / "dagster-storage" / "compute_logs"),
        "TECL_CODE_SERVER_HOST": LOOPBACK,
        "TECL_CODE_SERVER_PORT": "24000",
        "TECL_MODE": "paper",
        "TECL_STATE_URI": f"file://{volumes / 'tecl-state'}",
        "TECL_LOCAL_DIR": str(volumes / "tecl-local"),
        "TECL_LOG_DIR": str(volumes / "tecl-logs"),
    }


def test_what_a_later_run_depends_on_lives_on_volumes(env_file, tmp_path):
    """The session locks, the write spool, the logs and alert file, the journal, and the
    outputs a re-execution reads: each on a named volume, which a replaced container keeps;
    and the runs start in the code server's container, which mounts them all."""
    services = compose()["services"]
    codeserver = services["codeserver"]
    mounts = {spec.split(":")[1]: spec.split(":")[0] for spec in codeserver["volumes"]}
    env = interpolate(codeserver["environment"], {"DAGSTER_PG_PASSWORD": PG_PASSWORD})
    state_path = env["TECL_STATE_URI"].removeprefix("file://")
    compute_logs = render("compose")["compute_logs"]["config"]["base_dir"]["env"]
    for path in (
        env["TECL_LOCAL_DIR"],
        env["TECL_LOG_DIR"],
        state_path,
        env["DAGSTER_STORAGE_DIR"],
        env[compute_logs],
    ):
        assert any(path == m or path.startswith(m + "/") for m in mounts), path
    assert set(mounts.values()) <= set(compose()["volumes"])
    # The webserver (captured logs) and the daemon share the code server's storage volume,
    # and find the captured logs where the code server writes them.
    for name in ("webserver", "daemon"):
        assert "dagster-storage:/var/lib/dagster" in services[name]["volumes"]
        assert (
            interpolate(services[name]["environment"], {"DAGSTER_PG_PASSWORD": "x"})[compute_logs]
            == env[compute_logs]
        )
    launcher = render("compose")["run_launcher"]
    assert (launcher["module"], launcher["class"]) == (
        "tecl_pipeline.instance.run_launcher",
        "CodeServerRunLauncher",
    )
    # And the local stack maps each volume to its own directory under .stack/volumes.
    local = planned(env_file, tmp_path).service("codeserver")
    assert set(local.volumes.values()) == {
        tmp_path / "stack" / "volumes" / volume for volume in mounts.values()
    }
    assert local.environment["TECL_LOCAL_DIR"] == str(tmp_path / "stack/volumes/tecl-local")


UNSUPPORTED = {
    "an image with no local counterpart": (
        lambda doc: doc["services"].update(cache={"image": "redis:7"}),
        "cache: no local counterpart for image 'redis:7'",
    ),
    "a setting with no local counterpart": (
        lambda doc: doc["services"]["webserver"].update(network_mode="host"),
        "webserver: no local counterpart for network_mode",
    ),
    "a port published beyond loopback": (
        lambda doc: doc["services"]["webserver"].update(ports=["3000:3000"]),
        "webserver: publish ports as 127.0.0.1",
    ),
    "a command in shell form": (
        lambda doc: doc["services"]["daemon"].update(command="dagster-daemon run"),
        "daemon.command: write the command as a list",
    ),
    "a bind mount": (
        lambda doc: doc["services"]["codeserver"].update(volumes=["./state:/var/lib/tecl/state"]),
        "codeserver: ./state:/var/lib/tecl/state: only named volumes",
    ),
    "a volume in the long form": (
        lambda doc: doc["services"]["codeserver"].update(
            volumes=[{"type": "volume", "source": "tecl-local", "target": "/var/lib/tecl/local"}]
        ),
        "codeserver: volumes in the short form only",
    ),
    "a dependency on no service": (
        lambda doc: doc["services"]["daemon"].update(depends_on={"redis": {}}),
        "daemon: depends on unknown service redis",
    ),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_a_service_without_a_local_counterpart_fails_the_plan(case, env_file, tmp_path):
    change, message = UNSUPPORTED[case]
    document = compose()
    change(document)
    changed = tmp_path / "compose.yaml"
    changed.write_text(yaml.safe_dump(document))
    # The Dockerfile and .env are found beside the real compose file.
    with pytest.raises(UnsupportedService, match=re.escape(message)):
        plan(
            env_file=env_file,
            stack_dir=tmp_path / "stack",
            venv=VENV,
            compose_file=changed,
            dockerfile=DOCKERFILE,
        )


def test_a_missing_database_password_is_named(tmp_path):
    empty = tmp_path / ".env"
    empty.write_text("# nothing set\n")
    with pytest.raises(UnsupportedService, match=r"DAGSTER_PG_PASSWORD: set DAGSTER_PG_PASSWORD"):
        planned(empty, tmp_path)


def test_every_variable_the_compose_file_reads_is_in_the_env_example():
    read = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))
    example = (REPO / "deploy" / "docker" / "env.example").read_text()
    assert {name for name in read if f"{name}=" not in example} == set()


def test_no_port_of_the_stack_is_one_the_kernel_hands_out(env_file, tmp_path):
    """Every port the stack listens on is below the ephemeral range, where no outgoing
    connection (of a test, a browser, the stack's own clients) can hold it when a service
    starts and binds it."""
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [p for s in planned(env_file, tmp_path).services for p in s.ports.values()]
    assert ports and max([*ports, SIMULATOR_PORT, S3_PORT]) < low


def test_every_container_keeps_a_bounded_log():
    """A10: Docker keeps each container's output in a log that is rotated and capped."""
    for name, service in compose()["services"].items():
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        options = logging.get("options", {})
        size = re.fullmatch(r"(\d+)m", str(options.get("max-size", "")))
        assert size and int(size.group(1)) <= 100, (name, options)
        assert 1 <= int(options.get("max-file", 0)) <= 10, (name, options)


def test_the_image_installs_the_runtime_lock_only_and_runs_as_a_user():
    text = DOCKERFILE.read_text()
    final = re.split(r"(?m)^FROM ", text)[-1]
    assert final.startswith("python:3.11-slim")
    assert "pip install --no-cache-dir --require-hashes --no-deps -r /tmp/runtime.lock" in final
    assert "dev.lock" not in final
    users = re.findall(r"(?m)^USER (\S+)", final)
    assert users and users[-1] not in {"root", "0"}
    assert "python -m deploy.instance.render compose" in final
    image = read_dockerfile()
    assert image.workdir == "/opt/dagster/app"
    # The secrets of deploy/docker/.env (or a copy of it) never enter the image.
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"deploy/docker/*env*", "deploy/docker/.env*", "!deploy/docker/env.example"} <= set(
        ignored
    )


def test_every_executable_the_services_run_comes_from_the_runtime_lock():
    lock = (REPO / "requirements" / "runtime.lock").read_text()
    provided_by = {
        "dagster": "dagster",
        "dagster-webserver": "dagster-webserver",
        "dagster-daemon": "dagster",
        "python": None,
        "pg_isready": None,  # the postgres image's own
    }
    for name, service in compose()["services"].items():
        health = service["healthcheck"]["test"]
        words = shlex.split(health[1]) if health[0] == "CMD-SHELL" else health[1:]
        health_executable = next(word for word in words if "=" not in word)
        commands = [service.get("command", [None])[0], health_executable]
        for executable in filter(None, commands):
            assert executable in provided_by, f"{name}: {executable}"
            distribution = provided_by[executable]
            assert distribution is None or f"\n{distribution}==" in lock
    assert "\ndagster-postgres==" in lock


@pytest.mark.parametrize("deployment", deployments())
def test_each_deployments_instance_is_valid_for_dagster(deployment, monkeypatch):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    result = process_config(dagster_instance_config_schema(), render(deployment))
    assert result.success, result.errors


def test_an_overlay_may_add_settings_but_not_change_a_shared_one():
    shared = {"run_monitoring": {"enabled": True}, "telemetry": {"enabled": False}}
    assert lay_over(shared, {"run_monitoring": {"poll_interval_seconds": 5}}) == {
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 5},
        "telemetry": {"enabled": False},
    }
    with pytest.raises(OverlayConflict, match=re.escape("telemetry.enabled is set in shared.yaml")):
        lay_over(shared, {"telemetry": {"enabled": True}})
