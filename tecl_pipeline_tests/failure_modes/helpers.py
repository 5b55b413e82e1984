"""Shared helpers for the failure-mode tests: run the daily job on chosen settings, and read
back what a run said (failed checks, refusals, step errors) and what it alerted."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, ExecuteInProcessResult

from tecl_pipeline.config.settings import ENV_KEYS, REGION_VARS, SECRET_ENV_NAMES, Settings
from tecl_pipeline.definitions import build_definitions

FAST_BROKER = {"retry_base_delay_seconds": 0.01, "timeout_seconds": 1.0}
"""Broker resource settings for fault tests: the adapter's retries wait 10 ms, not seconds."""


def run_session(
    settings: Settings,
    session: date,
    *,
    resources: Mapping[str, Mapping[str, Any]] | None = None,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """daily_trading_job for `session` with the deployment's resources for `settings`, some
    of their fields changed (e.g. {"broker": FAST_BROKER, "trading_policy": {...}}, as an
    operator would set them in the launchpad); never raises."""
    defs = build_definitions(settings, resource_config=resources)
    return defs.resolve_job_def("daily_trading_job").execute_in_process(
        partition_key=session.isoformat(),
        instance=instance or DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def materialized(result: ExecuteInProcessResult) -> set[str]:
    return {
        e.materialization.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
    }


def stop_reasons(result: ExecuteInProcessResult) -> str:
    """Everything the run said about why it stopped: failed checks, refusals and step errors."""
    texts = [c.description or "" for c in result.get_asset_check_evaluations() if not c.passed]
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None:
            texts.append(data.user_failure_data.description or "")
        if data.error is not None:
            texts.append(data.error.to_string())
    return "\n".join(texts)


def read_alerts(log_dir: Path) -> list[dict[str, Any]]:
    """The alerts a run delivered to its alert file (<log dir>/alerts.jsonl)."""
    path = log_dir / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_failure_alert(result: ExecuteInProcessResult, log_dir: Path) -> dict[str, Any]:
    """The one run-failure alert the failed run delivered to its alert file
    (<log dir>/alerts.jsonl): the run alerts from inside, whatever started it (C1)."""
    alerts = [
        a
        for a in read_alerts(log_dir)
        if a["kind"] == "run_failure" and a["run_id"] == result.run_id
    ]
    assert len(alerts) == 1, f"expected one run-failure alert for the run, got {alerts}"
    return alerts[0]


def with_env_keys(settings: Settings) -> Settings:
    """`settings` with the Alpaca pair, the secret values and the secret's location of this
    process's environment (set by the test), as `Settings.read()` would carry them."""
    read = Settings.from_env(
        {k: v for k, v in os.environ.items() if k in ENVIRONMENT_KEYS}, cwd=Path.cwd()
    )
    return settings.model_copy(
        update={
            field: getattr(read, field)
            for field in (
                "alpaca_api_key",
                "alpaca_secret_key",
                "secret_values",
                "aws_region",
                "aws_region_var",
                "secrets_endpoint_url",
            )
        }
    )


# What `with_env_keys` takes from the environment: the rest the test's settings say.
ENVIRONMENT_KEYS = frozenset(
    {
        *(ENV_KEYS[f] for f in ("alpaca_api_key", "alpaca_secret_key", "secrets_endpoint_url")),
        *REGION_VARS,
        *SECRET_ENV_NAMES,
    }
)
