"""S2: a canary secret used for a whole paper-mode run appears nowhere the run wrote:
stdout, stderr, the Dagster instance (event log, run storage, compute logs), the state
directory, or anything else under the run's working directory."""

import os
import subprocess
import sys
from pathlib import Path

from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_SESSION, sim_state

CANARY_KEY = "PKCANARYKEY7Q3XZ"
CANARY_SECRET = "canary-secret-5f1d9c2e8b7a4e03a1c6"


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


def test_canary_secret_never_written_anywhere(tmp_path, simulator):
    simulator.simulator.set_credentials(CANARY_KEY, CANARY_SECRET)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TECL_", "ALPACA_"))}
    env.update(
        TECL_MODE="paper",
        TECL_BROKER_URL=simulator.url,
        TECL_DATA_URL=simulator.url,
        ALPACA_API_KEY=CANARY_KEY,
        ALPACA_SECRET_KEY=CANARY_SECRET,
        DAGSTER_HOME=str(tmp_path / ".dagster"),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tecl_pipeline.app.cli",
            "run",
            "--verbose",
            "--session",
            SIM_SESSION.isoformat(),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    assert sim_state(simulator.url)["submissions"], "the run must really have traded"
    for needle in (CANARY_SECRET, CANARY_KEY):
        assert needle not in done.stdout and needle not in done.stderr
        assert files_containing(tmp_path, needle.encode()) == []
    assert any((tmp_path / ".dagster").rglob("*.db")), "the scan must cover the event log"
