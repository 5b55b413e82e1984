"""`tecl` run as a user runs it: a separate process, with none of the TECL_, DAGSTER_ or
ALPACA_ variables of the test run's own environment unless a test passes them."""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

# The last session of the real data in ../shared/data/market.
REAL_LAST_SESSION = date(2026, 7, 31)


USER_ENV_PREFIXES = ("TECL_", "DAGSTER_", "ALPACA_")


def user_environ(**env: str) -> dict[str, str]:
    """The test run's environment without its TECL_, DAGSTER_ and ALPACA_ variables, plus `env`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(USER_ENV_PREFIXES)}
    environ.update(env)
    return environ


def paper_at(url: str, **env: str) -> dict[str, str]:
    """The variables of a paper deployment against the simulator at `url` (its demo key
    pair unless `env` says otherwise), plus `env`."""
    return {
        "TECL_MODE": "paper",
        "TECL_BROKER_URL": url,
        "TECL_DATA_URL": url,
        "ALPACA_API_KEY": "sim-key",
        "ALPACA_SECRET_KEY": "sim-secret",
        **env,
    }


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "tecl_pipeline.app.cli", *args]


def tecl(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`tecl ARGS` to its end (at most 5 minutes), its output captured."""
    return subprocess.run(
        _command(args),
        cwd=cwd,
        env=user_environ(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def tecl_process(args: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    """`tecl ARGS` started and left running, stdout and stderr piped."""
    return subprocess.Popen(
        _command(args),
        cwd=cwd,
        env=user_environ(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
