"""S3 state end to end (moto in server mode): the daily job run twice reads the first run's
journal; a corrupted record is quarantined, alerted, and the run carries on from the
broker's truth (D1, D3, D4, D5)."""

import json
from datetime import date
from pathlib import Path

from dagster import DagsterInstance

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.definitions import build_definitions


def run(settings: Settings, session: date):
    job = build_definitions(settings).resolve_job_def("daily_trading_job")
    return job.execute_in_process(
        partition_key=session.isoformat(),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def metadata(result, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def alerts(logs: Path) -> list[dict]:
    path = logs / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_s3_journal_across_sessions_and_quarantine(tmp_path, aws_sandbox, s3_bucket, moto_s3):
    settings = Settings(
        state_uri=f"s3://{s3_bucket}/tecl",
        local_dir=tmp_path / "local",
        log_dir=tmp_path / "logs",
    )

    first = run(settings, date(2026, 11, 20))
    second = run(settings, date(2026, 11, 23))

    assert first.success and second.success
    listed = moto_s3.list_objects_v2(Bucket=s3_bucket, Prefix="tecl/journal/sessions/")
    keys = sorted(o["Key"] for o in listed["Contents"])
    assert len(keys) == 2
    for key in keys:
        assert moto_s3.head_object(Bucket=s3_bucket, Key=key)["ServerSideEncryption"] == "AES256"
    read_back = metadata(second, "target_allocation")
    assert read_back["previous_record"] == f"2026-11-20 run {first.run_id}"
    assert metadata(second, "post_trade_positions")["journal_record"].startswith("s3://")

    # Corrupt the newest record behind the pipeline's back (create-only writes forbid it).
    moto_s3.put_object(Bucket=s3_bucket, Key=keys[-1], Body=b'{"schema_version": 1, "sess')
    third = run(settings, date(2026, 11, 24))

    assert third.success, "the run carries on from the broker's truth"
    quarantined = moto_s3.list_objects_v2(Bucket=s3_bucket, Prefix="tecl/journal/quarantine/")
    assert [o["Key"].rsplit("/", 1)[-1] for o in quarantined["Contents"]] == [
        keys[-1].rsplit("/", 1)[-1]
    ]
    assert metadata(third, "target_allocation")["previous_record"].startswith("2026-11-20")
    [alert] = [a for a in alerts(tmp_path / "logs") if a["kind"] == "quarantine"]
    assert "2026-11-23" in alert["detail"] and alert["severity"] == "critical"
    assert third.asset_value("post_trade_positions").residuals == {}


def test_the_steps_outputs_are_kept_beside_the_journal_for_any_process_to_read(
    tmp_path, aws_sandbox, s3_bucket, moto_s3
):
    """With the state in S3, the steps' outputs are too (dagster-aws's S3 IO manager): a
    re-execution from failure started by another process, on another container, with an
    instance of its own, reads the inputs its steps need from there."""
    settings = Settings(
        state_uri=f"s3://{s3_bucket}/tecl", local_dir=tmp_path / "local", log_dir=tmp_path / "logs"
    )
    session = date(2026, 11, 20)

    result = run(settings, session)

    assert result.success
    listed = moto_s3.list_objects_v2(Bucket=s3_bucket, Prefix="tecl/dagster-io/")
    keys = {o["Key"] for o in listed["Contents"]}
    for asset in ("market_data", "indicators", "signal", "target_allocation", "executed_orders"):
        assert f"tecl/dagster-io/{asset}/{session.isoformat()}" in keys, keys
    # Nothing of the run's own instance (an ephemeral one, gone) is needed to read them.
    fresh = build_definitions(settings)
    loaded = fresh.load_asset_value("target_allocation", partition_key=session.isoformat())
    assert loaded == result.asset_value("target_allocation")
