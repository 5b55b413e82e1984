"""The deployment's cross-host second line (C2): every deployment's instance
(deploy/instance/shared.yaml) queues runs of one
session partition behind each other across every host sharing the instance. Checked with
Dagster's own queue logic on an instance built from the file's `run_queue` block."""

from pathlib import Path

import yaml
from dagster import DagsterRun, instance_for_test

# Private, as in test_dagster_yaml: Dagster has no public API for the queue's tag limits.
from dagster._utils.tags import TagConcurrencyLimitsCounter

INSTANCE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "instance" / "shared.yaml"


def _run(session: str) -> DagsterRun:
    return DagsterRun(job_name="daily_trading_job", tags={"dagster/partition": session})


def test_queue_starts_one_run_per_session_at_a_time():
    run_queue = yaml.safe_load(INSTANCE_FILE.read_text())["run_queue"]
    with instance_for_test(overrides={"run_queue": run_queue}) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        in_progress = TagConcurrencyLimitsCounter(
            list(queue.tag_concurrency_limits), [_run("2026-11-24")]
        )

    assert in_progress.is_blocked(_run("2026-11-24"))
    assert not in_progress.is_blocked(_run("2026-11-25"))
