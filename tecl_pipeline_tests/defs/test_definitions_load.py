"""A1: loading the code location does no network I/O, in any mode.

Each load runs in a fresh interpreter whose socket layer refuses (and records) every attempt
to resolve a name, connect, bind or send, installed before anything else is imported. Speed
is measured by `make bench` (definitions_load), never asserted here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Installed first, so that every library imported afterwards sees the guarded functions.
GUARD = """
import json, socket

attempts = []


def refuse(name):
    def guarded(*args, **kwargs):
        attempts.append(name)
        raise OSError(f"network I/O while loading the definitions: {name}")

    return guarded


for name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
    setattr(socket.socket, name, refuse(f"socket.{name}"))
for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex"):
    setattr(socket, name, refuse(name))
"""

LOAD = """
import tecl_pipeline.definitions as d

repository = d.defs.get_repository_def()
loaded = {
    "jobs": sorted(job.name for job in repository.get_all_jobs()),
    "schedules": sorted(s.name for s in repository.schedule_defs),
    "sensors": sorted(s.name for s in repository.sensor_defs),
}
print(json.dumps({"attempts": attempts, **loaded}))
"""

# The guard must be seen to fire, or a pass would prove nothing.
PROBE = """
try:
    socket.create_connection(("127.0.0.1", 9), timeout=1)
except OSError:
    pass
print(json.dumps({"attempts": attempts, "jobs": []}))
"""


def _run(script: str, tmp_path: Path, **settings: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TECL_", "ALPACA_", "AWS_"))}
    env.update(DAGSTER_HOME=str(tmp_path), **settings)
    done = subprocess.run(
        [sys.executable, "-c", GUARD + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_guard_records_an_attempt(tmp_path: Path) -> None:
    assert _run(PROBE, tmp_path)["attempts"] == ["create_connection"]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({}, id="embedded-defaults"),
        pytest.param(
            {
                "TECL_MODE": "paper",
                "TECL_STATE_URI": "s3://tecl-bench-bucket/state",
                "TECL_SECRET_ID": "tecl/alpaca",
                "AWS_DEFAULT_REGION": "us-east-1",
                "TECL_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/XXXX",
            },
            id="paper-s3-secrets-manager-webhook",
        ),
        pytest.param(
            {"TECL_MODE": "paper", "ALPACA_API_KEY": "PK-TEST", "ALPACA_SECRET_KEY": "not-real"},
            id="paper-env-keys",
        ),
        pytest.param(
            {
                "TECL_MODE": "live",
                "TECL_LIVE_CONFIRM": "I accept that this trades real money",
                "ALPACA_API_KEY": "PKNOTAREALKEY00001",
                "ALPACA_SECRET_KEY": "not-a-real-secret-value",
            },
            id="live-env-keys",
        ),
    ],
)
def test_loading_the_definitions_does_no_network_io(
    tmp_path: Path, settings: dict[str, str]
) -> None:
    """Each kind of deployment loads completely (jobs, schedule, sensors) with every
    connection and name lookup refused, and nothing tried to reach the network."""
    loaded = _run(LOAD, tmp_path, **settings)
    assert loaded["attempts"] == []
    assert {"daily_trading_job", "signal_history_job"} <= set(loaded["jobs"])
    assert loaded["schedules"] == ["daily_trading_schedule"]
    assert "run_failure_alert_sensor" in loaded["sensors"]
