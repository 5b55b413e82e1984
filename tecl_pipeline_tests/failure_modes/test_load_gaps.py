"""A1: loading the code location does no network I/O, whatever the deployment configures.

A cold start that waits on the network (a broker, AWS, a webhook) is slow and fails in
ways no run can report; the network belongs to the runs. The test loads the definitions in
a fresh interpreter whose sockets refuse every connection and every name lookup, and
records each attempt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

GUARDED_LOAD = """
import json, socket

attempts = []


def refuse(what):
    def call(*args, **kwargs):
        attempts.append(f"{what} {args[1:2] if what.startswith('socket.') else args[:1]}")
        raise OSError(f"network I/O while loading the definitions ({what})")

    return call


socket.socket.connect = refuse("socket.connect")
socket.socket.connect_ex = refuse("socket.connect_ex")
socket.socket.sendto = refuse("socket.sendto")
socket.getaddrinfo = refuse("getaddrinfo")
socket.gethostbyname = refuse("gethostbyname")
socket.create_connection = refuse("create_connection")

from tecl_pipeline.definitions import defs

repository = defs.get_repository_def()
loaded = {
    "jobs": sorted(job.name for job in repository.get_all_jobs()),
    "schedules": sorted(s.name for s in repository.schedule_defs),
    "sensors": sorted(s.name for s in repository.sensor_defs),
}
print(json.dumps({"attempts": attempts, "loaded": loaded}))
"""

DEPLOYMENTS = {
    "demo defaults": {},
    "paper, S3 state, Secrets Manager, webhook": {
        "TECL_MODE": "paper",
        "TECL_STATE_URI": "s3://tecl-state/paper",
        "TECL_SECRET_ID": "tecl/alpaca",
        "AWS_REGION": "us-east-1",
        "TECL_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/XXXX",
    },
    "live, keys from the environment": {
        "TECL_MODE": "live",
        "TECL_LIVE_CONFIRM": "I accept that this trades real money",
        "ALPACA_API_KEY": "PKNOTAREALKEY00001",
        "ALPACA_SECRET_KEY": "not-a-real-secret-value",
    },
}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_loading_the_definitions_opens_no_network_connection(tmp_path, deployment):
    """A1: with every socket connection and name lookup refused, the definitions of each
    kind of deployment load completely (jobs, schedule, sensors), and nothing tried to
    reach the network."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("TECL_", "ALPACA_", "AWS_"))
    }
    environ.update(DEPLOYMENTS[deployment], DAGSTER_HOME=str(tmp_path / "dagster"))

    done = subprocess.run(
        [sys.executable, "-c", GUARDED_LOAD],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert "daily_trading_job" in report["loaded"]["jobs"]
    assert report["loaded"]["schedules"] == ["daily_trading_schedule"]
    assert "run_failure_alert_sensor" in report["loaded"]["sensors"]
