"""`tecl` run as a user runs it: a separate process, with none of the TECL_ or DAGSTER_
variables of the test run's own environment unless a test passes them."""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

# The last session of the real data in ../shared/data/market.
REAL_LAST_SESSION = date(2026, 7, 31)


def tecl(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TECL_", "DAGSTER_"))}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "tecl_pipeline.app.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
